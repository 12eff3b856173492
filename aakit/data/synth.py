"""The embedded benchmark: a procedural, seeded, versioned WSSS data set in the VOC layout.

Plain shapes on a plain background would be solved by any CAM; this generator reproduces the
phenomena that weakly supervised segmentation fights (classes that need several cues, a small
discriminative badge, class-correlated backgrounds, occlusion, soft edges and noise), each
behind a knob (:class:`Knobs`, recorded in ``meta.json``) so the difficulty can be calibrated.
The files (VOC's ``JPEGImages``, ``SegmentationClass`` with a 255 boundary band,
``SegmentationClassAug`` without it, ``ImageSets``, plus ``cls_labels.json``, ``scenes.json``
and ``meta.json``) are byte-identical for the same parameters whatever the number of workers.
How each phenomenon is made, the layout, the boundary band and the determinism are described
in docs/benchmark.md.

Two versions: 1 (this module's classes and knobs, frozen: the same files byte for byte, the
default of :func:`generate`) and 2 (``version=2``, the default of ``aakit data synth``: distinct
classes, boundary confounding and confident decoys, defined in :mod:`aakit.data.synth_v2` and
drawn by :func:`render_scene` through its ``steps``).

Example::

    meta = generate("data/synth", n_train=600, n_val=200, seed=0)
    if is_generated("data/synth", n_train=600, n_val=200, seed=0): ...
    generate("data/synth2", version=2)  # 600 train + 1000 val, synth_v2.KnobsV2 defaults
    print(describe("data/synth"))
"""
from __future__ import annotations

import colorsys
import dataclasses
import io
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, TypedDict, Unpack

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from aakit.data.scene import (  # the drawing primitives, shared with version 2
    ClassSpec,
    Knobs,
    SynthError,
)
from aakit.data.scene import SceneObject as _Object
from aakit.data.scene import coverage as _coverage
from aakit.data.scene import ellipse_sdf as _ellipse_sdf
from aakit.data.scene import smooth_noise as _smooth_noise
from aakit.data.scene import texture as _texture
from aakit.errors import AakitError
from aakit.labels import IGNORE_INDEX

SYNTH_VERSION = "1.0"  # version 1's; version 2 is aakit.data.synth_v2
VERSIONS = {1: "1.0", 2: "2.0", 3: "3.0"}  # generate(version=...) -> meta.json "version"
DEFAULT_N_VAL = {1: 200, 2: 1000, 3: 1000}
DATASET_NAME = "aakit-synth"
JPEG_QUALITY = 95
SPLITS = ("train", "val")


# ----------------------------------------------------------------------------- the classes


# Five materials (colour family + texture) are each worn by two classes, and four of the six
# shapes are each used by two classes: a patch of body narrows the class down to two, only the
# outline or the badge settles it. The context pairs (sand 1+8, water 3+9, brick 2+6, grass
# 4+7, sky 5+10) cut across the material pairs, so the background is a tempting shortcut.
CLASSES: tuple[ClassSpec, ...] = (
    ClassSpec("red_ellipse", "ellipse", "red", "stripes", "bullseye", "sand"),
    ClassSpec("red_star", "star", "red", "stripes", "split_v", "brick"),
    ClassSpec("blue_ellipse", "ellipse", "blue", "dots", "solid_white", "water"),
    ClassSpec("blue_triangle", "triangle", "blue", "dots", "quadrants", "grass"),
    ClassSpec("green_box", "rectangle", "green", "plain", "plus", "sky"),
    ClassSpec("green_star", "star", "green", "plain", "split_h", "brick"),
    ClassSpec("yellow_triangle", "triangle", "yellow", "checker", "solid_black", "grass"),
    ClassSpec("yellow_ring", "ring", "yellow", "checker", "inv_bullseye", "sand"),
    ClassSpec("purple_box", "rectangle", "purple", "stripes", "diagonal", "water"),
    ClassSpec("purple_cross", "cross", "purple", "stripes", "bands", "sky"),
)

# Hue in degrees of each colour family; saturation and value are drawn per object.
COLOUR_FAMILIES: dict[str, float] = {
    "red": 2.0,
    "yellow": 48.0,
    "green": 112.0,
    "blue": 215.0,
    "purple": 282.0,
}

