"""The registered dense-CRF back-ends (``pseudo.crf_backend``, ``eval.crf_backend``), by name.

The order matters for ``auto`` (:func:`resolve_backend`): on CUDA the first available back-end
that runs batches on the device, elsewhere the first available one.
"""
from __future__ import annotations

from aakit.method.crf.backend import CRFBackEnd
from aakit.method.crf.pydensecrf_backend import PydenseCRF
from aakit.method.crf.torch_backend import TorchLattice

#: name -> back-end class; one entry per back-end (docs/architecture.md, "Adding a CRF back-end")
BACKENDS: dict[str, type[CRFBackEnd]] = {
    PydenseCRF.name: PydenseCRF,
    TorchLattice.name: TorchLattice,
}


def backend_names() -> tuple[str, ...]:
    """The registered back-ends' names, in registry order."""
    return tuple(BACKENDS)


def _choices(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def crf_backend(name: str) -> CRFBackEnd:
    """The back-end registered as ``name`` (a resolved name, not ``auto``).

    Raises:
        ValueError: no back-end has that name.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown CRF back-end {name!r} ({_choices(backend_names())})")
    return BACKENDS[name]()


def resolve_backend(backend: str, device: str = "cpu") -> str:
    """``auto`` -> on CUDA the first available batched back-end (``torch``), elsewhere the first
    available one (``pydensecrf`` when installed, else ``torch``); any other name is checked.

    Raises:
        ValueError: an unknown back-end name.
    """
    if backend == "auto":
        cuda = str(device).startswith("cuda")
        for name, cls in BACKENDS.items():
            if cls.available() and (cls.batched or not cuda):
                return name
        return next(name for name, cls in BACKENDS.items() if cls.batched)
    if backend not in BACKENDS:
        raise ValueError(f"unknown CRF back-end {backend!r} (auto, {_choices(backend_names())})")
    return backend
