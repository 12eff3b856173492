"""Old path of version 2 of the embedded benchmark, kept for one release: the module is
:mod:`aakit.data.synth.v2` (and ``knobs_from_args`` is :func:`aakit.data.synth.spec.knobs_from_args`)."""
from __future__ import annotations

from aakit.data.synth.spec import _knob_value, knobs_from_args
from aakit.data.synth.v2 import (
    _DECOY_TRIES, COLOUR_FAMILIES, CLASSES, DECOY_DISTANCE, DECOY_GAP_PX, DECOY_RADIUS, DEFAULT_KNOBS, DEFAULT_N_VAL,
    HALO_STRENGTH, HALO_WOBBLE, HUE_JITTER, VERSION, KnobsV2, Steps, _draw_decoy, _fit_decoy, _lerp, _Material,
    add_decoys, blend_boundary, check_knobs, describe_lines, make_steps, meta_extra,
)

__all__ = [
    "CLASSES", "COLOUR_FAMILIES", "DECOY_DISTANCE", "DECOY_GAP_PX", "DECOY_RADIUS", "DEFAULT_KNOBS", "DEFAULT_N_VAL",
    "HALO_STRENGTH", "HALO_WOBBLE", "HUE_JITTER", "VERSION", "KnobsV2", "Steps", "add_decoys", "blend_boundary",
    "check_knobs", "describe_lines", "knobs_from_args", "make_steps", "meta_extra",
]
