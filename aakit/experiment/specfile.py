"""What grid and search files share: a YAML mapping of known keys with a ``name`` and a ``base``.

:func:`read_spec_file` checks that head — the file exists, holds a mapping, uses only known
keys, names itself safely (default: the file's stem), and names a base config (relative to the
file, or a shipped preset) that can be read — and raises the caller's error class with one line
naming the file. The rest of each file (rows and axes, or the searched parameters) is the
caller's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection

from aakit.config import ConfigError, load_yaml_file, read_yaml
from aakit.errors import AakitError
from aakit.presets import resolve_config
from aakit.runs import safe_name


@dataclass(frozen=True)
class SpecFile:
    """A checked grid or search file: its path, its mapping, its name and its base config."""

    path: Path
    spec: dict[str, Any]
    name: str
    base: dict[str, Any]


def read_spec_file(
    path: str | Path, *, kind: str, keys: Collection[str], shape: str, error: type[AakitError]
) -> SpecFile:
    """Read and check the head of a grid or search file.

    Args:
        path: the YAML file.
        kind: ``"grid"`` or ``"search"`` (how messages name the file).
        keys: the known top-level keys.
        shape: the main keys, shown when the top level is not a mapping (``"base:, params:"``).
        error: the exception raised.

    Raises:
        error: one line naming the file and the key at fault.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {kind} file not found")
    spec = load_yaml_file(path, error)
    if not isinstance(spec, dict):
        raise error(f"{path}: top level must be a mapping ({shape})")
    unknown = sorted(set(spec) - set(keys))
    if unknown:
        raise error(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(keys))})")
    name = spec.get("name", path.stem)
    if not isinstance(name, str) or safe_name(name) != name:
        raise error(f"{path}: name {name!r} should use only letters, digits and . _ + -")
    if not isinstance(spec.get("base"), str):
        raise error(f"{path}: base: should name the base config file (relative to the {kind} file, or a preset name)")
    try:
        base = read_yaml(resolve_config(spec["base"], relative_to=path.parent))
    except ConfigError as e:
        raise error(f"{path}: base: {e}") from None
    return SpecFile(path, spec, name, base)
