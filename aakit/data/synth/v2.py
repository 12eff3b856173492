"""Version 2 of the embedded benchmark: distinct classes, and the two phenomena AA and LR fix.

Version 1 (:mod:`aakit.data.synth.v1`) stays frozen. Version 2 draws its scenes with the same code
(layout, backgrounds, badges, photometry, labels) and changes three things:

* **Classes** (:data:`CLASSES`): ten materials (colour family + texture), one per class, on ten
  well-separated hues (:data:`COLOUR_FAMILIES`); classes next to each other in hue also differ in
  texture and shape. A patch of body names the class; the badge is no longer needed.
* **Boundary confounding** (knob ``boundary_blend``): each object's border blends into its
  surroundings over a band of ``boundary_blend * 0.25 * radius`` px — a wider soft edge and a
  same-hue halo that tints what lies outside the object, fading with distance. The ground truth
  keeps the true outline (the halo is background).
* **Confident decoys** (knob ``decoy_prob``): with this probability per object, 1-2 small blobs
  of the object's own material (same colour and texture, no badge) lie beside it; the ground
  truth calls them background.

Their randomness comes from generators of their own (:func:`make_steps`), never from the
image's, so switching a phenomenon on or off leaves the rest of the image unchanged, and a
smaller ``decoy_prob`` keeps a subset of the decoys. docs/benchmark.md, "Version 2". The module is a
version of :mod:`aakit.data.synth`'s registry ("Adding a version").
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aakit.data.scene import (
    ClassSpec, Knobs, SceneObject, SynthError, coverage, read_class_table, ellipse_sdf, smooth_noise, texture,
)

VERSION = "2.0"
DEFAULT_N_VAL = 1000

# Hue in degrees of each colour family: neighbours 28-44 degrees apart, jitter +-HUE_JITTER.
COLOUR_FAMILIES: dict[str, float] = {
    "red": 0.0,
    "orange": 28.0,
    "yellow": 56.0,
    "lime": 88.0,
    "green": 128.0,
    "teal": 172.0,
    "blue": 212.0,
    "indigo": 246.0,
    "purple": 282.0,
    "pink": 322.0,
}
HUE_JITTER = 4.0

# One material per class. Around the hue circle the textures cycle stripes, dots, checker,
# plain and the shapes differ between neighbours; each background is preferred by two classes
# of distant hues (sand 1+5, water 2+10, brick 3+6, sky 4+9, grass 7+8).
# The table (data, one class a line): classes_v2.txt beside this file.
CLASSES: tuple[ClassSpec, ...] = read_class_table(Path(__file__).with_name("classes_v2.txt"))

HALO_STRENGTH = (0.45, 0.75)  # peak tint of the halo at the outline, drawn per object
HALO_WOBBLE = 0.4  # the band's width varies along the outline by +- this share
DECOY_RADIUS = (0.25, 0.4)  # decoy radius / object radius
DECOY_DISTANCE = (1.2, 1.8)  # decoy centre to object centre, in object radii
DECOY_GAP_PX = 2.0  # a decoy keeps this far from every object and other decoy
_DECOY_TRIES = 12  # candidate spots per decoy (drawn whether used or not)


@dataclass(frozen=True)
class KnobsV2(Knobs):
    """Version 2's knobs: version 1's (``context_prob`` lower) plus the two phenomena.

    A phenomenon's knob at 0 switches it off.
    """

    context_prob: float = 0.5  # P(background = the primary object's preferred scheme); v1: 0.8
    boundary_blend: float = 1.0  # blend band width = this * 0.25 * object radius (px), 0..2
    decoy_prob: float = 0.5  # P(an object has 1-2 same-material decoys beside it)


DEFAULT_KNOBS = KnobsV2()


def check_knobs(knobs: Knobs | None) -> KnobsV2:
    """Version 2's knobs (the defaults for None); refuses version 1's or out-of-range values."""
    if knobs is None:
        return DEFAULT_KNOBS
    if not isinstance(knobs, KnobsV2):
        raise SynthError(f"synthetic set: version 2 takes synth_v2.KnobsV2, not {type(knobs).__name__}")
    if not 0.0 <= knobs.boundary_blend <= 2.0:
        raise SynthError(f"synthetic set: knob boundary_blend = {knobs.boundary_blend} must be in [0, 2]")
    if not 0.0 <= knobs.decoy_prob <= 1.0:
        raise SynthError(f"synthetic set: knob decoy_prob = {knobs.decoy_prob} must be in [0, 1]")
    return knobs


def meta_extra() -> dict[str, Any]:
    """What version 2 adds to ``meta.json``: its colour table and the phenomena's constants."""
    return {
        "colour_families": dict(COLOUR_FAMILIES),
        "hue_jitter_deg": HUE_JITTER,
        "boundary_blend": {"band_px": "boundary_blend * 0.25 * object radius",
                           "halo_strength": list(HALO_STRENGTH), "halo_wobble": HALO_WOBBLE},
        "decoys": {"count": [1, 2], "radius": list(DECOY_RADIUS), "distance": list(DECOY_DISTANCE),
                   "gap_px": DECOY_GAP_PX, "tries": _DECOY_TRIES},
    }


