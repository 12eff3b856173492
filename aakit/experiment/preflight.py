"""``aakit grid FILE --preflight``: can each comparison of a grid show anything? (issue 28)

Before seeds are spent, for every comparison of the grid — its ``compare:`` and, with
``--preflight``, the paper's claims whose two rows it fills (Tables 1-4) — both rows are built at
their starting point (the network a run of the first common seed starts from: the shared
pre-training's weights where its checkpoint is here, else the untrained start, said so; nothing
is trained) and measured on K probe batches (:mod:`aakit.engine.startpoint`), each with its own
pseudo labels and V. Printed per comparison:

* the **gradient share**: ``|g_winner - g_other| / max(|g_winner|, |g_other|)``, the gradients of
  the two rows' whole objectives w.r.t. the network's outputs (F^c and F^s), on the same batches
  with the same network; its cosine, and what is left of the difference once one gradient is
  rescaled to fit the other (a change of gamma that only rescales LR leaves little);
* **not engaged** where the share is below 1 % (:data:`aakit.experiment.mechanisms.THRESHOLD`):
  the two trainings start out on the same gradient, so their seeds measure seed noise, not the
  mechanism; no verdict where the rows are one training (the same config hash, e.g. rfpc at
  evaluation) or also differ outside the objective (the schedule, the network, the data);
* the **noise floor** and the seeds it asks for: the paired sd of the comparison's own stored
  runs where it has some, else the sd pooled over every stored comparison of the grid's preset
  and suite (paired runs that are two trainings), and the seeds for a 95 % interval of ±0.5 and
  ±1.0 at that sd (:func:`aakit.experiment.stats.seeds_for_halfwidth`).

It creates no run. ``--store`` keeps the measurement as ``results/grids/<name>/mechanism.json``
(:mod:`aakit.experiment.mechanisms`), which the claims and the grid's comparisons then read.
``aakit grid FILE`` runs the same check on the ``compare:`` comparisons it is about to start
(a stored measurement of the same configs is reused) and asks before starting a not-engaged one;
``--yes`` goes on, and so does a run without a terminal (stdin not interactive, or a SLURM job),
saying so in one line.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from aakit.config import NOT_RESULTS, Config
from aakit.errors import AakitError
from aakit.experiment.claims import CLAIMS
from aakit.experiment.grid import Grid, GridError, GridPoint, find_finished_run, load_grid
from aakit.experiment.mechanisms import GRAD_UNIT, THRESHOLD, engaged, read_mechanism, share_text, write_mechanism
from aakit.experiment.stats import seeds_for_halfwidth
from aakit.runlist import flatten

#: Config keys whose difference the objective's gradient at the start shows (the losses and
#: the pseudo labels they read); keys of evaluation only change no training.
OBJECTIVE_KEYS = ("loss.", "pseudo.", "crf.train.")
EVAL_KEYS = ("eval.", "crf.test.")
HALF_WIDTHS = (0.5, 1.0)
GAP_KEYS = ("grad_share", "grad_cos", "grad_share_after_rescale")


@dataclass
class Item:
    """One comparison of a grid: the points of its two rows; ``claim`` and ``table`` for a
    paper's claim."""

    winner: str
    other: str
    text: str
    winner_points: list[GridPoint]
    other_points: list[GridPoint]
    table: int | None = None
    claim: str | None = None

    def pair(self) -> tuple[GridPoint, GridPoint]:
        """The two rows' points of their first common seed (else each row's first point)."""
        ws, os_ = {p.seed: p for p in self.winner_points}, {p.seed: p for p in self.other_points}
        common = sorted(set(ws) & set(os_))
        return (ws[common[0]], os_[common[0]]) if common else (self.winner_points[0], self.other_points[0])

    def done(self, results: Path) -> bool:
        """Every point of both rows has a finished run (nothing of it left to start)."""
        return all(find_finished_run(results, p.hash) for p in self.winner_points + self.other_points)


