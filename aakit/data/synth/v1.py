"""Version 1 of the embedded benchmark (frozen: the same files byte for byte): ten classes over
five materials, each worn by two classes, so that only the outline or the badge settles a class.

A version module (:mod:`aakit.data.synth`, "Adding a version") gives :data:`VERSION` (the
``meta.json`` label), :data:`CLASSES`, :data:`DEFAULT_KNOBS`, :data:`DEFAULT_N_VAL` and four
functions: :func:`check_knobs`, :func:`make_steps` (its extra drawing steps: none here),
:func:`meta_extra` and :func:`describe_lines` (nothing to add here).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from aakit.data.scene import ClassSpec, Knobs, SynthError, read_class_table

VERSION = "1.0"
DEFAULT_N_VAL = 200

# Five materials (colour family + texture) are each worn by two classes, and four of the six
# shapes are each used by two classes: a patch of body narrows the class down to two, only the
# outline or the badge settles it. The context pairs (sand 1+8, water 3+9, brick 2+6, grass
# 4+7, sky 5+10) cut across the material pairs, so the background is a tempting shortcut.
# The table (data, one class a line): classes_v1.txt beside this file.
CLASSES: tuple[ClassSpec, ...] = read_class_table(Path(__file__).with_name("classes_v1.txt"))

# Hue in degrees of each colour family; saturation and value are drawn per object.
COLOUR_FAMILIES: dict[str, float] = {
    "red": 2.0,
    "yellow": 48.0,
    "green": 112.0,
    "blue": 215.0,
    "purple": 282.0,
}

DEFAULT_KNOBS = Knobs()


def check_knobs(knobs: Knobs | None) -> Knobs:
    """Version 1's knobs (the defaults for None); refuses a later version's knob record."""
    if knobs is not None and type(knobs) is not Knobs:
        raise SynthError(f"synthetic set: version 1 takes synth.Knobs, not {type(knobs).__name__}")
    return knobs or DEFAULT_KNOBS


def make_steps(knobs: Knobs, seed: int, split: int, index: int) -> None:
    """Version 1 draws with the shared steps alone (:func:`aakit.data.synth.render.render_scene`)."""
    return None


def meta_extra() -> dict[str, Any]:
    """Nothing beyond the shared ``meta.json`` entries."""
    return {}


def describe_lines(scenes: dict[str, Any], ids: list[str]) -> list[str]:
    """No lines beyond the shared summary of :func:`aakit.data.synth.describe`."""
    return []
