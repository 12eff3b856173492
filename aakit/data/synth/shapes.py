"""The class shapes as signed distances (px, negative inside), in an object's own frame."""
from __future__ import annotations

import numpy as np

from aakit.data.scene import SynthError
from aakit.data.scene import ellipse_sdf as _ellipse_sdf


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

