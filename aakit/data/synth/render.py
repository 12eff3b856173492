"""One scene: choose the classes, place the objects, draw background, shadows, bodies and
badges (plus a version's steps), the photometry, and the labels with their boundary band.

All of version 1's randomness comes from the image's own generator; a later version's steps
draw from generators of their own (:class:`aakit.data.synth.versions.SceneSteps`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from aakit.data.scene import ClassSpec, Knobs
from aakit.data.scene import SceneObject as _Object
from aakit.data.scene import coverage as _coverage
from aakit.data.scene import texture as _texture
from aakit.data.synth.appearance import (
    BACKGROUNDS, MARK_BLACK, MARK_WHITE, _background, _family_colour, _mark_pattern, _texture_period,
)
from aakit.data.synth.shapes import _shape_sdf
from aakit.data.synth.v1 import CLASSES, DEFAULT_KNOBS
from aakit.data.synth.versions import SceneSteps
from aakit.labels import IGNORE_INDEX

MIN_VISIBLE_PX = 12  # and at least this many band-free pixels per object
_MAX_TRIES = 30  # placements tried before an object is dropped


def _choose_classes(rng: np.random.Generator, classes: tuple[ClassSpec, ...], knobs: Knobs) -> list[int]:
    """Primary class uniformly; extra objects from its context group with ``cooccur_prob``."""
    k = len(classes)
    n = int(rng.choice(3, p=np.asarray(knobs.object_count_probs) / sum(knobs.object_count_probs))) + 1
    primary = int(rng.integers(k)) + 1
    group = [i + 1 for i, c in enumerate(classes) if c.context == classes[primary - 1].context]
    out = [primary]
    for _ in range(n - 1):
        if rng.random() < knobs.cooccur_prob:
            out.append(int(rng.choice(group)))
        else:
            out.append(int(rng.integers(k)) + 1)
    return out


def _place(rng: np.random.Generator, cls: int, spec: ClassSpec, size: int, knobs: Knobs,
           xx: np.ndarray, yy: np.ndarray, centred: bool = False) -> _Object:
    """Draw size, aspect, angle and position of one object and rasterise its body."""
    r = rng.uniform(*knobs.radius_range) * size
    aspect = rng.uniform(*knobs.aspect_range)
    angle = rng.uniform(0, 2 * np.pi)
    lo, hi = 0.35 * r, size - 0.35 * r  # objects may be cut by the frame, never mostly
    cx, cy = (size / 2, size / 2) if centred else (rng.uniform(lo, hi), rng.uniform(lo, hi))
    c, s = np.cos(angle), np.sin(angle)
    u = c * (xx - cx) + s * (yy - cy)
    v = -s * (xx - cx) + c * (yy - cy)
    sdf = _shape_sdf(spec.shape, u, v, r, aspect)
    return _Object(cls, cx, cy, r, aspect, angle, _coverage(sdf, knobs.edge_softness_px), sdf)


def _labels(objs: list[_Object], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hard labels from the drawing order: (layer index or -1, class map, 1-px boundary band).

    A pixel belongs to the topmost object covering at least half of it. It is in the band if a
    4-neighbour is lower in the drawing order (background lowest) and of another class.
    """
    layer = np.full((size, size), -1, dtype=np.int64)
    for i, o in enumerate(objs):
        layer[o.coverage >= 0.5] = i
    cls_of = np.array([0] + [o.cls for o in objs], dtype=np.int64)
    label = cls_of[layer + 1]
    band = np.zeros((size, size), dtype=bool)
    lp = np.pad(layer, 1, mode="edge")
    cp = np.pad(label, 1, mode="edge")
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        nl = lp[dy:dy + size, dx:dx + size]
        nc = cp[dy:dy + size, dx:dx + size]
        band |= (nl < layer) & (nc != label)
    return layer, label, band


def _visible_enough(objs: list[_Object], size: int, knobs: Knobs) -> bool:
    """Every object keeps ``min_visible_frac`` of its area (and MIN_VISIBLE_PX) band-free."""
    layer, _, band = _labels(objs, size)
    for i, o in enumerate(objs):
        full = int((o.coverage >= 0.5).sum())
        vis = int(((layer == i) & ~band).sum())
        if vis < max(MIN_VISIBLE_PX, knobs.min_visible_frac * full):
            return False
    return True


