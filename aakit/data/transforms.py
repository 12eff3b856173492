"""Training augmentation (METHOD.md section 4): rescale, flip, normalise, crop.

The order is RRM's (``tool/myTool.py: get_data_from_chunk_v2``): rescale the image, flip it,
normalise it, then take a random ``crop x crop`` window, padding with zeros where the image is
smaller than the crop. Zero in the normalised image is the mean colour. What the padding is
afterwards is ``data.pad_mode``:

* ``rrm`` (default, as RRM): the un-normalised crop the CRF sees is padded with the mean colour
  too (RRM un-normalises the padded crop: ``(0 * std + mean) * 255`` cast to uint8, i.e.
  (123, 116, 103) for the ImageNet mean), and the padded pixels are trained: training gives
  the pseudo labels no ``valid`` map, so they label the padding like any other pixel;
* ``ignore``: the un-normalised crop is padded black and training passes ``valid`` (False on
  the padding) to the pseudo labels, which set the padding to 255.

``valid`` itself is always where the image is (False on the padding), in both modes.

A mask (full supervision) is padded with 255 (ignore) in both modes: RRM has no fully
supervised training; psa's ``random_crop`` and DeepLab-style crops fill the label with the
ignore value.

Two differences from RRM, both fixed by METHOD.md / the paper:

* the rescale factor is drawn so that the image **area** scales by ``U(0.7, 1.3)`` (paper 4.1:
  "w.r.t. the original image area"), so each side scales by the square root of that draw.
  RRM scales each *side* by ``U(0.7, 1.3)`` and draws one factor per batch; here every image
  draws its own.
* every random number comes from a ``numpy.random.Generator`` passed in, never from the global
  ``random`` / ``np.random`` state, so a run is reproducible from its seed.

All functions are pure numpy/PIL and work on ``(H, W, 3)`` uint8 images and ``(H, W)`` uint8
masks (palette indices, 255 = ignore). The same geometry (scale, flip, crop window) is applied
to the image and its mask.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from PIL import Image

from aakit.labels import IGNORE_INDEX

PadMode = Literal["rrm", "ignore"]
PAD_MODES: tuple[str, ...] = ("rrm", "ignore")

# A crop box: (container_top, container_left, image_top, image_left, height, width). The
# ``height x width`` window of the image starting at (image_top, image_left) is pasted into the
# crop container at (container_top, container_left); the rest of the container is padding.
CropBox = tuple[int, int, int, int, int, int]


# ----------------------------------------------------------------------------- rescale
def area_to_side_factor(area_factor: float) -> float:
    """Side scale factor that multiplies the image area by ``area_factor`` (its square root)."""
    return math.sqrt(area_factor)


def rescale(
    image: np.ndarray, mask: np.ndarray | None, side_factor: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize image (bilinear) and mask (nearest) so that each side scales by ``side_factor``.

    Args:
        image: (H, W, 3) uint8.
        mask: (H, W) uint8 palette indices, or None.
        side_factor: multiplies both height and width; sizes are rounded, at least 1 pixel.

    Returns:
        The resized image and mask (mask None if none was given).
    """
    h, w = image.shape[:2]
    new_w = max(1, int(round(w * side_factor)))
    new_h = max(1, int(round(h * side_factor)))
    if (new_h, new_w) == (h, w):
        return image, mask
    out = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    out_mask = None
    if mask is not None:
        # Nearest sampling: labels must never be blended into meaningless in-between values.
        out_mask = np.asarray(Image.fromarray(mask).resize((new_w, new_h), Image.NEAREST))
    return out, out_mask


