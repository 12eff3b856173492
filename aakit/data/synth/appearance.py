"""How a scene looks: the background schemes, an object's colour and texture period, the
badge patterns (shared by every version; a version may pick its own colours through its steps)."""
from __future__ import annotations

import colorsys
from typing import Callable

import numpy as np

from aakit.data.scene import SynthError
from aakit.data.scene import smooth_noise as _smooth_noise
from aakit.data.synth.v1 import COLOUR_FAMILIES

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

