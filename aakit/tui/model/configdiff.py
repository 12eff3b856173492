"""The config keys that differ between runs (the compare view's table)."""
from __future__ import annotations

from typing import Any, Mapping

def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"loss": {"gamma": 2}}`` -> ``{"loss.gamma": 2}`` (lists are kept as values)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


_MISSING = object()


def config_diff(configs: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, list[Any]]]:
    """The dotted keys whose values differ between configs, with each config's value.

    Args:
        configs: run name -> config dict (order kept).

    Returns:
        ``[(key, [value of run 1, value of run 2, ...]), ...]`` sorted by key; a key absent
        from a config has the value None.
    """
    flats = [flatten(c) for c in configs.values()]
    keys = sorted(set().union(*flats)) if flats else []
    out: list[tuple[str, list[Any]]] = []
    for k in keys:
        values = [f.get(k, _MISSING) for f in flats]
        if any(v != values[0] for v in values[1:]):
            out.append((k, [None if v is _MISSING else v for v in values]))
    return out
