"""The backbone registry: each backbone's name, its class and its own settings (``model.backbone_args``).

A config names a backbone (``model.backbone: mobilenet_v2``) and gives its settings under
``model.backbone_args`` (``{output_stride: 4, last_block: 13}``); the loader checks them against
the backbone's settings dataclass below, as any other key (type, range, unknown key with a
suggestion). The classes live in :mod:`aakit.models` and are imported only when a network is
built: this module imports neither torch nor the models, so reading a config stays light.

Adding a backbone is one class in one file (``aakit/models/<name>.py``, a subclass of
:class:`aakit.models.backbone.Backbone`) plus its entry here: a settings dataclass and one line
in :data:`BACKBONES` (docs/architecture.md, "Adding a backbone").

Before issue 29 the settings were flat fields of ``model`` (``model.small_width``,
``model.output_stride``, ...). Old configs still load: a flat field the backbone takes is read
as its setting (:data:`LEGACY_FIELDS`, each settings class's ``legacy``), one it does not take is
ignored, as it was then; and a run's identity (``Config.hash``) is written in the flat layout of
before (:func:`legacy_identity`), so every committed run keeps its hash.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

Check = tuple[str, Callable[[Any], bool], str]  # (setting, predicate, explanation)


@dataclass
class BackboneArgs:
    """Base of each backbone's settings. ``legacy``: the flat ``model.*`` field of before issue
    29 -> the setting it is now; ``checks``: impossible values, as the config's own checks."""

    legacy: ClassVar[Mapping[str, str]] = {}
    checks: ClassVar[tuple[Check, ...]] = ()


@dataclass
class ResNet38dArgs(BackboneArgs):
    """ResNet-38 (psa's resnet38d, METHOD.md section 1): output stride 8, 4096 channels."""

    freeze_bn: bool = True  # BatchNorm in eval mode, affine frozen (psa, RRM)
    freeze_conv1a: bool = True  # METHOD.md; RRM's code trains it (false reproduces RRM)

    legacy: ClassVar[Mapping[str, str]] = {"freeze_bn": "freeze_bn", "freeze_conv1a": "freeze_conv1a"}


@dataclass
class SmallArgs(BackboneArgs):
    """The small CPU backbone of the lab's data set: output stride 4, 4 * width channels."""

    width: int = 32

    legacy: ClassVar[Mapping[str, str]] = {"small_width": "width"}
    checks: ClassVar[tuple[Check, ...]] = (("width", lambda v: v >= 4, "must be >= 4"),)


@dataclass
class MobileNetV2Args(BackboneArgs):
    """MobileNetV2 (torchvision's key layout, ImageNet weights by name: ``model.pretrained: imagenet``)."""

    output_stride: int = 8  # 4, 8, 16 or 32: strides past it become dilation
    last_block: int = 18  # keep features[0..N] (13: up to the 96-channel stage)
    freeze_bn: bool = True

    legacy: ClassVar[Mapping[str, str]] = {
        "output_stride": "output_stride", "last_block": "last_block", "freeze_bn": "freeze_bn"}
    checks: ClassVar[tuple[Check, ...]] = (
        ("output_stride", lambda v: v in (4, 8, 16, 32), "must be 4, 8, 16 or 32"),
        ("last_block", lambda v: 1 <= v <= 18, "must be in 1..18"),
    )


@dataclass(frozen=True)
class BackboneSpec:
    """One registry entry: the class (``module:Name``, imported when built) and its settings."""

    name: str
    cls: str
    args: type[BackboneArgs]

    def load(self) -> type:
        """The backbone class (imports torch and the model's module)."""
        module, _, attr = self.cls.partition(":")
        return getattr(importlib.import_module(module), attr)


def _specs(*specs: BackboneSpec) -> dict[str, BackboneSpec]:
    return {s.name: s for s in specs}


#: The registered backbones, by the name ``model.backbone`` takes.
BACKBONES: dict[str, BackboneSpec] = _specs(
    BackboneSpec("resnet38d", "aakit.models.resnet38d:ResNet38d", ResNet38dArgs),
    BackboneSpec("small", "aakit.models.small:SmallBackbone", SmallArgs),
    BackboneSpec("mobilenet_v2", "aakit.models.mobilenet:MobileNetV2Backbone", MobileNetV2Args),
)

