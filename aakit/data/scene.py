"""Drawing primitives of the embedded benchmark, shared by its versions (:mod:`aakit.data.synth`:
``v1``, ``v2``, ...): the class and knob records (a class table: :func:`class_table`),
signed-distance shapes, soft coverage, smooth noise and textures. Version 1's bytes depend on these; change them only with a new
version (docs/benchmark.md).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from aakit.errors import AakitError


class SynthError(AakitError, ValueError):
    """Bad arguments or a bad directory for the synthetic benchmark (one-line message)."""


@dataclass(frozen=True)
class ClassSpec:
    """One object class: the cues that, together, identify it."""

    name: str
    shape: str  # see _SHAPE_SDF
    colour: str  # key of COLOUR_FAMILIES
    texture: str  # see texture
    mark: str  # black/white badge pattern, see _mark_pattern; unique per class
    context: str  # preferred background, key of BACKGROUNDS


def class_table(text: str, source: str = "class table") -> tuple[ClassSpec, ...]:
    """A version's classes from a text table, one class a line, its six cues in
    :class:`ClassSpec`'s order (name shape colour texture mark context) separated by spaces;
    blank lines and ``#`` comments are skipped. Label ``i + 1`` is the table's ``i``-th class."""
    rows = [line.split("#", 1)[0].split() for line in text.splitlines()]
    bad = [r for r in rows if r and len(r) != len(dataclasses.fields(ClassSpec))]
    if bad:
        raise SynthError(f"{source}: a line with {len(bad[0])} cells, not 6: {' '.join(bad[0])}")
    return tuple(ClassSpec(*r) for r in rows if r)


def read_class_table(path: Path) -> tuple[ClassSpec, ...]:
    """:func:`class_table` of a file (a version's ``classes_vN.txt``, shipped with the package)."""
    return class_table(Path(path).read_text(encoding="utf-8"), str(path))


@dataclass(frozen=True)
class Knobs:
    """Difficulty knobs; all of them are written to ``meta.json`` under ``"knobs"``.

    Sizes are fractions of the image side unless they say px.
    """

    mark_scale: float = 0.22  # badge radius / object radius (the discriminative part's size)
    mark_prob: float = 1.0  # P(an object wears its badge)
    context_prob: float = 0.8  # P(background = the primary object's preferred scheme)
    cooccur_prob: float = 0.4  # P(an extra object comes from the primary's context group)
    object_count_probs: tuple[float, float, float] = (0.5, 0.35, 0.15)  # 1, 2, 3 objects
    radius_range: tuple[float, float] = (0.15, 0.32)  # object radius / image side
    aspect_range: tuple[float, float] = (0.6, 1.0)  # minor / major extent
    edge_softness_px: float = 1.2  # width of the anti-aliased edge ramp
    blur_sigma_px: float = 0.6  # optical blur of the whole image
    noise_std: float = 5.0  # per-pixel Gaussian noise, grey levels
    illumination_jitter: float = 0.2  # global gain drawn in [1 - j, 1 + j]
    illumination_gradient: float = 0.12  # linear brightness ramp across the image, +-
    colour_cast: float = 0.04  # per-channel gain jitter, +-
    texture_contrast: float = 0.35  # darkness of the texture's second tone
    shadow_strength: float = 0.35  # darkening under each object (background pixels)
    min_visible_frac: float = 0.35  # an object keeps at least this share of its area visible

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists), as stored in ``meta.json``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def ellipse_sdf(u: np.ndarray, v: np.ndarray, r: float, aspect: float) -> np.ndarray:
    """Approximate signed distance to an ellipse with semi-axes r and r * aspect (iq's bound)."""
    a, b = r, r * aspect
    k0 = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    k1 = np.sqrt((u / a**2) ** 2 + (v / b**2) ** 2)
    return np.where(k1 > 1e-9, k0 * (k0 - 1.0) / np.maximum(k1, 1e-9), -b)


def coverage(sdf: np.ndarray, softness: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] from a signed distance: a linear ramp ``softness`` px wide."""
    return np.clip(0.5 - sdf / softness, 0.0, 1.0)


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float | tuple[float, float]
) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to zero mean and unit standard deviation."""
    n = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (n - n.mean()) / (n.std() + 1e-8)


def texture(name: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """Second-tone weight in [0, 1] of a body texture, in the object's frame (turns with it)."""
    if name == "plain":
        return np.zeros_like(u)
    if name == "stripes":
        return 0.5 + 0.5 * np.sin(2 * np.pi * u / period)
    if name == "dots":
        cu = (u / period) % 1.0 - 0.5
        cv = (v / period) % 1.0 - 0.5
        return coverage(np.hypot(cu, cv) * period - 0.28 * period, 1.0)
    if name == "checker":
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float64)
    raise SynthError(f"unknown texture {name!r}")


@dataclass
class SceneObject:
    cls: int  # 1..K
    cx: float
    cy: float
    r: float
    aspect: float
    angle: float
    coverage: np.ndarray = field(repr=False)  # (H, W) soft coverage of the body
    sdf: np.ndarray = field(repr=False)