@dataclass(frozen=True)
class _Material:
    texture: str
    base: np.ndarray  # RGB 0-255
    period: float  # texture period, px


class Steps:
    """Version 2's drawing steps for one image (:class:`aakit.data.synth.render.SceneSteps`)."""

    def __init__(self, knobs: KnobsV2, halo_rng: np.random.Generator,
                 decoy_rng: np.random.Generator) -> None:
        self.knobs = knobs
        self.halo_rng = halo_rng
        self.decoy_rng = decoy_rng
        self.materials: list[_Material] = []

    def colour(self, rng: np.random.Generator, family: str) -> np.ndarray:
        """A colour of the family: hue jittered by +-HUE_JITTER, saturation and value drawn."""
        hue = (COLOUR_FAMILIES[family] + rng.uniform(-HUE_JITTER, HUE_JITTER)) / 360.0 % 1.0
        rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 0.9), rng.uniform(0.62, 0.92))
        return np.array(rgb) * 255.0

    def on_object(self, img: np.ndarray, o: SceneObject, spec: ClassSpec, base: np.ndarray,
                  period: float, light: float, xx: np.ndarray,
                  yy: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Remember the object's material; draw its halo; its body alpha with the wider edge."""
        self.materials.append(_Material(spec.texture, base, period))
        img, alpha, halo = blend_boundary(self.halo_rng, img, o, base, self.knobs)
        return img, alpha, {"halo": halo}

    def after_objects(self, img: np.ndarray, objs: list[SceneObject], light: float, xx: np.ndarray,
                      yy: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw the decoys beside the objects."""
        return add_decoys(self.decoy_rng, img, objs, self.materials, self.knobs, light, xx, yy)


def make_steps(knobs: Knobs, seed: int, split: int, index: int) -> Steps:
    """The steps of image ``index`` of split number ``split``: generators of their own, one per
    phenomenon, from ``SeedSequence([seed, split, index, 2])``."""
    halo_ss, decoy_ss = np.random.SeedSequence([seed, split, index, 2]).spawn(2)
    return Steps(check_knobs(knobs), np.random.default_rng(halo_ss), np.random.default_rng(decoy_ss))


# ----------------------------------------------------------------------------- boundary confounding
def blend_boundary(rng: np.random.Generator, img: np.ndarray, o: SceneObject, base: np.ndarray,
                   knobs: KnobsV2) -> tuple[np.ndarray, np.ndarray, dict[str, float] | None]:
    """Boundary confounding of one object, before its body is drawn.

    A halo of the body's base colour (``base``) tints the image around the outline (strength drawn in HALO_STRENGTH at the
    outline, fading linearly to 0 at a band width that wobbles along the outline); the body's
    edge ramp widens to the band width, centred on the outline (alpha 0.5 there, so the masks
    keep the outline).

    Returns:
        ``(image, body alpha, halo description or None when the knob is 0)``.
    """
    if knobs.boundary_blend <= 0:
        return img, o.coverage, None
    width = knobs.boundary_blend * 0.25 * o.r
    strength = float(rng.uniform(*HALO_STRENGTH))
    wobble = smooth_noise(rng, o.sdf.shape, max(1.5, 0.25 * o.r))
    local = width * np.clip(1.0 + HALO_WOBBLE * wobble, 1 - HALO_WOBBLE, 1 + HALO_WOBBLE)
    tint = strength * np.clip(1.0 - np.maximum(o.sdf, 0.0) / local, 0.0, 1.0)
    img = img * (1 - tint[..., None]) + base * tint[..., None]
    alpha = coverage(o.sdf, max(knobs.edge_softness_px, width))
    return img, alpha, {"width_px": round(width, 2), "strength": round(strength, 3)}



# ----------------------------------------------------------------------------- confident decoys
def add_decoys(rng: np.random.Generator, img: np.ndarray, objs: list[SceneObject],
               materials: list[_Material], knobs: KnobsV2, light: float, xx: np.ndarray,
               yy: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Confident decoys: per object, with ``decoy_prob``, 1-2 blobs of its material beside it.

    Each object draws the same numbers whatever the knob (a presence draw, a count, and
    _DECOY_TRIES candidate spots per decoy), so a smaller ``decoy_prob`` keeps a subset of the
    objects with decoys. A decoy is placed at the first candidate that keeps DECOY_GAP_PX from
    every object (hidden parts included) and every earlier decoy, and is dropped if none does.

    Returns:
        ``(image, {"decoys": [...]})``: each decoy's object index (``of``), class, centre,
        radius, aspect, angle and in-frame pixels (``px``).
    """
    taken = np.zeros(img.shape[:2], dtype=bool)
    for o in objs:
        taken |= o.sdf <= DECOY_GAP_PX
    decoys: list[dict[str, Any]] = []
    for i, (o, m) in enumerate(zip(objs, materials)):
        present = rng.random() < knobs.decoy_prob
        count = 1 + int(rng.random() < 0.5)
        candidates = rng.random((2, _DECOY_TRIES, 8))
        if not present:
            continue
        for slot in range(count):
            found = _fit_decoy(o, candidates[slot], taken, xx, yy)
            if found is None:
                continue
            sdf, u, v, desc = found
            img, px = _draw_decoy(img, sdf, u, v, desc["radius"], m, knobs, light)
            taken |= sdf <= DECOY_GAP_PX
            decoys.append({"of": i, "class": o.cls, **desc, "px": px})
    return img, {"decoys": decoys}


def _lerp(t: float, lo_hi: tuple[float, float]) -> float:
    return lo_hi[0] + float(t) * (lo_hi[1] - lo_hi[0])


def _fit_decoy(o: SceneObject, candidates: np.ndarray, taken: np.ndarray, xx: np.ndarray,
               yy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]] | None:
    """The first candidate spot (rows of 8 uniforms) whose blob fits; None if none does.

    Returns:
        ``(sdf, u, v, description)``: the blob's signed distance and frame, and its entry.
    """
    size = taken.shape[0]
    for c in candidates:
        dist, ang = _lerp(c[0], DECOY_DISTANCE) * o.r, 2 * np.pi * c[1]
        rd, aspect, rot = _lerp(c[2], DECOY_RADIUS) * o.r, _lerp(c[3], (0.6, 1.0)), 2 * np.pi * c[4]
        cx, cy = o.cx + dist * np.cos(ang), o.cy + dist * np.sin(ang)
        if not (0.5 * rd <= cx <= size - 0.5 * rd and 0.5 * rd <= cy <= size - 0.5 * rd):
            continue
        cs, sn = np.cos(rot), np.sin(rot)
        u = cs * (xx - cx) + sn * (yy - cy)
        v = -sn * (xx - cx) + cs * (yy - cy)
        lobes = 2 + int(c[6] < 0.5)  # an irregular blob, not one of the class shapes
        sdf = ellipse_sdf(u, v, rd, aspect) - _lerp(c[5], (0.05, 0.15)) * rd * np.cos(
            lobes * np.arctan2(v, u) + 2 * np.pi * c[7])
        if (taken & (sdf <= DECOY_GAP_PX)).any():
            continue
        desc = {"center": [round(float(cx), 2), round(float(cy), 2)], "radius": round(float(rd), 2),
                "aspect": round(aspect, 3), "angle_deg": round(float(np.degrees(rot)), 1)}
        return sdf, u, v, desc
    return None


