"""Version 3 of the embedded benchmark: error bands wider than the shortest affinity pair.

Versions 1 and 2 (:mod:`aakit.data.synth`, :mod:`aakit.data.synth_v2`) stay frozen. Version 3
draws its scenes with the same code as version 2 (layout, backgrounds, badges, photometry,
labels, version 2's classes and colours) and changes one phenomenon:

* **Wide ambiguous bands** (knobs ``band_px``, ``band_mix``), in place of version 2's boundary
  confounding: around each object its body's material (colour and texture) is drawn at a
  reduced opacity ``band_mix`` over a band ``band_px`` image px wide *outside* the outline
  (wobbling by +-BAND_WOBBLE along it, so at least 18 px at the default), and the body fades to
  about the same opacity over the inner part of its rim. The true outline is only a small step
  (BAND_STEP) of opacity inside a wide zone that is half object, half surroundings, so a CAM is
  uncertain on both sides of it and pseudo labels that follow colour can be wrong over regions
  wider than the shortest affinity pair (dilation 4 at the preset's output stride 4: 16 image
  px): pairs with both ends low-V and a wrong relation, the case eq. 7's max acts on. The masks
  keep the true outline (the band is background, or the earlier object it covers).
* **Confident decoys** (knob ``decoy_prob``) exactly as version 2's
  (:func:`aakit.data.synth.v2.add_decoys`): 1-2 small blobs of an object's own material at full
  opacity, no badge, beside it; background in the masks.

Their randomness comes from generators of their own (:func:`make_steps`), never from the
image's, so switching a phenomenon on or off leaves the rest of the image and the masks
unchanged. docs/benchmark.md, "Version 3".
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

import aakit.data.synth.v2 as synth_v2
from aakit.data.scene import ClassSpec, Knobs, SceneObject, SynthError, coverage, smooth_noise

VERSION = "3.0"
DEFAULT_N_VAL = 1000
CLASSES = synth_v2.CLASSES  # version 2's ten materials, one per class

BAND_WOBBLE = 0.25  # the band's outer width varies along the outline by +- this share
BAND_MIX_JITTER = 0.15  # each object's plateau opacity: band_mix * (1 +- this), drawn per object
BAND_STEP = 0.15  # the body's opacity just inside the outline: its plateau + this (the outline's cue)
BAND_INNER = 0.5  # the inner fade: BAND_INNER * band_px deep (at most half the object's radius)
BAND_EDGE_PX = 3.0  # the band's outer edge fades out over this many px
BAND_MAX_PX = 48.0  # band_px's upper bound


@dataclass(frozen=True)
class KnobsV3(Knobs):
    """Version 3's knobs: version 1's (``context_prob`` at version 2's 0.5) plus the two
    phenomena. ``band_px`` or ``band_mix`` at 0 switches the bands off, ``decoy_prob`` at 0 the
    decoys."""

    context_prob: float = 0.5  # P(background = the primary object's preferred scheme); v1: 0.8
    band_px: float = 24.0  # outer width of the ambiguous band, image px (0..BAND_MAX_PX)
    band_mix: float = 0.55  # the body material's opacity on the band (0..1)
    decoy_prob: float = 0.5  # P(an object has 1-2 same-material decoys beside it), as version 2


DEFAULT_KNOBS = KnobsV3()


def check_knobs(knobs: Knobs | None) -> KnobsV3:
    """Version 3's knobs (the defaults for None); refuses other versions' or out-of-range values."""
    if knobs is None:
        return DEFAULT_KNOBS
    if not isinstance(knobs, KnobsV3):
        raise SynthError(f"synthetic set: version 3 takes synth_v3.KnobsV3, not {type(knobs).__name__}")
    if not 0.0 <= knobs.band_px <= BAND_MAX_PX:
        raise SynthError(f"synthetic set: knob band_px = {knobs.band_px} must be in [0, {BAND_MAX_PX:g}]")
    for name in ("band_mix", "decoy_prob"):
        if not 0.0 <= getattr(knobs, name) <= 1.0:
            raise SynthError(f"synthetic set: knob {name} = {getattr(knobs, name)} must be in [0, 1]")
    return knobs


def meta_extra() -> dict[str, Any]:
    """What version 3 adds to ``meta.json``: its colour table and the phenomena's constants."""
    return {
        "colour_families": dict(synth_v2.COLOUR_FAMILIES),
        "hue_jitter_deg": synth_v2.HUE_JITTER,
        "bands": {"outer_px": "band_px * (1 +- wobble) outside the outline", "wobble": BAND_WOBBLE,
                  "mix_jitter": BAND_MIX_JITTER, "step": BAND_STEP,
                  "inner_px": "min(inner * band_px, 0.5 * object radius)", "inner": BAND_INNER,
                  "edge_px": BAND_EDGE_PX},
        "decoys": {"count": [1, 2], "radius": list(synth_v2.DECOY_RADIUS),
                   "distance": list(synth_v2.DECOY_DISTANCE), "gap_px": synth_v2.DECOY_GAP_PX,
                   "tries": synth_v2._DECOY_TRIES},
    }


class Steps(synth_v2.Steps):
    """Version 3's drawing steps for one image (:class:`aakit.data.synth.SceneSteps`): version
    2's colours and decoys, the wide bands instead of the halo."""

    def on_object(self, img: np.ndarray, o: SceneObject, spec: ClassSpec, base: np.ndarray,
                  period: float, light: float, xx: np.ndarray,
                  yy: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Remember the object's material; its body alpha with the band (drawn over the image)."""
        self.materials.append(synth_v2._Material(spec.texture, base, period))
        alpha, band = band_alpha(self.halo_rng, o, cast(KnobsV3, self.knobs))
        return img, alpha, {"band": band}


def make_steps(knobs: Knobs, seed: int, split: int, index: int) -> Steps:
    """The steps of image ``index`` of split number ``split``: generators of their own, one per
    phenomenon, from ``SeedSequence([seed, split, index, 3])``."""
    band_ss, decoy_ss = np.random.SeedSequence([seed, split, index, 3]).spawn(2)
    k = check_knobs(knobs)
    return Steps(cast(synth_v2.KnobsV2, k), np.random.default_rng(band_ss), np.random.default_rng(decoy_ss))


def band_alpha(rng: np.random.Generator, o: SceneObject,
               knobs: KnobsV3) -> tuple[np.ndarray, dict[str, float] | None]:
    """The body's drawing alpha with the ambiguous band (the body's material, texture and all, is
    defined over the whole frame, so alpha > 0 outside the outline draws it there).

    Outside the outline: the plateau ``mix`` (``band_mix`` jittered per object) up to a width that
    wobbles between (1 -+ BAND_WOBBLE) ``band_px``, fading out over BAND_EDGE_PX. Inside: from
    ``mix + BAND_STEP`` at the outline up to 1 at the inner width. The two meet across the outline
    over the anti-aliased edge (``edge_softness_px``). The rng draws the same numbers whatever the
    knobs are, when they are on.

    Returns:
        ``(alpha (H, W), description or None when the band is off)``.
    """
    if knobs.band_px <= 0 or knobs.band_mix <= 0:
        return o.coverage, None
    mix = float(np.clip(knobs.band_mix * rng.uniform(1 - BAND_MIX_JITTER, 1 + BAND_MIX_JITTER), 0.0, 1.0))
    wobble = smooth_noise(rng, o.sdf.shape, max(1.5, 0.25 * o.r))
    local = knobs.band_px * (1.0 + BAND_WOBBLE * np.clip(wobble, -1.0, 1.0))
    inner_px = max(1.0, min(BAND_INNER * knobs.band_px, 0.5 * o.r))
    edge_in = min(1.0, mix + BAND_STEP)
    inner = edge_in + (1.0 - edge_in) * np.clip(-o.sdf / inner_px, 0.0, 1.0)
    outer = mix * np.clip((local - o.sdf) / BAND_EDGE_PX, 0.0, 1.0)
    alpha = outer + (inner - outer) * coverage(o.sdf, knobs.edge_softness_px)
    desc = {"width_px": round(float(knobs.band_px), 2),
            "min_px": round(float(knobs.band_px * (1 - BAND_WOBBLE)), 2),
            "inner_px": round(float(inner_px), 2), "mix": round(mix, 3)}
    return alpha, desc


def describe_lines(scenes: dict[str, Any], ids: list[str]) -> list[str]:
    """Version 3's lines of :func:`aakit.data.synth.describe` for the images ``ids``: decoys (as
    version 2's) and bands."""
    lines = synth_v2.describe_lines(scenes, ids)[:1]
    objs = [o for i in ids for o in scenes[i]["objects"]]
    bands = [o["band"] for o in objs if o.get("band")]
    width = np.mean([b["width_px"] for b in bands]) if bands else 0.0
    mix = np.mean([b["mix"] for b in bands]) if bands else 0.0
    lines.append(f"  bands: {len(bands)} of {len(objs)} objects, outer width {width:.1f} px "
                 f"(at least {width * (1 - BAND_WOBBLE):.1f}), mean opacity {mix:.2f}")
    return lines