def _place_objects(rng: np.random.Generator, order: list[int], classes: tuple[ClassSpec, ...],
                   size: int, knobs: Knobs, xx: np.ndarray, yy: np.ndarray) -> list[_Object]:
    """Place objects one by one, in drawing order.

    An object that would hide too much of the earlier ones, or be hidden itself, is placed
    again (or dropped after _MAX_TRIES, keeping at least one).
    """
    objs: list[_Object] = []
    for cls in order:
        for _ in range(_MAX_TRIES):
            trial = objs + [_place(rng, cls, classes[cls - 1], size, knobs, xx, yy)]
            if _visible_enough(trial, size, knobs):
                objs = trial
                break
        if not objs:  # only with extreme knobs: fall back to one centred object
            objs = [_place(rng, cls, classes[cls - 1], size, knobs, xx, yy, centred=True)]
    return objs


def _badge(rng: np.random.Generator, o: _Object, spec: ClassSpec, knobs: Knobs,
           xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A disc deep enough inside the body, at a random admissible spot.

    Returns:
        ``(coverage, rgb, description)``: the badge's soft coverage (H, W) (0 if the object
        wears none), its colours (H, W, 3), and ``mark_center`` / ``mark_radius`` for the scene.
    """
    has_mark = bool(rng.random() < knobs.mark_prob)
    mr = max(1.5, knobs.mark_scale * o.r)
    deep = np.flatnonzero(o.sdf.ravel() <= -(mr + 1.0))
    if deep.size == 0:
        deep = np.array([int(np.argmin(o.sdf))])
        mr = max(1.0, -float(o.sdf.ravel()[deep[0]]) - 0.5)
    k = int(deep[rng.integers(deep.size)])
    my, mx = yy.ravel()[k], xx.ravel()[k]
    mxn, myn = (xx - mx) / mr, (yy - my) / mr
    mcov = _coverage((np.hypot(mxn, myn) - 1.0) * mr, 1.0) * (o.coverage > 0) * has_mark
    white = _mark_pattern(spec.mark, mxn, myn)
    mark_rgb = np.where(white[..., None] > 0.5, np.array(MARK_WHITE, float),
                        np.array(MARK_BLACK, float))
    desc = {
        "mark_center": [round(float(mx), 1), round(float(my), 1)] if has_mark else None,
        "mark_radius": round(mr, 2) if has_mark else 0.0,
    }
    return mcov, mark_rgb, desc


def _draw_object(rng: np.random.Generator, img: np.ndarray, o: _Object, spec: ClassSpec,
                 knobs: Knobs, light: float, xx: np.ndarray, yy: np.ndarray,
                 steps: SceneSteps | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Draw one object over ``img``: its shadow, body (texture + shading) and badge.

    ``steps`` (a later version's, None in version 1) picks the body colour, may draw under the
    body (a halo) and gives the body's drawing alpha.

    Returns:
        ``(img, badge_mask, description)``: the new image, the badge's hard mask, and the
        object's entry in the scene description (visibility added later).
    """
    shift = (0.12 * o.r + 1.0) * np.array([np.sin(light), np.cos(light)])
    shifted = np.roll(o.coverage, np.round(shift).astype(int), axis=(0, 1))
    shadow = gaussian_filter(shifted, 0.15 * o.r + 1)
    img *= 1 - knobs.shadow_strength * shadow[..., None]

    c, s = np.cos(o.angle), np.sin(o.angle)
    u = c * (xx - o.cx) + s * (yy - o.cy)
    v = -s * (xx - o.cx) + c * (yy - o.cy)
    base = steps.colour(rng, spec.colour) if steps is not None else _family_colour(rng, spec.colour)
    period = _texture_period(rng, o.r)
    tone = _texture(spec.texture, u, v, period)
    shading = 1 + 0.15 * (u * np.cos(light) + v * np.sin(light)) / o.r
    body = base * ((1 - knobs.texture_contrast * tone) * shading)[..., None]
    mcov, mark_rgb, mark_desc = _badge(rng, o, spec, knobs, xx, yy)
    body = body * (1 - mcov[..., None]) + mark_rgb * mcov[..., None]

    alpha, extra = o.coverage, {}
    if steps is not None:
        img, alpha, extra = steps.on_object(img, o, spec, base, period, light, xx, yy)
    a = alpha[..., None]
    img = img * (1 - a) + body * a
    desc = {
        "class": o.cls, "center": [round(o.cx, 2), round(o.cy, 2)], "radius": round(o.r, 2),
        "aspect": round(o.aspect, 3), "angle_deg": round(float(np.degrees(o.angle)), 1),
        **mark_desc, **extra,
    }
    return img, mcov >= 0.5, desc


