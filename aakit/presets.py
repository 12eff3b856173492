"""The shipped presets: the YAML files of ``experiments/`` (run configs, grids, searches) by name.

One copy lives in the repository, ``experiments/`` beside ``aakit/``. A wheel carries it as
package data: ``setup.py``'s build step copies it to ``aakit/_shipped/experiments/`` (with
``results/published.csv``), so an installed aakit finds its presets from any folder.
:func:`presets_root` returns the wheel's copy when there is one, else the repository's.

A config is asked for by path or by name: ``synthetic/full``, ``voc/full.yaml``,
``grids/voc/table1`` or ``experiments/synthetic/full.yaml`` name the shipped file when no
such file exists (relative to the working directory, or to the file that inherits from it)::

    resolve_config("synthetic/full")           # <presets root>/synthetic/full.yaml
    resolve_config("voc/full", relative_to=Path("my"))  # my/voc/full if it exists, else the preset

Stdlib only; :func:`aakit.config.copy_preset` writes editable copies.
"""
from __future__ import annotations

import difflib
from pathlib import Path

from aakit.errors import AakitError

PACKAGE = Path(__file__).resolve().parent
SHIPPED = PACKAGE / "_shipped"  # written into the wheel by setup.py (absent in a source checkout)
SUFFIXES = (".yaml", ".yml")


class PresetError(AakitError):
    """A preset name that names no shipped file, or a copy that cannot be made."""


def presets_root() -> Path:
    """The shipped presets: the wheel's ``aakit/_shipped/experiments``, else the repository's
    ``experiments/`` beside the package (editable install or source checkout)."""
    shipped = SHIPPED / "experiments"
    return shipped if shipped.is_dir() else PACKAGE.parent / "experiments"


def published_csv() -> Path:
    """The paper's numbers shipped with aakit (``results/published.csv`` of the repository)."""
    shipped = SHIPPED / "published.csv"
    return shipped if shipped.is_file() else PACKAGE.parent / "results" / "published.csv"


def preset_names() -> list[str]:
    """Every shipped YAML file by name: ``grids/table1``, ``synthetic/full``, ``voc/base`` ..."""
    root = presets_root()
    if not root.is_dir():
        return []
    files = [p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file()]
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in files)


def _normal_name(name: str | Path) -> str | None:
    """``./experiments/voc/full`` -> ``voc/full.yaml``; None for what cannot be a preset name."""
    p = Path(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return None
    parts = p.parts[1:] if p.parts[0] == "experiments" and len(p.parts) > 1 else p.parts
    rel = "/".join(parts)
    return rel if Path(rel).suffix in SUFFIXES else rel + ".yaml"


def preset_path(name: str | Path) -> Path | None:
    """The shipped file a name stands for, or None."""
    rel = _normal_name(name)
    if rel is None:
        return None
    cand = presets_root() / rel
    return cand if cand.is_file() else None


def resolve_config(path: str | Path, *, relative_to: Path | None = None) -> Path:
    """``path`` (joined to ``relative_to`` when given) if that file exists, else the shipped
    preset it names, else the joined path unchanged, for the caller to report as missing."""
    p = Path(path)
    local = Path(relative_to) / p if relative_to is not None else p
    if local.is_file():
        return local
    found = preset_path(p)
    return found if found is not None else local


def _suggestion(name: str | Path) -> str:
    """``"did you mean voc/full? "`` for the nearest preset name, or ""."""
    rel = _normal_name(name)
    close = difflib.get_close_matches(rel.rsplit(".", 1)[0], preset_names(), n=1, cutoff=0.6) if rel else []
    return f"did you mean {close[0]}? " if close else ""


def not_found_hint(path: str | Path) -> str:
    """What to add to "file not found" when ``path`` could have been a preset name."""
    if _normal_name(path) is None:
        return ""
    return f" (nor a shipped preset: {_suggestion(path)}`aakit configs ls` lists them)"


def require_preset(name: str | Path) -> Path:
    """The shipped file of ``name``; :class:`PresetError` naming it when there is none."""
    found = preset_path(name)
    if found is None:
        raise PresetError(f"{name}: no such shipped preset ({_suggestion(name)}`aakit configs ls` lists them)")
    return found


def describe(path: Path, width: int = 80) -> str:
    """The first comment line of a preset file (its description), cut to ``width``, or ""."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    for line in lines:
        if line.startswith("#"):
            text = line.lstrip("#").strip()
            return text if len(text) <= width else text[:width].rsplit(" ", 1)[0] + " ..."
        if line.strip():
            break
    return ""


def list_presets() -> list[tuple[str, str]]:
    """``(name, description)`` of every shipped preset, sorted by name."""
    root = presets_root()
    return [(n, describe(root / f"{n}.yaml")) for n in preset_names()]