def random_rescale(
    image: np.ndarray,
    mask: np.ndarray | None,
    *,
    rng: np.random.Generator,
    scale_range: tuple[float, float] = (0.7, 1.3),
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rescale so that the image AREA is multiplied by a factor drawn from ``U(scale_range)``.

    Each side is multiplied by the square root of the drawn area factor (METHOD.md section 4).
    """
    lo, hi = scale_range
    area_factor = float(rng.uniform(lo, hi))
    return rescale(image, mask, area_to_side_factor(area_factor))


# ----------------------------------------------------------------------------- flip
def random_flip(
    image: np.ndarray,
    mask: np.ndarray | None,
    *,
    rng: np.random.Generator,
    p: float = 0.5,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Mirror image and mask left-right together with probability ``p``."""
    if rng.random() < p:
        image = np.ascontiguousarray(image[:, ::-1])
        if mask is not None:
            mask = np.ascontiguousarray(mask[:, ::-1])
    return image, mask


# ----------------------------------------------------------------------------- normalise
def normalize(
    image: np.ndarray, mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """``(image / 255 - mean) / std`` per channel, as float32 (ImageNet statistics by default)."""
    x = image.astype(np.float32) / 255.0
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def mean_colour(mean: Sequence[float]) -> np.ndarray:
    """The uint8 colour whose normalised value is 0, as RRM gets it: ``mean * 255`` truncated.

    RRM un-normalises the zero-padded crop, ``(0 * std + mean) * 255``, and casts it to uint8
    (truncation): (123, 116, 103) for the ImageNet mean.
    """
    return (np.asarray(mean, dtype=np.float64) * 255.0).astype(np.uint8)


# ----------------------------------------------------------------------------- crop
def random_crop_box(height: int, width: int, crop: int, rng: np.random.Generator) -> CropBox:
    """Draw where a ``crop x crop`` window goes, per axis, as RRM/psa do.

    Along an axis longer than the crop, the window starts at a random image offset. Along an
    axis shorter than the crop, the whole image side is placed at a random offset inside the
    container and the rest is padding.
    """

    def axis(size: int) -> tuple[int, int, int]:
        space = size - crop
        if space > 0:
            # (container offset, image offset, length)
            return 0, int(rng.integers(0, space + 1)), crop
        return int(rng.integers(0, -space + 1)), 0, size

    ct, it, ch = axis(height)
    cl, il, cw = axis(width)
    return ct, cl, it, il, ch, cw


def centre_crop_box(height: int, width: int, crop: int) -> CropBox:
    """The ``crop x crop`` window at the centre of the image (the mechanism probe's fixed crop):
    the middle of an axis longer than the crop, or the whole side centred in the container."""

    def axis(size: int) -> tuple[int, int, int]:
        space = size - crop
        return (0, space // 2, crop) if space > 0 else (-space // 2, 0, size)

    ct, it, ch = axis(height)
    cl, il, cw = axis(width)
    return ct, cl, it, il, ch, cw


def crop_with_box(
    array: np.ndarray, box: CropBox, crop: int, fill: float | int | bool
) -> np.ndarray:
    """Cut ``array`` (H, W, ...) to a ``crop x crop`` container filled with ``fill`` elsewhere."""
    ct, cl, it, il, ch, cw = box
    out = np.full((crop, crop, *array.shape[2:]), fill, dtype=array.dtype)
    out[ct : ct + ch, cl : cl + cw] = array[it : it + ch, il : il + cw]
    return out


def random_crop(
    image: np.ndarray,
    raw: np.ndarray,
    mask: np.ndarray | None,
    *,
    crop: int,
    rng: np.random.Generator,
    raw_fill: Sequence[int] = (0, 0, 0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Random ``crop x crop`` window of the normalised image, the raw image and the mask.

    Padding: 0 in the normalised image (the mean colour), ``raw_fill`` in the raw image,
    ``valid=False``, 255 (ignore) in the mask.

    Returns:
        (image, raw, valid, mask): float32 (crop, crop, 3), uint8 (crop, crop, 3),
        bool (crop, crop) False on the padding, uint8 (crop, crop) or None.
    """
    h, w = image.shape[:2]
    box = random_crop_box(h, w, crop, rng)
    valid = crop_with_box(np.ones((h, w), dtype=bool), box, crop, False)
    out_mask = crop_with_box(mask, box, crop, IGNORE_INDEX) if mask is not None else None
    out_raw = crop_with_box(raw, box, crop, 0)
    out_raw[~valid] = np.asarray(raw_fill, dtype=raw.dtype)
    return crop_with_box(image, box, crop, 0.0), out_raw, valid, out_mask


# ----------------------------------------------------------------------------- composition
@dataclass(frozen=True)
class TrainTransform:
    """Rescale -> flip -> normalise -> crop, with one geometry for image, raw image and mask.

    Example::

        t = TrainTransform(crop=321)
        out = t(image, rng=np.random.default_rng(0))
        out["image"].shape, out["raw"].shape, out["valid"].shape  # (321,321,3) x2, (321,321)
    """

    crop: int = 321
    scale_range: tuple[float, float] = (0.7, 1.3)
    flip: bool = True
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    pad_mode: PadMode = "rrm"

    def __post_init__(self) -> None:
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}")

    def __call__(
        self,
        image: np.ndarray,
        mask: np.ndarray | None = None,
        *,
        rng: np.random.Generator,
    ) -> dict[str, np.ndarray]:
        """Augment one image (and its mask).

        Args:
            image: (H, W, 3) uint8 RGB.
            mask: (H, W) uint8 palette indices, or None (image-level supervision).
            rng: the only source of randomness.

        Returns:
            ``image`` float32 (crop, crop, 3) normalised (0 on padding), ``raw`` uint8
            (crop, crop, 3) the same crop un-normalised (padding: the mean colour with
            ``pad_mode="rrm"``, black with ``"ignore"``), ``valid`` bool (crop, crop), False
            on the padding, and ``mask`` uint8 (crop, crop), 255 on the padding, only if a
            mask was given.
        """
        image, mask = random_rescale(image, mask, rng=rng, scale_range=self.scale_range)
        # Draw the coin even with flipping off, so the crop draws do not depend on the switch.
        image, mask = random_flip(image, mask, rng=rng, p=0.5 if self.flip else 0.0)
        norm = normalize(image, self.mean, self.std)
        fill = tuple(int(c) for c in mean_colour(self.mean)) if self.pad_mode == "rrm" else (0, 0, 0)
        norm, raw, valid, mask = random_crop(norm, image, mask, crop=self.crop, rng=rng, raw_fill=fill)
        out = {"image": norm, "raw": raw, "valid": valid}
        if mask is not None:
            out["mask"] = mask
        return out

    def centre(self, image: np.ndarray, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """As :meth:`__call__` without a random draw: no rescale, no flip, the centre crop
        (:func:`centre_crop_box`); the same padding. The fixed probe of :mod:`aakit.mechanism`."""
        norm = normalize(image, self.mean, self.std)
        box = centre_crop_box(image.shape[0], image.shape[1], self.crop)
        valid = crop_with_box(np.ones(image.shape[:2], dtype=bool), box, self.crop, False)
        raw = crop_with_box(image, box, self.crop, 0)
        fill = tuple(int(c) for c in mean_colour(self.mean)) if self.pad_mode == "rrm" else (0, 0, 0)
        raw[~valid] = np.asarray(fill, dtype=raw.dtype)
        out = {"image": crop_with_box(norm, box, self.crop, 0.0), "raw": raw, "valid": valid}
        if mask is not None:
            out["mask"] = crop_with_box(mask, box, self.crop, IGNORE_INDEX)
        return out
