"""What a set is made of: the keywords of :func:`aakit.data.synth.generate`, checked, with the
version's defaults (:class:`SynthSpec`), and the knobs of ``aakit data synth --knob``."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, TypedDict, Unpack

from aakit.data.scene import Knobs, SynthError
from aakit.data.synth.versions import synth_version


def _check_args(n_train: int, n_val: int, num_classes: int, size: int, seed: int, workers: int,
                version: int = 1) -> None:
    n_classes = len(synth_version(version).CLASSES)
    if n_train < 1 or n_val < 0:
        raise SynthError(f"synthetic set: need n_train >= 1 and n_val >= 0 (got {n_train}, {n_val})")
    if not 2 <= num_classes <= n_classes:
        raise SynthError(f"synthetic set: num_classes = {num_classes} must be in 2..{n_classes}")
    if size < 32:
        raise SynthError(f"synthetic set: size = {size} must be >= 32")
    if seed < 0:
        raise SynthError(f"synthetic set: seed = {seed} must be >= 0")
    if workers < 1:
        raise SynthError(f"synthetic set: workers = {workers} must be >= 1")


def _check_knobs(k: Knobs) -> None:
    probs = ("mark_prob", "context_prob", "cooccur_prob", "min_visible_frac", "shadow_strength",
             "texture_contrast", "illumination_jitter", "illumination_gradient", "colour_cast")
    for name in probs:
        if not 0.0 <= getattr(k, name) <= 1.0:
            raise SynthError(f"synthetic set: knob {name} = {getattr(k, name)} must be in [0, 1]")
    for name in ("edge_softness_px", "mark_scale"):
        if getattr(k, name) <= 0:
            raise SynthError(f"synthetic set: knob {name} = {getattr(k, name)} must be > 0")
    for name in ("blur_sigma_px", "noise_std"):
        if getattr(k, name) < 0:
            raise SynthError(f"synthetic set: knob {name} = {getattr(k, name)} must be >= 0")
    for name in ("radius_range", "aspect_range"):
        lo, hi = getattr(k, name)
        if not 0 < lo <= hi <= 1:
            raise SynthError(f"synthetic set: knob {name} = {(lo, hi)} needs 0 < low <= high <= 1")
    p = k.object_count_probs
    if len(p) != 3 or min(p) < 0 or sum(p) <= 0:
        raise SynthError(f"synthetic set: knob object_count_probs = {p} needs 3 weights >= 0, not all 0")


class SynthOptions(TypedDict, total=False):
    """The keywords of :func:`generate` and :func:`is_generated` (defaults in brackets):
    ``n_train`` train images [600] (``train.txt`` = ``train_aug.txt``); ``n_val`` val images
    [200 in version 1, 1000 in version 2]; ``num_classes`` object classes, the first of the
    version's list, 2..10 [10]; ``size`` image side [164: a stride-4 net gives 41 x 41 maps];
    ``seed`` master seed [0]; ``knobs`` [:data:`DEFAULT_KNOBS`; version 2:
    :class:`aakit.data.synth.v2.KnobsV2`]; ``version`` 1 (frozen, byte-reproducible) or 2
    (:mod:`aakit.data.synth.v2`), a key of :data:`~aakit.data.synth.versions.REGISTRY` [1]; ``workers`` processes [1] and ``progress``, called as
    ``progress(done, total)`` after each image — neither changes the files."""

    n_train: int
    n_val: int | None
    num_classes: int
    size: int
    seed: int
    knobs: Knobs | None
    version: int
    workers: int
    progress: Callable[[int, int], None] | None


@dataclass(frozen=True)
class SynthSpec:
    """What a set is made of: :class:`SynthOptions` with the version's defaults, checked."""

    n_train: int
    n_val: int
    num_classes: int
    size: int
    seed: int
    knobs: Knobs
    version: int
    workers: int


def synth_spec(**options: Unpack[SynthOptions]) -> SynthSpec:
    """The checked :class:`SynthSpec` of ``options`` (raises :class:`SynthError`)."""
    version = options.get("version", 1)
    v = synth_version(version)
    knobs = v.check_knobs(options.get("knobs"))
    _check_knobs(knobs)
    n_val = options.get("n_val")
    spec = SynthSpec(options.get("n_train", 600), v.DEFAULT_N_VAL if n_val is None else n_val,
                     options.get("num_classes", 10), options.get("size", 164), options.get("seed", 0), knobs,
                     version, options.get("workers", 1))
    _check_args(spec.n_train, spec.n_val, spec.num_classes, spec.size, spec.seed, spec.workers, version)
    return spec



def knobs_from_args(version: int, assignments: list[str]) -> Knobs:
    """The knobs of ``version`` (a key of the registry) with ``NAME=VALUE`` assignments applied (a pair such as
    ``radius_range`` as ``0.15,0.32``); refuses unknown names and non-numbers (range checks
    are :func:`aakit.data.synth.generate`'s)."""
    default: Knobs = synth_version(version).DEFAULT_KNOBS
    fields = dataclasses.asdict(default)
    changes: dict[str, Any] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise SynthError(f"--knob {item!r}: expected NAME=VALUE")
        if name not in fields:
            raise SynthError(f"--knob {name}: no such knob in version {version} (known: {', '.join(fields)})")
        changes[name] = _knob_value(name, value, fields[name])
    return dataclasses.replace(default, **changes)


def _knob_value(name: str, value: str, default: Any) -> float | tuple[float, ...]:
    """``value`` as a number, or as numbers like ``default`` when it is a tuple."""
    try:
        if isinstance(default, tuple):
            parts = tuple(float(x) for x in value.split(","))
            if len(parts) == len(default):
                return parts
        else:
            return float(value)
    except ValueError:
        pass
    want = f"{len(default)} comma-separated numbers" if isinstance(default, tuple) else "a number"
    raise SynthError(f"--knob {name}={value}: expected {want}")