#: The flat ``model.*`` fields of before issue 29 and their defaults then: a run's identity
#: keeps them (the value of its backbone's setting, or this default where it takes none).
LEGACY_FIELDS: dict[str, Any] = {
    "freeze_bn": True, "freeze_conv1a": True, "small_width": 32, "output_stride": 8, "last_block": 18,
}


def list_backbones() -> list[str]:
    """The registered names, in registry order."""
    return list(BACKBONES)


def legacy_args_of(field_name: str) -> set[str]:
    """The settings a flat field of before issue 29 became, over all backbones (``small_width``
    -> ``{"width"}``)."""
    return {s.args.legacy[field_name] for s in BACKBONES.values() if field_name in s.args.legacy}


def legacy_fields_of(arg: str) -> set[str]:
    """The flat fields of before issue 29 that a setting took over (``width`` -> ``{"small_width"}``)."""
    return {f for s in BACKBONES.values() for f, a in s.args.legacy.items() if a == arg}


def backbone_args(name: str, args: BackboneArgs | Mapping[str, Any] | None) -> BackboneArgs | Any:
    """``args`` as the settings of backbone ``name``: its defaults for None, built from a mapping.
    An unregistered name returns ``args`` as it is (the config's checks name the key)."""
    spec = BACKBONES.get(name)
    if spec is None:
        return args
    if args is None:
        return spec.args()
    if isinstance(args, Mapping):
        return spec.args(**args)
    if type(args) is not spec.args:
        raise ValueError(f"model.backbone_args: {type(args).__name__} are not the settings of {name} "
                         f"({spec.args.__name__})")
    return args


def legacy_identity(model: dict[str, Any]) -> dict[str, Any]:
    """The ``model`` section of a run's identity in the flat layout of before issue 29.

    ``backbone_args`` is taken apart into the flat fields of :data:`LEGACY_FIELDS` (a field its
    backbone does not take keeps that default, as every run before had it), so a run computing
    what a committed run computed has its hash. Settings of a backbone added since, which no
    flat field held, stay under ``backbone_args``; it is omitted while empty (the committed runs).
    """
    out = {k: v for k, v in model.items() if k != "backbone_args"}
    args = dict(model.get("backbone_args") or {})
    spec = BACKBONES.get(out.get("backbone", ""))
    legacy = spec.args.legacy if spec else {}
    for flat, default in LEGACY_FIELDS.items():
        arg = legacy.get(flat)
        out[flat] = args[arg] if arg in args else default
    for arg in set(legacy.values()):
        args.pop(arg, None)
    if args:
        out["backbone_args"] = args
    return out


def new_spelling(model: Mapping[str, Any]) -> dict[str, Any]:
    """A raw ``model`` section (a run's config.yaml, old or new) in today's spelling: the flat
    fields its backbone takes moved into ``backbone_args``, the others dropped (they were
    ignored); no default is filled in. For readers that compare stored configs (``aakit runs``)."""
    out = dict(model)
    args = dict(out.get("backbone_args") or {}) if isinstance(out.get("backbone_args"), Mapping) else {}
    spec = BACKBONES.get(str(out.get("backbone", "resnet38d")))
    for flat in LEGACY_FIELDS:
        if flat in out:
            value = out.pop(flat)
            arg = spec.args.legacy.get(flat) if spec else None
            if arg:
                args.setdefault(arg, value)
    if args or "backbone_args" in out:
        out["backbone_args"] = args
    return out


def both_spellings(model: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`new_spelling` plus the flat fields of before issue 29 that its settings took over,
    so that ``model.small_width`` and ``model.backbone_args.width`` both find a run."""
    out = new_spelling(model)
    spec = BACKBONES.get(str(out.get("backbone", "resnet38d")))
    for flat, arg in (spec.args.legacy.items() if spec else ()):
        if arg in out.get("backbone_args", {}):
            out[flat] = out["backbone_args"][arg]
    return out