def _draw_decoy(img: np.ndarray, sdf: np.ndarray, u: np.ndarray, v: np.ndarray, rd: float,
                m: _Material, knobs: KnobsV2, light: float) -> tuple[np.ndarray, int]:
    """Paint a blob of material ``m`` (its colour and texture period, shaded like a body, no
    badge); returns the image and the blob's pixels (coverage >= 0.5)."""
    cov = coverage(sdf, knobs.edge_softness_px)
    tone = texture(m.texture, u, v, m.period)
    shading = 1 + 0.15 * (u * np.cos(light) + v * np.sin(light)) / rd
    body = m.base * ((1 - knobs.texture_contrast * tone) * shading)[..., None]
    img = img * (1 - cov[..., None]) + body * cov[..., None]
    return img, int((cov >= 0.5).sum())


def describe_lines(scenes: dict[str, Any], ids: list[str]) -> list[str]:
    """Version 2's lines of :func:`aakit.data.synth.describe` for the images ``ids``: decoys
    (count, share of their classes' pixels: decoy / (decoy + visible object)) and halos."""
    objs = [o for i in ids for o in scenes[i]["objects"]]
    decoys = [d for i in ids for d in scenes[i].get("decoys", [])]
    halos = [o["halo"] for o in objs if o.get("halo")]
    obj_px: dict[int, int] = {}
    dec_px: dict[int, int] = {}
    for o in objs:
        obj_px[o["class"]] = obj_px.get(o["class"], 0) + o["visible_px"]
    for d in decoys:
        dec_px[d["class"]] = dec_px.get(d["class"], 0) + d["px"]
    shares = [dec_px.get(c, 0) / max(obj_px[c] + dec_px.get(c, 0), 1) for c in obj_px]
    total = sum(dec_px.values()) / max(sum(obj_px.values()) + sum(dec_px.values()), 1)
    with_decoy = len({(i, d["of"]) for i in ids for d in scenes[i].get("decoys", [])})
    lines = [f"  decoys: {len(decoys)} beside {with_decoy} of {len(objs)} objects, "
             f"{100 * total:.1f}% of their classes' pixels"
             + (f" (per class {100 * min(shares):.1f}-{100 * max(shares):.1f}%)" if shares else "")]
    width = np.mean([h["width_px"] for h in halos]) if halos else 0.0
    lines.append(f"  halos: {len(halos)} of {len(objs)} objects, mean band width {width:.1f} px")
    return lines