def grid_items(grid: Grid, *, claims: bool = True) -> list[Item]:
    """The grid's ``compare:`` and (``claims``) the paper's claims whose two rows it fills."""
    by_row: dict[str, list[GridPoint]] = {}
    for p in grid.points:
        by_row.setdefault(p.row, []).append(p)
    items = [Item(c["winner"], c["other"], str(c.get("text") or ""), by_row[c["winner"]], by_row[c["other"]])
             for c in grid.compare]
    seen = {(i.winner, i.other) for i in items}
    for c in CLAIMS if claims else ():
        in_table = [p for p in grid.points if p.table == c.table]
        rows = {p.row for p in in_table}
        for other in c.others:
            if c.winner in rows and other in rows and (c.winner, other) not in seen:
                seen.add((c.winner, other))
                items.append(Item(c.winner, other, c.text, [p for p in in_table if p.row == c.winner],
                                  [p for p in in_table if p.row == other], table=c.table, claim=c.key))
    return items


def differs_in(a: Config, b: Config) -> list[str]:
    """The settings in which two rows' runs differ (not the seed, the name or how they run)."""
    skip = set(NOT_RESULTS) | {"name", "train.seed"}
    fa, fb = flatten(a.to_dict()), flatten(b.to_dict())
    return sorted(k for k in fa.keys() | fb.keys() if k not in skip and fa.get(k) != fb.get(k))


def unjudged(wp: GridPoint, op: GridPoint, keys: list[str]) -> str | None:
    """Why the gradient share cannot say whether a comparison is engaged, else None."""
    if wp.hash == op.hash:
        return (f"one training, evaluated two ways ({wp.metric} against {op.metric}): the objective does not "
                "differ, the evaluation does")
    trains = [k for k in keys if not k.startswith(EVAL_KEYS)]
    if not trains:
        return f"the rows train alike and differ in evaluation only ({', '.join(keys)})"
    beyond = [k for k in trains if not k.startswith(OBJECTIVE_KEYS)]
    if beyond:
        return (f"the rows also differ outside the objective ({', '.join(beyond)}), which its gradient at the start "
                "does not show")
    return None


@dataclass
class Measured:
    """What the preflight found: one entry per comparison, the starts it used, the probe."""

    comparisons: list[dict[str, Any]] = field(default_factory=list)
    starts: list[dict[str, Any]] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)


def _probe_of(probe: Any, batches: int) -> dict[str, Any]:
    """What the probe batches were (the first set of :class:`~aakit.engine.startpoint.StartProbe`)."""
    for data in list(probe.probes.values())[:1]:
        return {"batches": len(data), "images_per_batch": int(data[0]["image"].shape[0]),
                "crop": int(data[0]["image"].shape[-1]),
                "what": "the first training images of the split, centre crop, no augmentation"}
    return {"batches": batches, "images_per_batch": None, "crop": None}


