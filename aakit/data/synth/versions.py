"""The registry of the benchmark's versions: number -> the module that defines it.

Each entry is a module with the names of :class:`SynthVersion` (``v1``, ``v2``, ``v3``); the generator,
the checks, ``meta.json`` and :func:`aakit.data.synth.describe` ask the registry, never a
version by name, so a version is one module plus one line here.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from aakit.data.scene import ClassSpec, Knobs, SceneObject, SynthError
import aakit.data.synth.v1 as v1
import aakit.data.synth.v2 as v2
import aakit.data.synth.v3 as v3


class SceneSteps(Protocol):
    """Extra drawing steps of a later version (:class:`aakit.data.synth.v2.Steps`); version 1
    has none.

    They draw from their own generators, never from the image's, so the layout is the same
    whatever they do.
    """

    def colour(self, rng: np.random.Generator, family: str) -> np.ndarray:
        """The body colour of an object of colour ``family`` (RGB 0-255), drawn from ``rng``."""
        ...

    def on_object(self, img: np.ndarray, o: SceneObject, spec: ClassSpec, base: np.ndarray,
                  period: float, light: float, xx: np.ndarray,
                  yy: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Before ``o``'s body is drawn: (image, body alpha (H, W), entries for its description)."""
        ...

    def after_objects(self, img: np.ndarray, objs: list[SceneObject], light: float, xx: np.ndarray,
                      yy: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """After every object: (image, entries for the scene description)."""
        ...


class SynthVersion(Protocol):
    """What a version module defines (as module-level names)."""

    VERSION: str  # meta.json's "version", e.g. "2.0"
    CLASSES: tuple[ClassSpec, ...]  # label i + 1 is CLASSES[i]
    DEFAULT_KNOBS: Knobs
    DEFAULT_N_VAL: int

    def check_knobs(self, knobs: Knobs | None) -> Knobs:
        """The version's knobs (its defaults for None); raises SynthError for another version's."""
        ...

    def make_steps(self, knobs: Knobs, seed: int, split: int, index: int) -> SceneSteps | None:
        """The extra drawing steps of image ``index`` of split number ``split`` (None: none)."""
        ...

    def meta_extra(self) -> dict[str, Any]:
        """What the version adds at the end of ``meta.json``."""
        ...

    def describe_lines(self, scenes: dict[str, Any], ids: list[str]) -> list[str]:
        """The version's lines in :func:`aakit.data.synth.describe`, for the images ``ids``."""
        ...


#: version number -> its module (``generate(version=...)``, ``aakit data synth --version``)
REGISTRY: dict[int, SynthVersion] = {
    1: v1,
    2: v2,
    3: v3,
}

VERSIONS = {n: m.VERSION for n, m in REGISTRY.items()}  # version -> meta.json "version"
DEFAULT_N_VAL = {n: m.DEFAULT_N_VAL for n, m in REGISTRY.items()}


def synth_version(version: int) -> SynthVersion:
    """The module of ``version`` (raises :class:`SynthError` naming the known ones)."""
    if version not in REGISTRY:
        raise SynthError(f"synthetic set: version = {version} must be one of {sorted(REGISTRY)}")
    return REGISTRY[version]


def version_of_label(label: Any) -> SynthVersion | None:
    """The version whose ``meta.json`` label has the major number of ``label`` ("2.0" -> 2), or None."""
    major = str(label).split(".", 1)[0]
    return REGISTRY.get(int(major)) if major.isdigit() else None