# Background schemes: name -> mean RGB (the texture is drawn around it, see _background).
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "grass": (88, 128, 58),
    "sand": (190, 168, 124),
    "water": (58, 104, 148),
    "brick": (150, 82, 64),
    "sky": (118, 154, 204),
}

# The badge colours. Nothing else in the images is this dark or this light and grey.
MARK_WHITE = (236, 236, 236)
MARK_BLACK = (22, 22, 22)


# ----------------------------------------------------------------------------- the knobs


DEFAULT_KNOBS = Knobs()
MIN_VISIBLE_PX = 12  # and at least this many band-free pixels per object
_MAX_TRIES = 30  # placements tried before an object is dropped


# ----------------------------------------------------------------------------- palette
def voc_palette() -> list[int]:
    """The 256-entry VOC colour map (flat RGB list); index 255 is (224, 224, 192)."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


_PALETTE = voc_palette()


# ----------------------------------------------------------------------------- geometry


def _box_sdf(u: np.ndarray, v: np.ndarray, hx: float, hy: float) -> np.ndarray:
    qx, qy = np.abs(u) - hx, np.abs(v) - hy
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0)


def _polygon_sdf(u: np.ndarray, v: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Exact signed distance to a simple polygon (negative inside, even-odd rule)."""
    d2 = np.full(u.shape, np.inf)
    inside = np.zeros(u.shape, dtype=bool)
    n = len(verts)
    for i in range(n):
        ax, ay = verts[i]
        bx, by = verts[i - 1]
        ex, ey = bx - ax, by - ay
        wx, wy = u - ax, v - ay
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        d2 = np.minimum(d2, (wx - ex * t) ** 2 + (wy - ey * t) ** 2)
        crosses = (ay > v) != (by > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = ax + ex * (v - ay) / ey
        inside ^= crosses & (u < x_at)
    return np.sqrt(d2) * np.where(inside, -1.0, 1.0)


def _star_vertices(r: float, aspect: float, points: int = 5, inner: float = 0.5) -> np.ndarray:
    k = np.arange(2 * points)
    ang = -np.pi / 2 + k * np.pi / points
    rad = np.where(k % 2 == 0, r, r * inner)
    return np.stack([rad * np.cos(ang), rad * np.sin(ang) * aspect], axis=1)


def _shape_sdf(shape: str, u: np.ndarray, v: np.ndarray, r: float, aspect: float) -> np.ndarray:
    """Signed distance (px, negative inside) of ``shape`` in its own frame (u, v)."""
    if shape == "ellipse":
        return _ellipse_sdf(u, v, r, aspect)
    if shape == "rectangle":
        return _box_sdf(u, v, 0.9 * r, 0.9 * r * aspect)
    if shape == "triangle":
        ang = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        verts = np.stack([1.15 * r * np.cos(ang), 1.15 * r * np.sin(ang) * aspect + 0.2 * r * aspect], 1)
        return _polygon_sdf(u, v, verts)
    if shape == "star":
        return _polygon_sdf(u, v, _star_vertices(1.15 * r, max(aspect, 0.8)))
    if shape == "ring":  # annulus of outer radius r and inner radius r/2 (mildly elliptic)
        rho = np.hypot(u, v / max(aspect, 0.8))
        return np.abs(rho - 0.75 * r) - 0.25 * r
    if shape == "cross":
        a, w = r, 0.34 * r  # arm length, half width
        b = a * max(aspect, 0.75)
        verts = np.array(
            [(w, -b), (w, -w), (a, -w), (a, w), (w, w), (w, b),
             (-w, b), (-w, w), (-a, w), (-a, -w), (-w, -w), (-w, -b)]
        )
        return _polygon_sdf(u, v, verts)
    raise SynthError(f"unknown shape {shape!r}")


# ----------------------------------------------------------------------------- appearance


def _background(rng: np.random.Generator, name: str, size: int) -> np.ndarray:
    """A textured background scheme as float RGB (H, W, 3), grey levels 0-255."""
    base = np.array(BACKGROUNDS[name], dtype=np.float64) * rng.uniform(0.9, 1.1, 3) ** 0.5
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    hw = (size, size)
    low = _smooth_noise(rng, hw, size / 8)
    if name == "grass":  # vertical blades over a patchy field
        blades = _smooth_noise(rng, hw, (2.5, 0.5))
        shade = 1 + 0.10 * low + 0.12 * blades
        tint = np.stack([1 - 0.05 * low, 1 + 0.03 * low, 1 - 0.05 * low], -1)
        img = base * shade[..., None] * tint
    elif name == "sand":  # fine grain on wind ripples
        theta = rng.uniform(0, np.pi)
        ph = xx * np.cos(theta) + yy * np.sin(theta)
        ripples = np.sin(2 * np.pi * ph / rng.uniform(9, 15) + 1.5 * low)
        grain = rng.standard_normal(hw)
        shade = 1 + 0.06 * ripples + 0.05 * low + 0.04 * grain
        img = base * shade[..., None]
    elif name == "water":  # horizontal waves with sparse highlights
        wave = np.sin(2 * np.pi * yy / rng.uniform(8, 14) + 2.0 * low)
        glint = np.clip(_smooth_noise(rng, hw, (0.7, 3.0)) - 1.8, 0, None)
        shade = 1 + 0.10 * wave + 0.08 * low
        img = base * shade[..., None] + 40 * glint[..., None] * np.array([0.6, 0.8, 1.0])
    elif name == "brick":  # staggered bricks with mortar joints
        h = rng.uniform(0.08, 0.12) * size
        w = 2.1 * h
        row = np.floor((yy + rng.uniform(0, h)) / h)
        xs = xx + rng.uniform(0, w) + (row % 2) * w / 2
        col = np.floor(xs / w)
        fy = (yy + 0) % h
        fx = xs % w
        mortar = (np.minimum(fy, h - fy) < 1.2) | (np.minimum(fx, w - fx) < 1.2)
        brick_id = (row * 7919 + col * 104729).astype(np.int64)
        tones = np.random.default_rng(int(rng.integers(1 << 31))).uniform(0.82, 1.12, 4096)
        tone = tones[brick_id % 4096]
        shade = tone * (1 + 0.05 * rng.standard_normal(hw) + 0.05 * low)
        img = base * shade[..., None]
        img[mortar] = np.array([128.0, 122.0, 112.0]) * (1 + 0.05 * low[mortar, None])
    elif name == "sky":  # soft clouds drifting over a blue gradient
        clouds = np.clip(_smooth_noise(rng, hw, size / 10) * 0.6, 0, 1)
        grad = 1 + 0.08 * (yy / size - 0.5)
        cloud_rgb = np.array([160.0, 180.0, 216.0])  # bluish: never badge-white
        img = base * grad[..., None]
        img = img * (1 - clouds[..., None]) + cloud_rgb * clouds[..., None]
    else:  # pragma: no cover - BACKGROUNDS lists the names above
        raise SynthError(f"unknown background {name!r}")
    return img


def _family_colour(rng: np.random.Generator, family: str) -> np.ndarray:
    """A saturated colour of the family (hue jittered, saturation/value drawn), RGB 0-255."""
    hue = (COLOUR_FAMILIES[family] + rng.uniform(-10, 10)) / 360.0 % 1.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 0.9), rng.uniform(0.62, 0.92))
    return np.array(rgb) * 255.0