def measure_items(items: Sequence[Item], results: Path, *, batches: int = 2, pretrain: bool = False,
                  stored: dict[str, Any] | None = None, at: str | Path | None = None) -> Measured:
    """Each comparison measured at its rows' starting point (a ``stored`` entry of the same two
    config hashes is reused as it is). Trains nothing unless ``pretrain``."""
    from aakit.engine.startpoint import StartProbe, gradient_gap

    reuse = {(c.get("winner_hash"), c.get("other_hash")): c for c in (stored or {}).get("comparisons", [])
             if isinstance(c, dict)}
    out = Measured()
    rows: dict[tuple[str, int], Any] = {}
    with StartProbe(Path(results), batches=batches, pretrain=pretrain, at=at) as probe:
        for item in items:
            wp, op = item.pair()
            keys = differs_in(wp.config, op.config)
            head = {"winner": item.winner, "other": item.other, "text": item.text, "table": item.table,
                    "claim": item.claim, "seed": wp.seed, "winner_hash": wp.hash, "other_hash": op.hash,
                    "differs_in": keys}
            if (wp.hash, op.hash) in reuse:
                out.comparisons.append(reuse[(wp.hash, op.hash)] | {"text": item.text})
                continue
            reason = unjudged(wp, op, keys)
            if wp.hash == op.hash or all(k.startswith(EVAL_KEYS) for k in keys):  # one training: nothing to measure
                out.comparisons.append(head | dict.fromkeys(GAP_KEYS) | {"reason": reason})
                continue
            try:
                for p in (wp, op):
                    if (p.hash, wp.seed) not in rows:
                        rows[(p.hash, wp.seed)] = probe.measure(p.config, wp.seed)
            except AakitError as e:  # e.g. a row's data set is not here: the others are still measured
                out.comparisons.append(head | dict.fromkeys(GAP_KEYS) | {"reason": f"not measured: {e}"})
                continue
            mw, mo = rows[(wp.hash, wp.seed)], rows[(op.hash, wp.seed)]
            gap = gradient_gap(mw.gradients, mo.gradients)
            reason = reason or gap.pop("reason") or mw.reason or mo.reason
            out.comparisons.append(head | gap | {"reason": reason, "weights": mw.start.weights,
                                                 "winner_record": mw.record, "other_record": mo.record})
            if asdict(mw.start) not in out.starts:
                out.starts.append(asdict(mw.start))
        out.probe = _probe_of(probe, batches)
    return out


# ----------------------------------------------------------------------------- the noise floor
@dataclass
class Noise:
    """Paired sds of stored runs: per comparison ``(table or grid, winner, other) -> (sd, n)``,
    and pooled over the preset's stored comparisons (``pooled``, over ``pooled_from``)."""

    own: dict[tuple[Any, str, str], tuple[float, int]] = field(default_factory=dict)
    pooled: float | None = None
    pooled_from: int = 0
    preset: str = ""

    def of(self, key: tuple[Any, str, str]) -> tuple[float | None, str]:
        """The sd a comparison's seeds are planned with, and where it comes from."""
        if key in self.own:
            sd, n = self.own[key]
            return sd, f"its own {n} stored pairs"
        if self.pooled is not None:
            return self.pooled, f"pooled over {self.pooled_from} stored comparisons of preset {self.preset}"
        return None, f"no stored paired runs of preset {self.preset}"


def _frames(results: Path, grid: Grid) -> list[tuple[Any, Any]]:
    """(grid name or None for the claims, their evaluated comparisons) of the stored runs."""
    from aakit.experiment.claims import evaluate_claims
    from aakit.experiment.comparisons import comparison_grids, evaluate_comparisons
    from aakit.experiment.results import load_results

    index = load_results(results, grid.preset, None, grid.suite)
    frames: list[tuple[Any, Any]] = [(None, evaluate_claims(results, grid.preset, index=index))]
    for state, items in comparison_grids(results, grid.preset, grid.suite):
        frames.append((state.name, evaluate_comparisons(results, state.name, state=state, items=items, runs=index)[0]))
    return frames


def noise_floor(results: Path, grid: Grid) -> Noise:
    """The paired sds of the stored runs of ``grid``'s preset and suite (none stored: empty)."""
    noise = Noise(preset=grid.preset)
    seen: set[frozenset[tuple[str, str]]] = set()
    num = den = 0.0
    for name, df in _frames(Path(results), grid):
        for r in df.to_dict("records"):
            n, sd = int(r.get("paired") or 0), r.get("paired_std")
            if n < 2 or sd is None or (isinstance(sd, float) and math.isnan(sd)):
                continue
            key = (int(r["table"]) if name is None else name, str(r["winner"]), str(r["other"]))
            noise.own[key] = (float(sd), n)
            runs = frozenset((p["winner_run"], p["loser_run"]) for p in r["pairs"])
            if runs in seen or any(a == b for a, b in runs):  # the same pairs twice; one training evaluated twice
                continue
            seen.add(runs)
            num, den, noise.pooled_from = num + (n - 1) * float(sd) ** 2, den + (n - 1), noise.pooled_from + 1
    noise.pooled = math.sqrt(num / den) if den else None
    return noise


