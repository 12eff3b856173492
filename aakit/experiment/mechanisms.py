"""What a comparison could test: the stored mechanism of a grid's comparisons (issue 28).

Two rows of a grid can only be told apart by training when their objectives' gradients differ.
``aakit grid FILE --preflight`` (:mod:`aakit.experiment.preflight`) measures, for each comparison
of a grid, how much they differ at the rows' shared starting point, and ``--store`` keeps that
beside the grid's state as ``results/grids/<name>/mechanism.json``::

    {"grid", "file", "measured", "threshold", "unit", "command",
     "start": {"weights", "untrained", "own", "note", "record"},   (where the network started)
     "probe": {"batches", "images", "crop"}, "device",
     "comparisons": [{"winner", "other", "text", "table", "claim", "grad_share", "grad_cos",
                      "grad_share_after_rescale", "engaged", "reason", "differs_in", "seed",
                      "winner_hash", "other_hash", "noise_sd", "noise_source", "seeds_for_0.5",
                      "seeds_for_1.0", "winner_record", "other_record"}]}

``grad_share`` is ``|g_winner - g_other| / max(|g_winner|, |g_other|)``, the gradients of the two
rows' whole objectives w.r.t. the network's outputs (F^c and F^s) on the same probe batches with
the same network: below :data:`THRESHOLD` the comparison is **not engaged** — whatever its
seeds show, the two trainings start out following the same gradient, so its interval measures
seed noise, not the mechanism. The claims and the grids' comparisons read this file
(:func:`mechanism_index`) and say "not engaged here" for such a comparison, keeping the interval.

This module reads and writes JSON only (no torch): the report imports it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from aakit.files import atomic_write_json, read_json
from aakit.runs import safe_name

MECHANISM_FILE = "mechanism.json"
THRESHOLD = 0.01  # the rows' objectives differ by less than 1 % of the gradient: not engaged
NOT_ENGAGED = "not engaged here"
GRAD_UNIT = ("fraction of the gradient (0-1): |grad of the winner's objective - grad of the other's| / "
             "the larger of their norms, w.r.t. the network's outputs F^c and F^s, at the rows' starting point")
#: The keys of a stored comparison that a claim or a grid comparison carries as its ``mechanism``.
CARRIED = ("grad_share", "grad_cos", "grad_share_after_rescale", "engaged", "reason", "differs_in", "seed")


def mechanism_path(results: Path, grid: str, at: str | None = None) -> Path:
    """``results/grids/<grid>/mechanism.json`` (at the rows' start: the claims read it), or, for a
    preflight at a trained run's weights (``--at``), ``mechanism-at-<run>.json`` beside it."""
    name = MECHANISM_FILE if at is None else f"mechanism-at-{safe_name(Path(at).name)}.json"
    return Path(results) / "grids" / grid / name


def engaged(share: float | None) -> bool | None:
    """Whether a comparison's gradient share reaches :data:`THRESHOLD` (None: not measured)."""
    return None if share is None else share >= THRESHOLD


def write_mechanism(results: Path, grid: str, doc: dict[str, Any]) -> Path:
    """Atomically write ``results/grids/<grid>/mechanism.json`` (``mechanism-at-<run>.json`` for a
    preflight ``--at`` a trained run: :func:`mechanism_path`)."""
    path = mechanism_path(results, grid, doc.get("at"))
    atomic_write_json(path, doc)
    return path


def read_mechanism(results: Path, grid: str) -> dict[str, Any] | None:
    """The grid's stored mechanism, or None (absent or unreadable: the comparisons are then
    judged on their intervals alone)."""
    doc = read_json(mechanism_path(results, grid))
    return doc if isinstance(doc, dict) and isinstance(doc.get("comparisons"), list) else None


def read_trained(results: Path, grid: str) -> list[tuple[str, dict[str, Any]]]:
    """The grid's preflights at trained runs' weights (``--at RUN --store``): ``(file, doc)`` each."""
    out = []
    for path in sorted((Path(results) / "grids" / grid).glob("mechanism-at-*.json")):
        doc = read_json(path)
        if isinstance(doc, dict) and isinstance(doc.get("comparisons"), list):
            out.append((f"results/grids/{grid}/{path.name}", doc))
    return out


def _trained_shares(item: dict[str, Any], trained: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The shares of the same two configs (hashes) at each trained run's weights."""
    key = (item.get("winner_hash"), item.get("other_hash"))
    return [{"grad_share": c.get("grad_share"), "at": doc.get("at"), "source": source}
            for source, doc in trained for c in doc["comparisons"]
            if isinstance(c, dict) and (c.get("winner_hash"), c.get("other_hash")) == key
            and c.get("reason") is None and c.get("grad_share") is not None]


def carried(doc: dict[str, Any], item: dict[str, Any], grid: str,
            trained: Sequence[tuple[str, dict[str, Any]]] = ()) -> dict[str, Any]:
    """What a claim or a comparison carries of stored comparison ``item`` of ``doc``: the share,
    the cosine, the verdict's side of it, where it was measured and in what unit; and the shares
    of the same two configs at trained runs' weights (``trained``: :func:`read_trained`). A
    comparison is not engaged only where it is below the threshold at its start and at every
    trained point measured: two trainings that part later are not one training."""
    start = doc.get("start") if isinstance(doc.get("start"), dict) else {}
    out = {k: item.get(k) for k in CARRIED}
    out["trained"] = _trained_shares(item, list(trained))
    out["engaged"] = engaged(item.get("grad_share")) if item.get("reason") is None else None
    if out["engaged"] is False and any(engaged(t["grad_share"]) for t in out["trained"]):
        out["engaged"] = True
    out |= {"threshold": doc.get("threshold", THRESHOLD), "unit": GRAD_UNIT, "grid": grid,
            "source": f"results/grids/{grid}/{MECHANISM_FILE}", "weights": start.get("weights"),
            "untrained": start.get("untrained"), "own_start": start.get("own")}
    return out


def mechanism_index(results: Path, grids: Iterable[str]) -> dict[tuple[Any, str, str], dict[str, Any]]:
    """The stored comparisons of ``grids``, keyed ``(table, winner, other)`` for the paper's
    claims (``table`` an int) and ``(grid, winner, other)`` for a grid's own ``compare:``.
    A grid without a mechanism file adds nothing."""
    out: dict[tuple[Any, str, str], dict[str, Any]] = {}
    for grid in sorted(set(grids)):
        doc = read_mechanism(results, grid)
        if doc is None:
            continue
        trained = read_trained(results, grid)
        for item in doc["comparisons"]:
            if not isinstance(item, dict) or not isinstance(item.get("winner"), str):
                continue
            record = carried(doc, item, grid, trained)
            out.setdefault((grid, item["winner"], str(item.get("other"))), record)
            if isinstance(item.get("table"), int) and item.get("claim"):
                out.setdefault((item["table"], item["winner"], str(item.get("other"))), record)
    return out


def start_share_text(mech: dict[str, Any]) -> str:
    """The share at the rows' start alone, as a cell (``2.6 %``)."""
    return "—" if mech.get("grad_share") is None else _pct(mech["grad_share"])


def _pct(share: float) -> str:
    pct = 100 * float(share)
    if pct < 0.001:
        return "< 0.001 %"
    return f"{pct:.2g} %" if pct < 10 else f"{pct:.0f} %"


def share_text(mech: dict[str, Any] | None) -> str:
    """A comparison's gradient share as a table cell: ``0.0062 %``, ``4.1 %``, ``30 %``; ``—`` where not
    measured; with the largest share at a trained run's weights where one is stored: ``2.6 % / 30 % trained``."""
    share = (mech or {}).get("grad_share")
    if share is None:
        return "—"
    trained = [t["grad_share"] for t in (mech or {}).get("trained") or []]
    return _pct(share) + (f" / {_pct(max(trained))} trained" if trained else "")


def trained_words(mech: dict[str, Any]) -> str:
    """``, at a trained network (RUN) by 30 %`` for a comparison measured at trained weights; else ``""``."""
    trained = mech.get("trained") or []
    if not trained:
        return ""
    top = max(trained, key=lambda t: t["grad_share"])
    return f", at a trained network ({Path(str(top['at'])).name}) by {_pct(top['grad_share'])}"


#: The columns of the Mechanism table: a row's own record at the grid's starting point.
ROW_KEYS = (("aa_vs_sa_grad_share", "AA-SA share"), ("omega_mean", "Omega mean"), ("omega_right", "Omega right"),
            ("omega_wrong", "Omega wrong"), ("repel_active", "repel active"), ("repel_in_gap", "W in [Om, m]"),
            ("lr_alpha_median", "alpha median"), ("lr_gamma_vs_0_cos", "LR cos vs gamma 0"))


def mechanism_rows(results: Path, grids: Iterable[str]) -> list[dict[str, Any]]:
    """One row per grid row (each row once, from the first comparison that names it): the row's
    own mechanism record as stored by ``--preflight --store``, with where the network started."""
    out: list[dict[str, Any]] = []
    for grid in grids:
        doc = read_mechanism(results, grid)
        if not doc:
            continue
        start = "untrained start" if (doc.get("start") or {}).get("untrained") else "its pre-training"
        seen: set[str] = set()
        for item in doc.get("comparisons") or []:
            for side in ("winner", "other"):
                row, record = item.get(side), item.get(f"{side}_record")
                if not isinstance(row, str) or row in seen or not isinstance(record, dict):
                    continue
                seen.add(row)
                out.append({"grid": grid, "row": row, "start": start} | {k: record.get(k) for k, _ in ROW_KEYS})
    return out