def _photometry(rng: np.random.Generator, img: np.ndarray, size: int, knobs: Knobs,
                xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Global gain, colour cast, brightness ramp, optical blur and sensor noise; uint8 RGB."""
    gain = rng.uniform(1 - knobs.illumination_jitter, 1 + knobs.illumination_jitter)
    cast = 1 + rng.uniform(-knobs.colour_cast, knobs.colour_cast, 3)
    g_ang = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - size / 2) * np.cos(g_ang) + (yy - size / 2) * np.sin(g_ang)) / (size / 2)
    img = img * (gain * cast) * (1 + knobs.illumination_gradient * ramp)[..., None]
    if knobs.blur_sigma_px > 0:
        img = gaussian_filter(img, (knobs.blur_sigma_px, knobs.blur_sigma_px, 0))
    img = img + rng.normal(0, knobs.noise_std, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_scene(
    rng: np.random.Generator,
    size: int,
    classes: tuple[ClassSpec, ...] = CLASSES,
    knobs: Knobs = DEFAULT_KNOBS,
    steps: SceneSteps | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Draw one image and its masks.

    Args:
        rng: the image's own generator (all of version 1's randomness comes from it).
        size: image side in pixels.
        classes: the object classes in use (label i + 1 for ``classes[i]``).
        knobs: difficulty knobs.
        steps: a later version's extra drawing steps (None: version 1).

    Returns:
        ``(image, label, label_with_band, scene)``: uint8 RGB (H, W, 3); uint8 class map
        without band; the same with the 1-px boundary band set to 255; a JSON-able description
        (background; objects in drawing order with class, centre, radius, angle, badge, visible
        pixels and visible fraction of the drawn area, whether the badge is visible; plus what
        ``steps`` adds, in version 2 each object's ``halo`` and the scene's ``decoys``).
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    wanted = _choose_classes(rng, classes, knobs)
    primary_ctx = classes[wanted[0] - 1].context
    names = list(BACKGROUNDS)
    bg_name = primary_ctx if rng.random() < knobs.context_prob else names[int(rng.integers(len(names)))]
    order = [wanted[i] for i in rng.permutation(len(wanted))]  # primary not always at the bottom
    objs = _place_objects(rng, order, classes, size, knobs, xx, yy)

    # Compose: background, then per object its shadow, body and badge.
    img = _background(rng, bg_name, size)
    light = rng.uniform(0, 2 * np.pi)
    scene_objs: list[dict[str, Any]] = []
    mark_masks: list[np.ndarray] = []
    for o in objs:
        img, mark_mask, desc = _draw_object(rng, img, o, classes[o.cls - 1], knobs, light, xx, yy, steps)
        mark_masks.append(mark_mask)
        scene_objs.append(desc)
    extra: dict[str, Any] = {}
    if steps is not None:
        img, extra = steps.after_objects(img, objs, light, xx, yy)

    layer, label, band = _labels(objs, size)
    for i, (so, mm) in enumerate(zip(scene_objs, mark_masks)):
        drawn = int((objs[i].coverage >= 0.5).sum())
        so["visible_px"] = int((layer == i).sum())  # what the mask shows of it
        so["visible_frac"] = round(so["visible_px"] / max(drawn, 1), 4)  # < 1: occluded
        so["mark_visible"] = bool(mm.sum() > 0 and (mm & (layer == i)).sum() >= 0.5 * mm.sum())

    image = _photometry(rng, img, size, knobs, xx, yy)
    label_u8 = label.astype(np.uint8)
    banded = label_u8.copy()
    banded[band] = IGNORE_INDEX
    scene = {"background": bg_name, "objects": scene_objs, **extra}
    return image, label_u8, banded, scene

