"""Loading a configuration: YAML files, ``_base_``, ``--set``, coercion to the schema, old values.

A YAML file overrides some defaults of the schema (:mod:`aakit.config.schema`); ``_base_:
other.yaml`` inherits another file first (paths relative to the file that names them); ``--set
a.b=value`` overrides last. Every key is checked against the schema: an unknown key, a wrong
type or an impossible value raises :class:`ConfigError` naming the key and the file.

Each layer (a ``_base_`` file, the file over it, each ``--set``) overrides the one below, also
across the two spellings of a backbone's setting: ``model.small_width`` (before issue 29) and
``model.backbone_args.width``; a layer that names another ``model.backbone`` drops the settings
of the one below (they belong to that backbone). See :mod:`aakit.config.backbones`.

Example::

    cfg = load_config("experiments/synthetic/full.yaml", overrides=["loss.lambda_aa=0.2"])
    cfg.loss.dilations  # (4, 8, 12, 24)
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from aakit import yamlio
from aakit.config.backbones import BACKBONES, LEGACY_FIELDS, legacy_args_of, legacy_fields_of
from aakit.config.schema import Config, ConfigError, ModelConfig, backbone_problem, validate
from aakit.errors import AakitError
from aakit.files import atomic_write_text
from aakit.presets import PresetError, not_found_hint, presets_root, require_preset, resolve_config


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        inner = _type_name(args[0]) if args else "value"
        return f"list of {inner}"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it in the schema's type."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{source}: {key} = {value!r} should be {_type_name(tp)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} should be a mapping of keys, got {value!r}")
        return _build(tp, value, source, prefix=key + ".")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, source)
            except ConfigError:
                pass
        raise bad
    if origin is tuple:
        return _coerce_list(value, tp, key, source)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if not math.isfinite(value):  # .inf / .nan parse as floats (aakit.yamlio) but no key takes them
            raise ConfigError(f"{source}: {key} = {value!r} should be a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise bad  # pragma: no cover - schema uses only the types above


def _coerce_list(value: Any, tp: Any, key: str, source: str) -> tuple[Any, ...]:
    """A list key (``tuple[...]`` in the schema); a wrong value's message shows the syntax that
    works: a bracketed YAML list, ``--set 'loss.dilations=[4,8,12,24]'`` (the key's default)."""
    args = typing.get_args(tp)
    free = len(args) == 2 and args[1] is Ellipsis
    size = "" if free else f" ({len(args)} values)"
    bad = ConfigError(f"{source}: {key} = {value!r} should be a {_type_name(tp)}{size}, written in brackets: "
                      f"--set '{key}={list_example(key)}'")
    if not isinstance(value, (list, tuple)) or (not free and len(value) != len(args)):
        raise bad
    types = [args[0]] * len(value) if free else list(args)
    try:
        return tuple(_coerce(v, a, key, source) for v, a in zip(value, types))
    except ConfigError:
        raise bad from None


def list_example(key: str) -> str:
    """``[4,8,12,24]``: the default of the list key ``key`` as ``--set`` takes it (YAML flow style)."""
    try:
        default = Config().get(key)
    except AttributeError:
        default = None
    items = default if isinstance(default, (list, tuple)) else (1, 2)
    return "[" + ",".join(str(v) for v in items) + "]"


def _build(cls: type, data: dict[str, Any], source: str, prefix: str = "") -> Any:
    if cls is ModelConfig:
        data, args = _backbone_settings(data, source, prefix)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in data:
        if k not in names:
            known = ", ".join(sorted(names))
            near = difflib.get_close_matches(str(k), sorted(names), n=1)
            hint = f"did you mean {prefix}{near[0]}? " if near else ""
            raise ConfigError(f"{source}: unknown key {prefix}{k} ({hint}known under {prefix or 'top level'}: {known})")
    kwargs = {k: _coerce(v, hints[k], prefix + k, source) for k, v in data.items()}
    if cls is ModelConfig:
        kwargs["backbone_args"] = args
    return cls(**kwargs)


# ----------------------------------------------------------------------------- a backbone's settings
def _backbone_settings(data: dict[str, Any], source: str, prefix: str) -> tuple[dict[str, Any], Any]:
    """(``model`` without the backbone's settings, the settings built and checked).

    The settings are ``backbone_args`` and the flat fields of before issue 29 that the backbone
    takes (``small_width`` -> ``width``); a flat field it does not take is dropped, as it was
    ignored then. One layer giving both spellings of a setting with two values is an error."""
    data = dict(data)
    name = data.get("backbone", ModelConfig.backbone)
    if not isinstance(name, str) or name not in BACKBONES:
        raise ConfigError(f"{source}: {backbone_problem(name)}")
    spec = BACKBONES[name]
    args = data.pop("backbone_args", None)
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise ConfigError(f"{source}: {prefix}backbone_args should be a mapping of {name}'s settings, got {args!r}")
    args = dict(args)
    for flat, default in LEGACY_FIELDS.items():
        if flat not in data:
            continue
        value = _coerce(data.pop(flat), type(default), prefix + flat, source)
        arg = spec.args.legacy.get(flat)
        if arg is None:
            continue
        if arg in args and args[arg] != value:
            raise ConfigError(f"{source}: {prefix}{flat} = {value!r} (the old name of {prefix}backbone_args.{arg}) "
                              f"and {prefix}backbone_args.{arg} = {args[arg]!r} disagree: give one")
        args[arg] = value
    return data, _build(spec.args, args, source, prefix + "backbone_args.")


def _layer_model(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base``'s model section less what the layer ``top`` (a mapping of model keys) overrides
    under the other spelling, and less its backbone's settings if ``top`` names another backbone."""
    out = dict(base)
    args = out.get("backbone_args")
    args = dict(args) if isinstance(args, Mapping) else args
    if "backbone" in top and top["backbone"] != out.get("backbone", ModelConfig.backbone):
        args = None
    for flat in LEGACY_FIELDS:
        if flat in top and isinstance(args, dict):
            for arg in legacy_args_of(flat):
                args.pop(arg, None)
    top_args = top.get("backbone_args")
    for arg in top_args if isinstance(top_args, Mapping) else ():
        for flat in legacy_fields_of(arg):
            out.pop(flat, None)
    if args is None:
        out.pop("backbone_args", None)
    else:
        out["backbone_args"] = args
    return out


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def merge_layers(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """A config file's data over the data of its ``_base_``: nested sections merged key by key,
    a backbone's settings layered across their two spellings (:func:`_layer_model`)."""
    if isinstance(base.get("model"), dict) and isinstance(top.get("model"), Mapping):
        base = {**base, "model": _layer_model(base["model"], top["model"])}
    return _deep_merge(base, top)


def load_yaml_file(path: str | Path, error: type[AakitError] = ConfigError) -> Any:
    """The YAML content of ``path`` (``None`` if empty), or one line naming the file and the line.

    Args:
        path: the file.
        error: the exception raised (a grid or search file raises its own kind).

    Raises:
        ConfigError (or ``error``): unreadable file, not UTF-8, or a YAML syntax error, as
        ``"FILE: line N YAML syntax error: PROBLEM"``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot read ({e})") from None
    try:
        return yamlio.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise error(f"{path}:{where} YAML syntax error: {problem}") from None


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a config file, resolving ``_base_`` (a path or a list of paths) recursively.
    A path that does not exist names a shipped preset (``voc/full``: :mod:`aakit.presets`)."""
    path = resolve_config(path)
    try:
        real = path.resolve()
    except OSError as e:  # pragma: no cover
        raise ConfigError(f"{path}: cannot resolve path ({e})") from None
    if real in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, real))
        raise ConfigError(f"{path}: _base_ cycle: {chain}")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found{not_found_hint(path)}")
    data = load_yaml_file(path)
    if data is None or data == {}:  # not "the defaults": an empty file is a mistake (a truncated copy, a typo)
        raise ConfigError(f"{path}: empty config: give at least one key, e.g. _base_: synthetic/full")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    bases = data.pop("_base_", None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: _base_ must be a path or a list of paths")
    merged: dict[str, Any] = {}
    for b in bases:
        merged = merge_layers(merged, read_yaml(resolve_config(b, relative_to=path.parent), (*_seen, real)))
    return merge_layers(merged, data)


def parse_override(item: str) -> tuple[str, Any]:
    """``"loss.gamma=0.5"`` -> ``("loss.gamma", 0.5)``; the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. loss.lambda_aa=0.2")
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yamlio.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def read_set_file(path: str | Path) -> list[str]:
    """``--set-file FILE``: a YAML mapping of dotted overrides (``train.epochs: 4``; nested
    sections are flattened: ``train: {epochs: 4}``) as ``--set`` items, in the file's order."""
    data = load_yaml_file(path)
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: --set-file needs a mapping of KEY: VALUE, got {type(data).__name__}")

    def items(node: dict[str, Any], prefix: str) -> list[str]:
        out: list[str] = []
        for k, v in node.items():
            out += items(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}={json.dumps(v)}"]
        return out

    return items(data, "")


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys in a nested dict (a copy is returned)."""
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
    out = json.loads(json.dumps(data))  # deep copy of plain data
    for key, value in items:
        node = out
        parts = key.split(".")
        if parts[0] == "model" and len(parts) > 1 and isinstance(out.get("model"), dict):
            top: Any = value
            for p in reversed(parts[2:]):
                top = {p: top}
            out["model"] = _layer_model(out["model"], {parts[1]: top})
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {key}: {p} is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def from_dict(data: dict[str, Any], source: str = "<config>") -> Config:
    """Build and validate a Config from plain nested data."""
    return validate(_build(Config, data, source), source)


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> Config:
    """Load a YAML config (with ``_base_``), apply dotted overrides, check everything.

    Args:
        path: YAML file; None gives the schema defaults.
        overrides: ``["loss.gamma=0.5", ...]`` or ``{"loss.gamma": 0.5}``.

    Raises:
        ConfigError: one line naming the key and the file.
    """
    data = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    if overrides:
        data = apply_overrides(data, overrides)
        source += " (with --set)"
    return from_dict(data, source)


# Keys added to the schema after runs were written, with the value those runs effectively used
# (not the new default): a run's config.yaml that lacks one is read with this value.
LEGACY_VALUES: dict[str, Any] = {
    "data.pad_mode": "ignore",  # black padding, ignored: aakit before issue 12
}


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """A run's stored ``config.yaml``, read as the run was trained: keys it predates take
    :data:`LEGACY_VALUES`, not today's defaults (``overrides`` apply last, as ``--set``)."""
    data = read_yaml(path)
    for dotted, value in LEGACY_VALUES.items():
        node = data
        *sections, key = dotted.split(".")
        for part in sections:
            node = node.setdefault(part, {}) if isinstance(node, dict) else node
        if isinstance(node, dict):
            node.setdefault(key, value)
    if overrides:
        data = apply_overrides(data, overrides)
    return from_dict(data, str(path) + (" (with --set)" if overrides else ""))


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    atomic_write_text(Path(path), yaml.safe_dump(cfg.to_dict(), sort_keys=False))


# ----------------------------------------------------------------------------- shipped presets
def copy_preset(name: str | Path, dest: Path, *, force: bool = False) -> Path:
    """Write an editable copy of a shipped preset into the folder ``dest``; return the file.

    A run config is *flattened*: the file it names with every ``_base_`` it inherits merged in,
    so one self-contained file holds every key the preset sets (same config, same hash).
    A grid or search file is copied as it is, its ``base:`` turned into the shipped config's
    name (``base: synthetic/full.yaml``), which the grid and search loaders resolve from anywhere.
    An existing file is kept unless ``force``.
    """
    src = require_preset(name)
    root = presets_root()
    rel = src.relative_to(root).as_posix()
    dest = Path(dest)
    out = dest / src.name
    if dest.exists() and not dest.is_dir():
        raise PresetError(f"{dest}: not a folder (aakit configs copy {rel} FOLDER)")
    if out.exists() and not force:
        raise PresetError(f"{out}: already exists (give --force to replace it)")
    text = src.read_text(encoding="utf-8")
    spec = yamlio.safe_load(text)
    if isinstance(spec, dict) and isinstance(spec.get("base"), str):  # a grid or a search
        base = _relative_name((src.parent / spec["base"]).resolve(), root)
        body = "".join(f"base: {base}\n" if line.startswith("base:") and base else line
                       for line in text.splitlines(keepends=True))
    else:
        lines = text.splitlines(keepends=True)
        n = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
        body = (f"# aakit configs copy {rel}: the shipped preset with what it inherits (_base_) merged in.\n"
                f"{''.join(lines[:n])}{yaml.safe_dump(read_yaml(src), sort_keys=False)}")
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, body)
    return out


def _relative_name(path: Path, root: Path) -> str | None:
    """``path`` as a preset name (``synthetic/full.yaml``), or None when it is not under ``root``."""
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return None
