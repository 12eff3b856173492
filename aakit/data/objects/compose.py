"""Drawing one image of the real-object lab: cut-outs pasted on a background photo.

Per image: a background (a random crop of a photo, flipped at random; with probability
``context_prob`` one of the first object's class context, :data:`sources.CLASS_CONTEXT`), then
1-3 objects, each a cut-out of its split, scaled (longest side a share of the image side),
flipped, colour-jittered, colour-matched toward the background under it and pasted with a
feathered alpha. The ground truth is the cut-out's own alpha (>= 0.5) after the same resize,
flip and shift: an exact mask; a later object hides an earlier one where they overlap.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from aakit.errors import AakitError


class ObjectsError(AakitError, ValueError):
    """Bad arguments, knobs or directory for the real-object lab (one line)."""


@dataclass(frozen=True)
class ObjectKnobs:
    """The lab's knobs (all written to ``meta.json``). Sizes are shares of the image side
    unless they say px."""

    object_count: tuple[float, float] = (1, 3)  # objects per image, drawn uniformly in [lo, hi]
    scale_range: tuple[float, float] = (0.35, 0.7)  # longest side of a pasted object / image side
    flip_prob: float = 0.5  # P(an object, and the background, is mirrored left-right)
    colour_jitter: float = 0.15  # brightness, contrast and saturation each scaled by 1 +- this
    colour_match: float = 0.3  # share of the gap between the object's and the background's mean colour closed
    feather_px: float = 1.0  # Gaussian sigma (px) of the alpha the object is pasted with (0: hard edge)
    min_visible: float = 0.4  # an object keeps at least this share of its pixels visible
    context_prob: float = 0.0  # P(background of the first object's class context), else any
    val_fraction: float = 0.3  # share of each class's cut-outs (and of the backgrounds) kept for val

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


DEFAULT_KNOBS = ObjectKnobs()


def check_knobs(k: ObjectKnobs) -> ObjectKnobs:
    """``k`` unchanged, or :class:`ObjectsError` naming the first knob out of range."""
    for name in ("flip_prob", "colour_match", "min_visible", "context_prob"):
        if not 0.0 <= getattr(k, name) <= 1.0:
            raise ObjectsError(f"objects: knob {name} = {getattr(k, name)} must be in [0, 1]")
    if not 0.0 <= k.colour_jitter < 1.0:
        raise ObjectsError(f"objects: knob colour_jitter = {k.colour_jitter} must be in [0, 1)")
    if not 0.0 <= k.feather_px <= 8.0:
        raise ObjectsError(f"objects: knob feather_px = {k.feather_px} must be in [0, 8]")
    if not 0.05 <= k.val_fraction <= 0.7:
        raise ObjectsError(f"objects: knob val_fraction = {k.val_fraction} must be in [0.05, 0.7]")
    lo, hi = k.scale_range
    if not 0.05 <= lo <= hi <= 1.0:
        raise ObjectsError(f"objects: knob scale_range = {(lo, hi)} needs 0.05 <= low <= high <= 1")
    lo, hi = k.object_count
    if not (float(lo).is_integer() and float(hi).is_integer() and 1 <= lo <= hi <= 6):
        raise ObjectsError(f"objects: knob object_count = {(lo, hi)} needs whole numbers 1 <= low <= high <= 6")
    return k


def knobs_from_args(assignments: list[str]) -> ObjectKnobs:
    """:data:`DEFAULT_KNOBS` with ``NAME=VALUE`` assignments (a pair as ``0.3,0.6``), checked."""
    fields = dataclasses.asdict(DEFAULT_KNOBS)
    changes: dict[str, Any] = {}
    for item in assignments:
        name, sep, value = (s.strip() for s in item.partition("="))
        if not sep:
            raise ObjectsError(f"--knob {item!r}: expected NAME=VALUE")
        if name not in fields:
            raise ObjectsError(f"--knob {name}: no such knob of the objects lab (known: {', '.join(fields)})")
        try:
            parts = tuple(float(x) for x in value.split(","))
        except ValueError:
            parts = ()
        want = 2 if isinstance(fields[name], tuple) else 1
        if len(parts) != want:
            raise ObjectsError(f"--knob {name}={value}: expected {'2 comma-separated numbers' if want == 2 else 'a number'}")
        changes[name] = parts if want == 2 else parts[0]
    return check_knobs(dataclasses.replace(DEFAULT_KNOBS, **changes))


# ----------------------------------------------------------------------------- geometry
def transform_alpha(rgba: np.ndarray, side: int, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """The cut-out resized so its longest side is ``side`` px (bilinear, premultiplied alpha),
    mirrored when ``flip``: ``(rgb float 0-255, alpha float 0-1)``. The mask is ``alpha >= 0.5``."""
    h, w = rgba.shape[:2]
    s = side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    im = Image.fromarray(rgba, mode="RGBA").resize(size, Image.Resampling.BILINEAR)
    arr = np.asarray(im).astype(np.float32)
    if flip:
        arr = arr[:, ::-1]
    return arr[..., :3], arr[..., 3] / 255.0


def paste_window(size: int, oh: int, ow: int, y: int, x: int) -> tuple[slice, slice, slice, slice]:
    """Image and object slices of an ``oh x ow`` object whose top-left is at ``(y, x)``."""
    y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + oh, size), min(x + ow, size)
    return slice(y0, y1), slice(x0, x1), slice(y0 - y, y1 - y), slice(x0 - x, x1 - x)


def object_mask(rgba: np.ndarray, size: int, side: int, flip: bool, y: int, x: int) -> np.ndarray:
    """The full-image mask (bool) of one pasted object, before occlusion: its exact alpha mask."""
    _, alpha = transform_alpha(rgba, side, flip)
    out = np.zeros((size, size), dtype=bool)
    iy, ix, oy, ox = paste_window(size, *alpha.shape, y, x)
    out[iy, ix] = alpha[oy, ox] >= 0.5
    return out


# ----------------------------------------------------------------------------- photometry
def background_crop(rng: np.random.Generator, photo: np.ndarray, size: int, flip_prob: float) -> tuple[np.ndarray, dict[str, Any]]:
    """A random square crop (side 50-100 % of the photo's shorter side), resized to ``size``."""
    h, w = photo.shape[:2]
    side = int(round(min(h, w) * rng.uniform(0.5, 1.0)))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    flip = bool(rng.random() < flip_prob)
    im = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(im).astype(np.float32)
    return (arr[:, ::-1] if flip else arr), {"crop": [y, x, side], "flip": flip}


def jitter_colour(rng: np.random.Generator, rgb: np.ndarray, amount: float) -> tuple[np.ndarray, list[float]]:
    """Brightness, contrast and saturation each scaled by a factor in ``1 +- amount``."""
    b, c, s = (float(v) for v in rng.uniform(1 - amount, 1 + amount, size=3))
    grey = rgb.mean(axis=-1, keepdims=True)
    out = grey + s * (rgb - grey)
    out = out.mean() + c * (out - out.mean())
    return out * b, [round(b, 4), round(c, 4), round(s, 4)]


def match_colour(rgb: np.ndarray, alpha: np.ndarray, under: np.ndarray, share: float) -> np.ndarray:
    """Shift the object's mean colour ``share`` of the way toward the background's under it."""
    if share <= 0:
        return rgb
    w = alpha[..., None]
    mean_obj = (rgb * w).sum(axis=(0, 1)) / max(float(w.sum()), 1e-6)
    mean_bg = under.reshape(-1, 3).mean(axis=0)
    return rgb + share * (mean_bg - mean_obj)


def composite(img: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, feather_px: float,
              window: tuple[slice, slice, slice, slice]) -> np.ndarray:
    """Paste ``rgb`` with its alpha blurred by ``feather_px`` (the mask keeps the sharp alpha)."""
    soft = gaussian_filter(alpha, feather_px, mode="constant") if feather_px > 0 else alpha
    iy, ix, oy, ox = window
    a = soft[oy, ox, None]
    img = img.copy()
    img[iy, ix] = img[iy, ix] * (1 - a) + rgb[oy, ox] * a
    return img


# ----------------------------------------------------------------------------- one image
@dataclass(frozen=True)
class Pool:
    """What one split draws from: cut-outs per class (arrays and names) and backgrounds."""

    classes: tuple[str, ...]
    cutouts: tuple[tuple[np.ndarray, ...], ...]  # per class index
    names: tuple[tuple[str, ...], ...]
    backgrounds: tuple[np.ndarray, ...]
    background_names: tuple[str, ...]
    background_contexts: tuple[str, ...]
    class_contexts: tuple[str, ...]


def _choose_background(rng: np.random.Generator, pool: Pool, first_cls: int, knobs: ObjectKnobs) -> int:
    u, pick = rng.random(), rng.random()
    want = pool.class_contexts[first_cls]
    matching = [i for i, c in enumerate(pool.background_contexts) if c == want]
    candidates = matching if (u < knobs.context_prob and matching) else list(range(len(pool.backgrounds)))
    return candidates[int(pick * len(candidates))]


def _place(rng: np.random.Generator, rgba: np.ndarray, size: int, knobs: ObjectKnobs) -> tuple[int, bool, int, int]:
    """Side, flip and top-left of one object (at most a quarter of it outside the frame)."""
    side = int(round(rng.uniform(*knobs.scale_range) * size))
    flip = bool(rng.random() < knobs.flip_prob)
    h, w = rgba.shape[:2]
    oh, ow = max(1, round(h * side / max(h, w))), max(1, round(w * side / max(h, w)))
    y = int(rng.integers(-oh // 4, size - oh + oh // 4 + 1))
    x = int(rng.integers(-ow // 4, size - ow + ow // 4 + 1))
    return side, flip, y, x


def render(rng: np.random.Generator, pool: Pool, size: int, knobs: ObjectKnobs) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One image: ``(RGB uint8, label uint8 with 0 = background, 1..K = class, scene record)``."""
    lo, hi = (int(v) for v in knobs.object_count)
    count = int(rng.integers(lo, hi + 1))
    classes = [int(c) for c in rng.integers(0, len(pool.classes), size=count)]
    bg = _choose_background(rng, pool, classes[0], knobs)
    img, bg_desc = background_crop(rng, pool.backgrounds[bg], size, knobs.flip_prob)
    label = np.zeros((size, size), dtype=np.uint8)
    objects: list[dict[str, Any]] = []
    for cls in classes:
        obj = _add_object(rng, img, label, pool, cls, size, knobs, objects)
        if obj is not None:
            img, label, desc = obj
            objects.append(desc)
    for o in objects:
        o["visible_px"] = int((label == o.pop("_id")).sum())
    label = _relabel(label, objects)
    scene = {"background": pool.background_names[bg], **bg_desc, "objects": objects}
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), label, scene


def _add_object(rng: np.random.Generator, img: np.ndarray, label: np.ndarray, pool: Pool, cls: int,
                size: int, knobs: ObjectKnobs, placed: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
    """Paste one object of class ``cls``; ``label`` holds object ids (1, 2, ...) while drawing.
    None when no placement in 8 tries keeps every object's visible share (it is left out)."""
    k = int(rng.integers(0, len(pool.cutouts[cls])))
    rgba = pool.cutouts[cls][k]
    jit_rng = np.random.default_rng(rng.integers(0, 2**63))
    for _ in range(8):
        side, flip, y, x = _place(rng, rgba, size, knobs)
        rgb, alpha = transform_alpha(rgba, side, flip)
        window = paste_window(size, *alpha.shape, y, x)
        iy, ix, oy, ox = window
        mask = np.zeros_like(label, dtype=bool)
        mask[iy, ix] = alpha[oy, ox] >= 0.5
        new_id = len(placed) + 1
        trial = np.where(mask, new_id, label)
        if _visible_enough(trial, placed, mask, alpha, knobs.min_visible):
            break
    else:
        return None
    rgb, jitter = jitter_colour(jit_rng, rgb, knobs.colour_jitter)
    rgb = match_colour(rgb, alpha, img[iy, ix], knobs.colour_match)
    img = composite(img, rgb, alpha, knobs.feather_px, window)
    desc = {"class": cls + 1, "cutout": pool.names[cls][k], "side": side, "flip": flip,
            "top_left": [y, x], "jitter": jitter, "px": int(mask.sum()), "_id": new_id}
    return img, trial.astype(np.uint8), desc


def _visible_enough(trial: np.ndarray, placed: list[dict[str, Any]], mask: np.ndarray,
                    alpha: np.ndarray, share: float) -> bool:
    full = float((alpha >= 0.5).sum())
    if full == 0 or mask.sum() < share * full:
        return False
    return all((trial == o["_id"]).sum() >= share * o["px"] for o in placed)


def _relabel(ids: np.ndarray, objects: list[dict[str, Any]]) -> np.ndarray:
    """Object ids -> class indices."""
    lut = np.zeros(256, dtype=np.uint8)
    for i, o in enumerate(objects, start=1):
        lut[i] = o["class"]
    return lut[ids]