def plan_seeds(entry: dict[str, Any], grid: Grid, noise: Noise) -> dict[str, Any]:
    """The noise floor a comparison is planned with and the seeds for ±0.5 and ±1.0."""
    key = (entry["table"], entry["winner"], entry["other"]) if entry.get("claim") else \
        (grid.name, entry["winner"], entry["other"])
    sd, source = noise.of(key)
    seeds = {f"seeds_for_{h}": None if sd is None else seeds_for_halfwidth(sd, h) for h in HALF_WIDTHS}
    return {"noise_sd": sd, "noise_source": source, **seeds}


# ----------------------------------------------------------------------------- the preflight
def preflight(grid_file: str | Path, *, overrides: Sequence[str] = (), results: Path = Path("results"),
              batches: int = 2, pretrain: bool = False, claims: bool = True,
              items: list[Item] | None = None, reuse: bool = False, at: str | Path | None = None) -> dict[str, Any]:
    """The preflight of a grid as stored in mechanism.json (:mod:`aakit.experiment.mechanisms`);
    ``at``: every row measured at that trained run's weights instead (:func:`aakit.engine.startpoint.trained_point`).

    Raises:
        GridError: a bad grid file, or one with no comparison (no ``compare:``, no paper claim's
        two rows), or ``batches`` below 1.
    """
    if batches < 1:
        raise GridError(f"--batches {batches}: the preflight needs at least 1 probe batch")
    grid = load_grid(grid_file, overrides)
    items = grid_items(grid, claims=claims) if items is None else items
    if not items:
        raise GridError(f"{grid.file}: grid {grid.name} declares no compare: and fills no two rows of a paper claim: "
                        "nothing to preflight")
    stored = read_mechanism(results, grid.name) if reuse else None
    measured = measure_items(items, Path(results), batches=batches, pretrain=pretrain, stored=stored, at=at)
    noise = noise_floor(Path(results), grid)
    comparisons = [c | plan_seeds(c, grid, noise) for c in measured.comparisons]
    starts = measured.starts or [s for s in (stored or {}).get("starts", [])]
    return {
        "grid": grid.name, "file": str(grid.file), "preset": grid.preset, "measured": time.time(),
        "command": f"aakit grid {grid.file} --preflight" + (" --pretrain" if pretrain else "")
                   + (f" --at {at}" if at is not None else "") + f" --batches {batches}",
        "at": None if at is None else str(at),
        "threshold": THRESHOLD, "unit": GRAD_UNIT, "start": starts[0] if starts else None, "starts": starts,
        "probe": measured.probe,
        "noise": {"pooled_sd": noise.pooled, "pooled_from": noise.pooled_from, "unit": "val mIoU points (0-100)"},
        "trained": "nothing" if not pretrain else "the shared pre-training where its checkpoint was missing",
        "comparisons": comparisons,
    }


def _verdict(c: dict[str, Any]) -> str:
    if c.get("grad_share") is None:
        return f"no verdict ({c.get('reason') or 'not measured'})"
    if c.get("reason"):
        return f"no verdict ({c['reason']})"
    return f"not engaged (< {100 * THRESHOLD:.0f} %)" if engaged(c["grad_share"]) is False else "engaged"


def _by_output(c: dict[str, Any]) -> str:
    """Where the difference lies, where it lies on one output only: ``; all on F^s: cos 0.999,
    norm x1.30`` (a change of gamma rescales LR's gradient on F^s)."""
    parts = {k: v for k, v in (c.get("by_output") or {}).items() if (v.get("grad_share") or 0) > 1e-9}
    if len(parts) != 1:
        return ""
    (name, v), = parts.items()
    ratio = v.get("norm_ratio")
    return (f"; all on {name}: cos {v['grad_cos']:.4f}" + ("" if ratio is None else f", norm x{ratio:.2f}")
            if v.get("grad_cos") is not None else "")


