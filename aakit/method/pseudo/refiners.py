"""The registered refiners (``pseudo.refine``), by name: the seam of step 2 of the label rule
(:mod:`aakit.method.pseudo.refiner` holds the interface)."""
from __future__ import annotations

from aakit.config import CRFParams, PseudoConfig
from aakit.method.pseudo.crf_refiner import CRFRefiner
from aakit.method.pseudo.par_refiner import PARCRFRefiner, PARRefiner
from aakit.method.pseudo.refiner import Refiner

#: name -> refiner class; one entry per refiner (docs/architecture.md, "Adding a refiner")
REFINERS: dict[str, type[Refiner]] = {
    CRFRefiner.name: CRFRefiner,
    PARRefiner.name: PARRefiner,
    PARCRFRefiner.name: PARCRFRefiner,
}


def refiner_names() -> tuple[str, ...]:
    """The registered refiners' names, in registry order."""
    return tuple(REFINERS)


def build_refiner(name: str, pseudo: PseudoConfig, crf: CRFParams, backend: str) -> Refiner:
    """The refiner registered as ``name``, built from the run's settings (``backend`` resolved).

    Raises:
        ValueError: no refiner has that name.
    """
    if name not in REFINERS:
        raise ValueError(f"unknown refiner {name!r} (registered: {', '.join(refiner_names())})")
    return REFINERS[name].from_settings(pseudo, crf, backend)