def _texture_period(rng: np.random.Generator, r: float) -> float:
    """The period (px) of an object's texture, drawn from its radius ``r``."""
    return float(rng.uniform(0.22, 0.32) * r + 3.0)


def _mark_pattern(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """White weight in {0, 1} of a badge; x, y in badge radii (image axes, not rotated)."""
    rho = np.hypot(x, y)
    patterns: dict[str, Callable[[], np.ndarray]] = {
        "solid_white": lambda: np.ones_like(x),
        "solid_black": lambda: np.zeros_like(x),
        "bullseye": lambda: rho >= 0.5,  # white ring, black centre
        "inv_bullseye": lambda: rho < 0.5,  # black ring, white centre
        "split_v": lambda: x < 0,
        "split_h": lambda: y < 0,
        "quadrants": lambda: (x < 0) ^ (y < 0),
        "plus": lambda: (np.abs(x) < 0.3) | (np.abs(y) < 0.3),
        "diagonal": lambda: x + y < 0,
        "bands": lambda: np.floor((y + 1.0) * 1.5) % 2 == 1,
    }
    if name not in patterns:
        raise SynthError(f"unknown mark {name!r}")
    return np.asarray(patterns[name](), dtype=np.float64)


# ----------------------------------------------------------------------------- one scene


class SceneSteps(Protocol):
    """Extra drawing steps of a later version (:mod:`aakit.data.synth_v2`); version 1 has none.

    They draw from their own generators, never from the image's, so the layout is the same
    whatever they do.
    """

    def colour(self, rng: np.random.Generator, family: str) -> np.ndarray:
        """The body colour of an object of colour ``family`` (RGB 0-255), drawn from ``rng``."""
        ...

    def on_object(self, img: np.ndarray, o: _Object, spec: ClassSpec, base: np.ndarray,
                  period: float, light: float, xx: np.ndarray,
                  yy: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Before ``o``'s body is drawn: (image, body alpha (H, W), entries for its description)."""
        ...

    def after_objects(self, img: np.ndarray, objs: list[_Object], light: float, xx: np.ndarray,
                      yy: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """After every object: (image, entries for the scene description)."""
        ...


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


# ----------------------------------------------------------------------------- files
def _png_bytes(label: np.ndarray) -> bytes:
    im = Image.fromarray(label, mode="P")
    im.putpalette(_PALETTE)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _jpeg_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def image_id(split: str, index: int) -> str:
    """The id of image ``index`` of ``split``, e.g. ``train_00042``."""
    return f"{split}_{index:05d}"


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


# tmp root, split, index, seed, classes, size, knobs, version
_Job = tuple[str, str, int, int, int, int, Knobs, int]


def _make_one(job: _Job) -> tuple[str, list[int], dict[str, Any]]:
    """Render image ``index`` of ``split`` and write its three files under ``tmp_root``."""
    tmp_root, split, index, seed, n_classes, size, knobs, version = job
    root = Path(tmp_root)
    iid = image_id(split, index)
    rng = _image_rng(seed, split, index)
    if version == 1:
        image, label, banded, scene = render_scene(rng, size, CLASSES[:n_classes], knobs)
    elif version == 3:
        from aakit.data import synth_v3

        steps3 = synth_v3.make_steps(knobs, seed, SPLITS.index(split), index)
        image, label, banded, scene = render_scene(rng, size, synth_v3.CLASSES[:n_classes], knobs, steps3)
    else:
        from aakit.data import synth_v2

        steps = synth_v2.make_steps(knobs, seed, SPLITS.index(split), index)
        image, label, banded, scene = render_scene(rng, size, synth_v2.CLASSES[:n_classes], knobs, steps)
    (root / "JPEGImages" / f"{iid}.jpg").write_bytes(_jpeg_bytes(image))
    (root / "SegmentationClass" / f"{iid}.png").write_bytes(_png_bytes(banded))
    (root / "SegmentationClassAug" / f"{iid}.png").write_bytes(_png_bytes(label))
    present = sorted(int(c) for c in np.unique(label) if 0 < c < IGNORE_INDEX)
    return iid, present, scene


def _meta(
    n_train: int, n_val: int, num_classes: int, size: int, seed: int, knobs: Knobs, version: int = 1
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    classes = CLASSES[:num_classes]
    if version == 2:
        from aakit.data import synth_v2

        classes = synth_v2.CLASSES[:num_classes]
        extra = synth_v2.meta_extra()
    elif version == 3:
        from aakit.data import synth_v3

        classes, extra = synth_v3.CLASSES[:num_classes], synth_v3.meta_extra()
    return {
        "name": DATASET_NAME,
        "version": SYNTH_VERSION if version == 1 else VERSIONS[version],
        "seed": seed,
        "num_classes": num_classes + 1,
        "class_names": ["background"] + [c.name for c in classes],
        "palette": [_PALETTE[3 * i:3 * i + 3] for i in range(num_classes + 1)],
        "image_size": size,
        "n_train": n_train,
        "n_val": n_val,
        "ignore_index": IGNORE_INDEX,
        "boundary": "SegmentationClass: 1-px band of 255 on the object side of every visible "
                    "outline; SegmentationClassAug: no band",
        "classes": [dataclasses.asdict(c) for c in classes],
        "backgrounds": list(BACKGROUNDS),
        "knobs": knobs.to_dict(),
        **extra,
    }


def _check_args(n_train: int, n_val: int, num_classes: int, size: int, seed: int, workers: int) -> None:
    if n_train < 1 or n_val < 0:
        raise SynthError(f"synthetic set: need n_train >= 1 and n_val >= 0 (got {n_train}, {n_val})")
    if not 2 <= num_classes <= len(CLASSES):
        raise SynthError(f"synthetic set: num_classes = {num_classes} must be in 2..{len(CLASSES)}")
    if size < 32:
        raise SynthError(f"synthetic set: size = {size} must be >= 32")
    if seed < 0:
        raise SynthError(f"synthetic set: seed = {seed} must be >= 0")
    if workers < 1:
        raise SynthError(f"synthetic set: workers = {workers} must be >= 1")


def _check_knobs(k: Knobs) -> None:
    probs = ("mark_prob", "context_prob", "cooccur_prob", "min_visible_frac", "shadow_strength",
             "texture_contrast", "illumination_jitter", "illumination_gradient", "colour_cast")
    for name in probs:
        if not 0.0 <= getattr(k, name) <= 1.0:
            raise SynthError(f"synthetic set: knob {name} = {getattr(k, name)} must be in [0, 1]")
    for name in ("edge_softness_px", "mark_scale"):
        if getattr(k, name) <= 0:
            raise SynthError(f"synthetic set: knob {name} = {getattr(k, name)} must be > 0")
    for name in ("blur_sigma_px", "noise_std"):
        if getattr(k, name) < 0:
            raise SynthError(f"synthetic set: knob {name} = {getattr(k, name)} must be >= 0")
    for name in ("radius_range", "aspect_range"):
        lo, hi = getattr(k, name)
        if not 0 < lo <= hi <= 1:
            raise SynthError(f"synthetic set: knob {name} = {(lo, hi)} needs 0 < low <= high <= 1")
    p = k.object_count_probs
    if len(p) != 3 or min(p) < 0 or sum(p) <= 0:
        raise SynthError(f"synthetic set: knob object_count_probs = {p} needs 3 weights >= 0, not all 0")


class SynthOptions(TypedDict, total=False):
    """The keywords of :func:`generate` and :func:`is_generated` (defaults in brackets):
    ``n_train`` train images [600] (``train.txt`` = ``train_aug.txt``); ``n_val`` val images
    [200 in version 1, 1000 in version 2]; ``num_classes`` object classes, the first of the
    version's list, 2..10 [10]; ``size`` image side [164: a stride-4 net gives 41 x 41 maps];
    ``seed`` master seed [0]; ``knobs`` [:data:`DEFAULT_KNOBS`; version 2:
    :class:`aakit.data.synth_v2.KnobsV2`]; ``version`` 1 (frozen, byte-reproducible) or 2
    (:mod:`aakit.data.synth_v2`) [1]; ``workers`` processes [1] and ``progress``, called as
    ``progress(done, total)`` after each image — neither changes the files."""

    n_train: int
    n_val: int | None
    num_classes: int
    size: int
    seed: int
    knobs: Knobs | None
    version: int
    workers: int
    progress: Callable[[int, int], None] | None


@dataclass(frozen=True)
class SynthSpec:
    """What a set is made of: :class:`SynthOptions` with the version's defaults, checked."""

    n_train: int
    n_val: int
    num_classes: int
    size: int
    seed: int
    knobs: Knobs
    version: int
    workers: int


def synth_spec(**options: Unpack[SynthOptions]) -> SynthSpec:
    """The checked :class:`SynthSpec` of ``options`` (raises :class:`SynthError`)."""
    version = options.get("version", 1)
    if version not in VERSIONS:
        raise SynthError(f"synthetic set: version = {version} must be one of {sorted(VERSIONS)}")
    knobs = options.get("knobs")
    if version == 1:
        if knobs is not None and type(knobs) is not Knobs:
            raise SynthError(f"synthetic set: version 1 takes synth.Knobs, not {type(knobs).__name__}")
        knobs = knobs or DEFAULT_KNOBS
    elif version == 3:
        from aakit.data import synth_v3

        knobs = synth_v3.check_knobs(knobs)
    else:
        from aakit.data import synth_v2

        knobs = synth_v2.check_knobs(knobs)
    _check_knobs(knobs)
    n_val = options.get("n_val")
    spec = SynthSpec(options.get("n_train", 600), DEFAULT_N_VAL[version] if n_val is None else n_val,
                     options.get("num_classes", 10), options.get("size", 164), options.get("seed", 0), knobs,
                     version, options.get("workers", 1))
    _check_args(spec.n_train, spec.n_val, spec.num_classes, spec.size, spec.seed, spec.workers)
    return spec


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def generate(root: str | Path, **options: Unpack[SynthOptions]) -> dict[str, Any]:
    """Generate the benchmark under ``root`` (replacing an older aakit-synth set there).

    Args:
        root: output directory. If it exists it must be empty or an aakit-synth set.
        options: :class:`SynthOptions`.

    Returns:
        The content of ``meta.json``.

    Raises:
        SynthError: bad arguments, or ``root`` holds something else.
    """
    spec = synth_spec(**options)
    n_train, n_val, num_classes, size, seed = spec.n_train, spec.n_val, spec.num_classes, spec.size, spec.seed
    knobs, version, progress = spec.knobs, spec.version, options.get("progress")
    root = Path(root)
    if root.exists() and not _is_replaceable(root):
        raise SynthError(f"{root}: exists and is not an {DATASET_NAME} set; refusing to overwrite it")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
        (tmp / sub).mkdir(parents=True)
    try:
        jobs: list[_Job] = [(str(tmp), sp, i, seed, num_classes, size, knobs, version)
                for sp, n in (("train", n_train), ("val", n_val)) for i in range(n)]
        cls_labels: dict[str, list[int]] = {}
        scenes: dict[str, Any] = {}
        for done, (iid, present, scene) in enumerate(_run(jobs, spec.workers), start=1):
            cls_labels[iid] = present
            scenes[iid] = scene
            if progress is not None:
                progress(done, len(jobs))
        train_ids = [image_id("train", i) for i in range(n_train)]
        val_ids = [image_id("val", i) for i in range(n_val)]
        sets = tmp / "ImageSets" / "Segmentation"
        for name, ids in (("train", train_ids), ("train_aug", train_ids), ("val", val_ids)):
            (sets / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
        _write_json(tmp / "cls_labels.json", {i: cls_labels[i] for i in train_ids + val_ids})
        _write_json(tmp / "scenes.json", {i: scenes[i] for i in train_ids + val_ids})
        meta = _meta(n_train, n_val, num_classes, size, seed, knobs, version)
        _write_json(tmp / "meta.json", meta)  # written last: its presence means complete
        _swap_into_place(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _run(jobs: list[_Job], workers: int) -> Iterator[tuple[str, list[int], dict[str, Any]]]:
    """Results in job order, from this process or a pool (the files do not depend on it)."""
    if workers == 1 or len(jobs) < 2 * workers:
        yield from map(_make_one, jobs)
        return
    # spawn, not fork: the caller may hold threads (torch, a TUI) that fork would copy half-way.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        yield from pool.map(_make_one, jobs, chunksize=max(1, len(jobs) // (8 * workers)))


def _is_replaceable(root: Path) -> bool:
    if not root.is_dir():
        return False
    if not any(root.iterdir()):
        return True
    meta = _read_meta(root)
    return meta is not None and meta.get("name") == DATASET_NAME


def _swap_into_place(tmp: Path, root: Path) -> None:
    """Rename the finished set onto ``root``; an older set is moved aside, then deleted."""
    old = None
    if root.exists():
        old = root.parent / f".{root.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(root, old)
    os.replace(tmp, root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _read_meta(root: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((Path(root) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_generated(root: str | Path, **options: Unpack[SynthOptions]) -> bool:
    """True if ``root`` holds a complete set that ``generate`` with these arguments would write.

    Compares ``meta.json`` with the expected one (version and knobs included) and checks that
    the split files list the expected number of images, each with its image file. ``workers``
    and ``progress`` do not change the files: they are accepted (to take the same keyword
    arguments as :func:`generate`) and ignored.
    """
    root = Path(root)
    meta = _read_meta(root)
    spec = synth_spec(**options)
    n_train, n_val = spec.n_train, spec.n_val
    expected = _meta(n_train, n_val, spec.num_classes, spec.size, spec.seed, spec.knobs, spec.version)
    if meta != json.loads(json.dumps(expected)):
        return False
    sets = root / "ImageSets" / "Segmentation"
    try:
        train = (sets / "train.txt").read_text(encoding="utf-8").split()
        val = (sets / "val.txt").read_text(encoding="utf-8").split()
    except OSError:
        return False
    if len(train) != n_train or len(val) != n_val:
        return False
    return all((root / "JPEGImages" / f"{i}.jpg").is_file() for i in train + val)


# ----------------------------------------------------------------------------- summaries
def describe(root: str | Path) -> str:
    """A short text summary: per-class image counts, visible area, context share; totals.

    Raises:
        SynthError: ``root`` has no readable ``meta.json`` of an aakit-synth set.
    """
    root = Path(root)
    meta = _read_meta(root)
    if meta is None or meta.get("name") != DATASET_NAME:
        raise SynthError(f"{root / 'meta.json'}: missing or not an {DATASET_NAME} meta file")
    names = meta["class_names"]
    k = len(names)
    sets = root / "ImageSets" / "Segmentation"
    scenes = json.loads((root / "scenes.json").read_text(encoding="utf-8"))
    classes = {i + 1: c for i, c in enumerate(meta["classes"])}
    lines = [f"{meta['name']} v{meta['version']}  seed {meta['seed']}  {meta['image_size']}px  "
             f"{k - 1} classes  train {meta['n_train']}  val {meta['n_val']}"]
    for split in ("train", "val"):
        ids = (sets / f"{split}.txt").read_text(encoding="utf-8").split()
        if not ids:
            continue
        n_img = np.zeros(k, dtype=np.int64)
        area = np.zeros(k)
        on_ctx = np.zeros(k, dtype=np.int64)
        n_cls = []
        fg = []
        for iid in ids:
            m = np.asarray(Image.open(root / "SegmentationClassAug" / f"{iid}.png"))
            counts = np.bincount(m.ravel(), minlength=256)[:k]
            present = np.flatnonzero(counts[1:]) + 1
            n_img[present] += 1
            area[present] += counts[present] / m.size
            n_cls.append(len(present))
            fg.append(1 - counts[0] / m.size)
            for c in present.tolist():
                on_ctx[c] += scenes[iid]["background"] == classes[c]["context"]
        lines.append(f"[{split}] {len(ids)} images, {np.mean(n_cls):.2f} classes/image, "
                     f"foreground {100 * np.mean(fg):.1f}% of pixels")
        lines.append(f"  {'class':<16} {'images':>6} {'area%':>6} {'on own context%':>15}")
        for c in range(1, k):
            mean_area = 100 * area[c] / max(n_img[c], 1)
            ctx = 100 * on_ctx[c] / max(n_img[c], 1)
            lines.append(f"  {names[c]:<16} {n_img[c]:>6} {mean_area:>6.1f} {ctx:>15.0f}")
        if str(meta["version"]).startswith("2."):
            from aakit.data.synth_v2 import describe_lines

            lines += describe_lines(scenes, ids)
        elif str(meta["version"]).startswith("3."):
            from aakit.data import synth_v3

            lines += synth_v3.describe_lines(scenes, ids)
    return "\n".join(lines)


def contact_sheet(
    root: str | Path, ids: list[str] | None = None, n: int = 16, cols: int = 4
) -> Image.Image:
    """Image | mask (with band) pairs in a grid, for eyeballing the set.

    Args:
        root: a generated set.
        ids: images to show (default: the first ``n`` train images).
        n: number of images when ``ids`` is None.
        cols: pairs per row.
    """
    root = Path(root)
    if ids is None:
        ids = (root / "ImageSets" / "Segmentation" / "train.txt").read_text(encoding="utf-8").split()[:n]
    tiles = []
    for iid in ids:
        im = Image.open(root / "JPEGImages" / f"{iid}.jpg").convert("RGB")
        mk = Image.open(root / "SegmentationClass" / f"{iid}.png").convert("RGB")
        pair = Image.new("RGB", (im.width * 2 + 4, im.height), (255, 255, 255))
        pair.paste(im, (0, 0))
        pair.paste(mk, (im.width + 4, 0))
        tiles.append(pair)
    rows = (len(tiles) + cols - 1) // cols
    tw, th = tiles[0].size
    sheet = Image.new("RGB", (cols * (tw + 8), rows * (th + 8)), (255, 255, 255))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * (tw + 8), (i // cols) * (th + 8)))
    return sheet