def format_preflight(doc: dict[str, Any]) -> list[str]:
    """The preflight in lines: a head (start, probe, noise floor), then one line per comparison."""
    start, probe = doc.get("start") or {}, doc.get("probe") or {}
    where = start.get("weights", "—") + (f" ({start['note']})" if start.get("note") else "")
    lines = [f"preflight of grid {doc['grid']}: {len(doc['comparisons'])} comparison(s), nothing trained; start: "
             f"{where}; probe: {probe.get('batches')} batch(es) of {probe.get('images_per_batch')} training images "
             f"(centre crop, no augmentation)"]
    for c in doc["comparisons"]:
        cos = c.get("grad_cos")
        share = share_text(c) + ("" if cos is None else f" (cos {cos:.4f}")
        share += "" if cos is None else (f", {share_text({'grad_share': c.get('grad_share_after_rescale')})} "
                                         "after the best rescale)")
        sd = c.get("noise_sd")
        seeds = ", ".join(f"±{h}: {c.get(f'seeds_for_{h}') or '—'}" for h in HALF_WIDTHS)
        floor = f"paired sd {sd:.2f}, {c['noise_source']}" if sd is not None else c["noise_source"]
        tag = f"T{c['table']} " if c.get("claim") else ""
        lines.append(f"  {tag}{c['winner']} vs {c['other']}: gradient share {share}{_by_output(c)}: {_verdict(c)}; "
                     f"seeds for {seeds} ({floor})")
    return lines


def cli_preflight(grid_file: Path, *, overrides: Sequence[str], results: Path, batches: int, pretrain: bool,
                  store: bool, echo: Callable[[str], None] = print, at: Path | None = None) -> dict[str, Any]:
    """What ``aakit grid FILE --preflight [--at RUN] [--store]`` does: measure, print, keep (``store``)."""
    if at is not None:
        from aakit.engine.startpoint import trained_point

        trained_point(at)  # a missing checkpoint: one line, before anything is built
    doc = preflight(grid_file, overrides=overrides, results=results, batches=batches, pretrain=pretrain, at=at)
    for line in format_preflight(doc):
        echo(line)
    if store:
        doc["command"] += " --store"
        echo(f"wrote {write_mechanism(results, doc['grid'], doc)}")
    return doc


# ----------------------------------------------------------------------------- before a grid runs
def interactive() -> bool:
    """Whether ``aakit grid`` may ask: stdin is a terminal and this is not a cluster job."""
    return sys.stdin.isatty() and not os.environ.get("SLURM_JOB_ID")


def go_ahead(grid_file: Path, *, overrides: Sequence[str], results: Path, yes: bool, asks: bool,
             ask: Callable[[str], bool], echo: Callable[[str], None] = print, batches: int = 2) -> bool:
    """The check ``aakit grid FILE`` makes before it trains: its ``compare:`` comparisons with a
    point still to run, preflighted (a stored measurement of the same configs reused); True to
    start, False where a not-engaged comparison was asked about and the answer was no."""
    grid = load_grid(grid_file, overrides)
    items = [i for i in grid_items(grid, claims=False) if not i.done(results)]
    if not items:
        return True
    try:
        doc = preflight(grid_file, overrides=overrides, results=results, batches=batches, items=items, reuse=True)
    except AakitError as e:
        echo(f"preflight: not measured ({e}); starting the grid without it")
        return True
    for line in format_preflight(doc):
        echo(line)
    off = [c for c in doc["comparisons"] if c.get("reason") is None and engaged(c.get("grad_share")) is False]
    if not off:
        return True
    names = "; ".join(f"{c['winner']} vs {c['other']}" for c in off)
    if yes or not asks:
        why = "--yes" if yes else "no terminal to ask on: stdin is not interactive, or a cluster job"
        echo(f"preflight: {len(off)} comparison(s) not engaged ({names}); going on ({why})")
        return True
    return ask(f"{len(off)} comparison(s) not engaged ({names}): their seeds would measure seed noise. "
               "Start the grid anyway?")
