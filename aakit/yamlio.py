"""YAML as a user writes it: every spelling of a float is a float (issue 27).

PyYAML follows YAML 1.1, whose float rule needs a dot and a signed exponent: ``1e-3``, ``1E-3``
and ``1e308`` load as *strings* there, so ``--set optim.lr=1e-3`` was refused as "should be
float". :class:`Loader` is PyYAML's safe loader with YAML 1.2's float rule instead (``1e-3``,
``1E+3``, ``.5``, ``5.``, ``-2.5e-4``, ``.inf``, ``.nan``); everything else is unchanged.
Whether a value may be infinite or NaN is the config schema's business, not the parser's.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)


# libyaml's parser where PyYAML was built with it (about 9x faster on a run's config.yaml: the
# report reads hundreds); the resolver and constructor stay PyYAML's Python ones either way.
_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Loader(_Base):  # type: ignore[misc, valid-type]
    """A safe loader with YAML 1.2's float rule (ints stay ints: ``3`` is not ``3.0``)."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))
# An int must still win over a float for "3" / "-3": PyYAML tries resolvers in order, and the
# int resolver was registered first for the digits, so only dot- or exponent-bearing text is a float.
# PyYAML's own float constructor reads every spelling the rule above admits (float() after
# dropping '_'; .inf/.nan by name): only the resolver had to change.


def safe_load(stream: str | bytes) -> Any:
    """``yaml.safe_load`` with YAML 1.2 floats (what ``yaml.load`` does, with a safe loader only)."""
    loader = Loader(stream)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
