"""The paired objective of a search (``objective: paired``), its fidelity over seeds, and the
confirmation of its best trials on fresh seeds (issue 31).

One run's val mIoU moves by about as much from seed to seed as any hyperparameter moves it, so
a search that maximises it ranks seeds. A paired search instead gives each trial the mean of
its **paired differences** against a reference config (default: the paper's setting,
:data:`PAPER_REFERENCE`) trained on the *same* seeds::

    objective: paired
    reference: {loss.gamma: 2.0}          # over the paper's setting; default: the paper's setting
    seeds: [0, 1, 2, 3]                   # the fidelity: a trial runs them in this order
    pruner: {type: successive_halving, min_resource: 1, reduction_factor: 2}

* value of a trial = mean over its seeds of ``100 * (miou(config, s) - miou(reference, s))``,
  val mIoU **points**; its user attributes ``seeds``, ``runs``, ``reference_runs`` and
  ``diffs`` name every pair;
* **fidelity**: after each seed the running paired mean is reported to the trial at step = the
  number of seeds done, and Optuna's pruner (median, successive halving, Hyperband) may stop
  the trial there: a trial gets more seeds only while it looks promising;
* **one training per configuration**: each run (a trial's config or the reference, on one
  seed) is trained under a lock named by its config hash (``results/runs/.locks/pair-<hash>.lock``)
  after looking for a finished run of that hash (:func:`aakit.experiment.grid.find_finished_run`):
  the reference run of a seed is trained once for the whole study, a config drawn twice is
  trained once, and two workers wanting one run at once train it once (the second waits, then
  reuses it);
* **one start per pair**: the reference a config run is paired with is the reference run that
  began from the same pre-trained checkpoint (:func:`start_of`); a machine whose pre-training
  has other bits trains its own reference once, named ``<study>-ref-s<seed>-<start[:8]>``, so
  every pair is recomputable from committed summaries and shares its start;
* **confirmation** (:func:`confirm`): the best ``k`` trials on fresh seeds no trial used, each
  paired with the reference; the study's answer is the interval of the search's best trial
  there (:func:`aakit.experiment.stats.paired_comparison`, the claims' rule), and
  ``selection_bias`` = its search value minus its confirmation mean.
"""
from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from aakit.config import Config, ConfigError
from aakit.errors import AakitError
from aakit.experiment import studies
from aakit.experiment.grid import find_finished_run, format_value, is_finished_run, override_strings
from aakit.experiment.lifecycle import Claim, Lifecycle, Outcome, Say, UnitFailed, metric_value, one_line
from aakit.experiment.stats import paired_comparison
from aakit.experiment.tables import nan_to_none
from aakit.runs import read_json, run_dir_name, safe_name, same_start, start_of  # noqa: F401 (re-exported)

#: The paper's setting (lambda1, lambda2, m, gamma, the dilation set): the default reference.
PAPER_REFERENCE: dict[str, Any] = {"loss.lambda_aa": 0.1, "loss.lambda_lr": 0.1, "loss.margin_aa": 3.0,
                                   "loss.gamma": 2.0, "loss.dilations": [4, 8, 12, 24]}
UNIT = "val mIoU points (0-100)"


class PairedError(AakitError):
    """A paired search or confirmation that cannot be used (one line)."""


class Param(Protocol):
    """A searched key (:class:`aakit.experiment.search.Param`; a protocol: no import circle)."""

    key: str
    type: str
    low: float | None
    high: float | None
    choices: list[Any]

    def labels(self) -> list[Any]: ...


class Search(Protocol):
    """A loaded search file (:class:`aakit.experiment.search.Search`)."""

    file: Path
    metric: str
    fixed: dict[str, Any]
    params: Sequence[Param]
    overrides: list[str]
    paired: "PairedSpec | None"

    @property
    def study_name(self) -> str: ...

    def config(self, values: dict[str, Any], run_name: str) -> Config: ...


@dataclass(frozen=True)
class PairedSpec:
    """``objective: paired``: the reference overrides and the seeds a trial runs, in order."""

    reference: dict[str, Any]
    seeds: tuple[int, ...]


def parse_paired(spec: dict[str, Any], where: str) -> PairedSpec | None:
    """The paired part of a search file, or None (``objective: miou``, the default)."""
    objective = spec.get("objective", "miou")
    if objective not in ("miou", "paired"):
        raise PairedError(f"{where}: objective should be miou or paired, got {objective!r}")
    if objective == "miou":
        for key in ("reference", "seeds"):
            if key in spec:
                raise PairedError(f"{where}: {key}: only with objective: paired")
        return None
    ref = spec.get("reference") or {}
    if not isinstance(ref, dict):
        raise PairedError(f"{where}: reference: should be a mapping of dotted config keys to values")
    seeds = spec.get("seeds", [0, 1, 2])
    if (not isinstance(seeds, list) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise PairedError(f"{where}: seeds: should be a non-empty list of seeds (integers >= 0), got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise PairedError(f"{where}: seeds: repeats a seed ({seeds})")
    return PairedSpec({**PAPER_REFERENCE, **ref}, tuple(seeds))


def _inside(p: Param, v: Any) -> bool:
    if p.type == "categorical":
        return any(format_value(v) == format_value(c) for c in p.choices)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return p.low <= v <= p.high  # type: ignore[operator]


def check_reference(search: Search) -> None:
    """The reference config builds, and each searched key's reference value lies in the space."""
    assert search.paired is not None
    try:
        ref = search.config(search.paired.reference, "reference")
    except ConfigError as e:
        raise PairedError(f"{search.file}: reference: {e}") from None
    for p in search.params:
        v = ref.get(p.key)
        if not _inside(p, v):
            space = (f"choices {[format_value(c) for c in p.choices]}" if p.type == "categorical"
                     else f"[{p.low:g}, {p.high:g}]")
            raise PairedError(f"{search.file}: reference: {p.key} = {format_value(v)} is outside the space "
                              f"({space}); the reference must be a point of the search space")


# ----------------------------------------------------------------------------- one run, once
@dataclass(frozen=True)
class Pair:
    """One seed of a trial or of a confirmation: its run and the reference's, both val mIoU %."""

    seed: int
    config_run: str
    reference_run: str
    config: float
    reference: float
    config_start: str | None = None  # the pre-trained checkpoint each run started from (start_of)
    reference_start: str | None = None

    @property
    def diff(self) -> float:
        return self.config - self.reference

    @property
    def same_start(self) -> bool | None:
        return same_start(self.config_start, self.reference_start)

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "config_run": self.config_run, "reference_run": self.reference_run,
                "config": self.config, "reference": self.reference, "diff": self.diff,
                "config_start": self.config_start, "reference_start": self.reference_start,
                "same_start": self.same_start}


def pair_starts(results: Path, runs: Sequence[str], reference_runs: Sequence[str]) -> list[bool | None]:
    """Per seed of a stored trial (its ``runs`` and ``reference_runs``): :func:`same_start`."""
    top = Path(results) / "runs"
    return [same_start(start_of(top / a), start_of(top / b)) for a, b in zip(runs, reference_runs)]


def one_start_pairs(results: Path, runs: Sequence[str], reference_runs: Sequence[str]) -> list[str | None]:
    """Per seed of a stored trial: the reference run (of the stored reference's config hash) that
    began from the config run's own start, or None where no such run is here. A trial stored
    before pairs shared their start (a reference from another machine) is re-paired with it."""
    top = Path(results) / "runs"
    out: list[str | None] = []
    for run, ref in zip(runs, reference_runs):
        found = finished_run_from(Path(results), ref.rsplit("-", 1)[-1], start_of(top / run))
        out.append(None if found is None else found.name)
    return out


def one_start_value(results: Path, runs: Sequence[str], one_start_refs: Sequence[str | None], metric: str = "val"
                    ) -> float | None:
    """A stored trial's mean paired difference (points) against the references of
    :func:`one_start_pairs`; None unless every seed has one."""
    top = Path(results) / "runs"
    if not runs or any(r is None for r in one_start_refs):
        return None
    diffs = [_value(top / a, metric) - _value(top / str(b), metric) for a, b in zip(runs, one_start_refs)]
    return sum(diffs) / len(diffs)


def _value(run: Path, metric: str) -> float:
    summary = read_json(run / "summary.json")
    value = metric_value(summary, metric) if isinstance(summary, dict) else None
    if value is None:
        raise UnitFailed(f"{run.name}: no finished summary with metric {metric!r}")
    return 100 * value


def finished_run_from(results: Path, chash: str, start: str | None) -> Path | None:
    """A finished run of ``chash`` that began from the pre-trained checkpoint ``start``
    (:func:`start_of`; None: a run that records no start), or None."""
    for d in sorted((Path(results) / "runs").glob(f"*-{chash}")):
        if start_of(d) == start and is_finished_run(d, chash):
            return d
    return None


def _free_name(results: Path, name: str, chash: str) -> str:
    """``name``, or ``name-2``, ``name-3``... where a run directory of that name and hash is here
    already (a reference trained for this start that began from another)."""
    k, free = 1, name
    while (Path(results) / "runs" / run_dir_name(free, chash)).exists():
        k += 1
        free = f"{name}-{k}"
    return free


ANY_START = object()  #: train_once: reuse a finished run of the hash whatever its start


def train_once(lc: Lifecycle, search: Search, values: dict[str, Any], name: str, say: Say,
               start: Any = ANY_START) -> tuple[str, float]:
    """The run of ``values`` (over the search's base and fixed keys) under ``name``: a finished
    run of its config hash if there is one, else trained here, under the hash's lock (a second
    worker wanting it waits, then reuses it). Returns (run directory name, val mIoU %).

    With ``start`` (a :func:`start_of` value, or None for no recorded start) only a run that
    began from that checkpoint is reused, and one trained here is named ``<name>-<start[:8]>``:
    the reference of a pair is the reference trained from the config run's own start."""
    cfg = search.config(values, name)
    chash, results = cfg.hash(), Path(lc.spec.results)
    lock_dir = results / "runs" / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / f"pair-{chash}.lock", os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        anywhere = start is ANY_START
        found = find_finished_run(results, chash) if anywhere else finished_run_from(results, chash, start)
        if found is not None:
            return found.name, _value(found, search.metric)
        if not anywhere and start is not None:
            name = _free_name(results, safe_name(f"{name}-{str(start)[:8]}"), chash)
            cfg = search.config(values, name)
        say(f"training {run_dir_name(name, chash)}")
        used = override_strings({**search.fixed, **values}) + search.overrides
        run = Path(lc.train(cfg, results=results, name=name, overrides=used, resume=None,
                            epoch_callback=None, progress=lc.spec.progress))
        return run.name, _value(run, search.metric)
    finally:
        os.close(fd)


def train_pair(lc: Lifecycle, search: Search, values: dict[str, Any], seed: int, name: str, say: Say) -> Pair:
    """A config and the reference on one seed, both from one pre-trained start: the config run
    first, then the reference run of the seed that began from the config run's checkpoint
    (shared by the study; trained here, once, when no run of that start exists). A pre-training
    trained again on another processor has other bits, so each machine pairs with its own."""
    assert search.paired is not None
    top = Path(lc.spec.results) / "runs"
    run, value = train_once(lc, search, {**values, "train.seed": seed}, safe_name(f"{name}-s{seed}"), say)
    config_start = start_of(top / run)
    ref_name = safe_name(f"{search.study_name}-ref-s{seed}")
    ref_run, ref = train_once(lc, search, {**search.paired.reference, "train.seed": seed}, ref_name, say,
                              start=config_start)
    pair = Pair(seed, run, ref_run, value, ref, config_start, start_of(top / ref_run))
    if pair.same_start is False:
        say(f"note: {run} started from the pre-trained checkpoint {pair.config_start}, its reference {ref_run} "
            f"from {pair.reference_start}: this pair does not share its start (a pre-training trained again "
            f"on another processor); its difference holds that too")
    return pair


def _record(lc: Lifecycle, claim: Claim, pairs: list[Pair]) -> None:
    for key, vals in (("seeds", [p.seed for p in pairs]), ("runs", [p.config_run for p in pairs]),
                      ("reference_runs", [p.reference_run for p in pairs]), ("diffs", [p.diff for p in pairs])):
        lc.storage.set_trial_user_attr(claim.trial_id, key, vals)


def run_paired_trial(search: Search, lc: Lifecycle, trial: optuna.Trial, values: dict[str, Any], say: Say) -> Outcome:
    """Train a trial's pairs seed by seed; after each, report the running paired mean (step =
    seeds done) and let the pruner stop it; COMPLETE with the mean paired difference (points)."""
    assert search.paired is not None
    claim, seeds = Claim.of(trial), search.paired.seeds
    lc.storage.set_trial_user_attr(claim.trial_id, "objective", "paired")
    name = f"{search.study_name}-t{trial.number}"
    pairs: list[Pair] = []
    try:
        with studies.Heartbeat(lc.storage, claim.trial_id, lc.spec.heartbeat):
            for k, seed in enumerate(seeds, 1):
                pairs.append(train_pair(lc, search, values, seed, name, say))
                _record(lc, claim, pairs)
                mean = sum(p.diff for p in pairs) / len(pairs)
                trial.report(mean, k)
                if k < len(seeds) and trial.should_prune():
                    lc.study.tell(trial, state=TrialState.PRUNED)
                    say(f"trial {trial.number}: pruned after {k} seed(s) (paired mean {mean:+.2f} points)")
                    return Outcome("pruned", message=f"pruned after {k} seeds")
    except (KeyboardInterrupt, SystemExit):
        lc.fail(claim, "interrupted")
        raise
    except Exception as e:  # noqa: BLE001 - one failed trial must not stop the others
        return lc.fail(claim, "error", one_line(e))
    lc.study.tell(trial, mean)
    say(f"trial {trial.number}: paired {mean:+.2f} points vs the reference over seeds {list(seeds)}")
    return Outcome("done", run=pairs[0].config_run, value=mean)


# ----------------------------------------------------------------------------- confirmation
def trial_values(search: Search, t: FrozenTrial) -> dict[str, Any]:
    """A stored trial's config values (categorical labels back to their config values)."""
    out = {}
    for p in search.params:
        if p.key in t.params:
            v = t.params[p.key]
            out[p.key] = p.choices[p.labels().index(v)] if p.type == "categorical" else v
    return out


def used_seeds(trials: Sequence[FrozenTrial]) -> set[int]:
    return {int(s) for t in trials for s in (t.user_attrs.get("seeds") or [])}


def ranking_value(t: FrozenTrial, results: Path | None, metric: str = "val") -> float:
    """What the confirmation ranks a trial by: its value re-paired within its runs' own start
    (:func:`one_start_value`) where that differs from the stored pairs and can be computed here,
    else its stored value."""
    runs, refs = t.user_attrs.get("runs"), t.user_attrs.get("reference_runs")
    if results is not None and runs and refs and False in pair_starts(results, runs, refs):
        repaired = one_start_value(results, runs, one_start_pairs(results, runs, refs), metric)
        if repaired is not None:
            return repaired
    return float(t.value)  # type: ignore[arg-type]


def ranked_trials(trials: Sequence[FrozenTrial], results: Path | None, metric: str = "val"
                  ) -> list[tuple[FrozenTrial, float]]:
    """The COMPLETE trials with a value and their :func:`ranking_value`, best first (ties: the
    earlier trial): the one order of the confirmation, ``--show``, the search's last line and the
    report's best trial."""
    done = [(t, ranking_value(t, results, metric)) for t in trials
            if t.state == TrialState.COMPLETE and t.value is not None]
    return sorted(done, key=lambda tv: (-tv[1], tv[0].number))


def check_confirm(search: Search, trials: Sequence[FrozenTrial], k: int, seeds: Sequence[int],
                  results: Path | None = None) -> list[FrozenTrial]:
    """The ``k`` best COMPLETE trials to confirm on ``seeds`` (fresh, at least 2), or PairedError;
    with ``results``, ranked by :func:`ranking_value`."""
    if search.paired is None:
        raise PairedError(f"{search.file}: --confirm needs objective: paired")
    if k < 1:
        raise PairedError(f"--confirm {k}: must be >= 1")
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise PairedError(f"--confirm-seeds {list(seeds)}: give at least 2 distinct seeds (an interval needs 2)")
    stale = sorted((used_seeds(trials) | set(search.paired.seeds)) & set(seeds))
    if stale:
        raise PairedError(f"--confirm-seeds: seed(s) {stale} already used by the search; confirm on fresh seeds")
    done = [t for t, _ in ranked_trials(trials, results, search.metric)]
    if len(done) < k:
        raise PairedError(f"--confirm {k}: the study has {len(done)} complete trial(s)")
    return done[:k]


def interval(pairs: Sequence[Pair | dict[str, Any]]) -> dict[str, Any]:
    """The paired interval of pairs (points): ``n``, ``mean_diff``, ``sd``, ``ci_low``, ``ci_high``."""
    diffs = [p.diff if isinstance(p, Pair) else float(p["config"]) - float(p["reference"]) for p in pairs]
    r = paired_comparison(diffs, None)
    return {"n": r.n, "mean_diff": nan_to_none(r.mean_diff), "sd": nan_to_none(r.sd),
            "ci_low": nan_to_none(r.ci_low), "ci_high": nan_to_none(r.ci_high), "verdict": r.verdict}


def confirm_trial(lc: Lifecycle, search: Search, t: FrozenTrial, seeds: Sequence[int], say: Say) -> dict[str, Any]:
    """One trial rerun on ``seeds`` against the reference: its pairs, interval and selection bias."""
    values = trial_values(search, t)
    shown = ", ".join(f"{k.split('.')[-1]}={format_value(v)}" for k, v in values.items())
    say(f"confirming trial {t.number} ({shown})")
    pairs = [train_pair(lc, search, values, s, f"{search.study_name}-confirm-t{t.number}", say) for s in seeds]
    iv, ranked = interval(pairs), ranking_value(t, Path(lc.spec.results), search.metric)
    bias = None if iv["mean_diff"] is None else ranked - iv["mean_diff"]
    return {"trial": t.number, "params": dict(t.params), "search_value": t.value, "ranking_value": ranked,
            "search_seeds": list(t.user_attrs.get("seeds") or []), "pairs": [p.as_dict() for p in pairs],
            **iv, "selection_bias": bias, "start_mismatches": sum(p.same_start is False for p in pairs)}


def confirm(lc: Lifecycle, search: Search, k: int, seeds: Sequence[int], say: Say) -> dict[str, Any]:
    """The best ``k`` trials on fresh ``seeds``; stored on the study (user attribute
    ``confirmation``) and returned: at its top the search's best trial's confirmation (the
    study's answer: ``trial``, ``pairs``, ``ci_low``, ``ci_high``, ``selection_bias``...), under
    ``trials`` each confirmed trial's."""
    chosen = check_confirm(search, lc.trials(), k, seeds, Path(lc.spec.results))
    confirmed = [confirm_trial(lc, search, t, seeds, say) for t in chosen]
    out = {"unit": UNIT, "seeds": list(seeds), "k": k, "reference": search.paired.reference,  # type: ignore[union-attr]
           **confirmed[0], "trials": confirmed}
    lc.storage.set_study_user_attr(lc.study_id, "confirmation", out)
    return out


def describe_confirmation(c: dict[str, Any]) -> str:
    """The confirmation in a line: the answer's interval, its seeds and the selection bias."""
    head = f"confirmation of trial {c['trial']} on fresh seeds {c['seeds']}"
    if c.get("ci_low") is None:
        return f"{head}: {c.get('mean_diff')} points, no interval"
    bias, apart = c.get("selection_bias"), c.get("start_mismatches") or 0
    starts = (f"; {apart} of {len(c['pairs'])} pairs did not share their pre-trained start" if apart else "")
    ranked = c.get("ranking_value", c["search_value"])
    seen = (f"{c['search_value']:+.2f}" if ranked is None or abs(ranked - c["search_value"]) < 5e-3
            else f"{c['search_value']:+.2f} ({ranked:+.2f} re-paired within one start)")
    return (f"{head}: {c['mean_diff']:+.2f} points vs the reference, 95 % CI [{c['ci_low']:+.2f}, "
            f"{c['ci_high']:+.2f}] ({c['verdict']}); its search value was {seen}: "
            f"selection bias {bias:+.2f} points{starts}")


def trial_row(t: FrozenTrial, results: Path | None = None, metric: str = "val") -> dict[str, Any]:
    """A trial as ``--show --format json`` gives it; with ``results``, a paired trial's
    ``same_start`` per seed (:func:`pair_starts`, read from its runs), and its pairs and value
    with each seed's reference of the config run's own start (:func:`one_start_value`)."""
    runs, refs = t.user_attrs.get("runs", [t.user_attrs.get("run")]), t.user_attrs.get("reference_runs")
    row = {"number": t.number, "state": t.state.name, "params": dict(t.params), "value": t.value,
           "seeds": t.user_attrs.get("seeds"), "runs": runs, "reference_runs": refs,
           "diffs": t.user_attrs.get("diffs"), "outcome": t.user_attrs.get("outcome", "")}
    if results is not None and refs:
        row["same_start"] = pair_starts(results, runs, refs)
        repaired = row["one_start_reference_runs"] = one_start_pairs(results, runs, refs)
        row["value_one_start"] = (one_start_value(results, runs, repaired, metric)
                                  if t.state == TrialState.COMPLETE else None)
    return row


def study_metric(study: optuna.Study) -> str:
    """The metric a paired study's values are differences of (its user attribute ``metric``;
    a study that records none is of ``val``, the search file's default)."""
    return str(study.user_attrs.get("metric") or "val")


def study_json(name: str, study: optuna.Study, results: Path | None = None) -> dict[str, Any]:
    """A study for scripts: its objective, unit, reference, trials and confirmation."""
    attrs = study.user_attrs
    paired = attrs.get("objective") == "paired"
    return {"study": name, "objective": "paired" if paired else "miou",
            "unit": UNIT if paired else "val mIoU (0-1)", "reference": attrs.get("reference"),
            "seeds": attrs.get("seeds"),
            "trials": [trial_row(t, results, study_metric(study)) for t in study.get_trials(deepcopy=False)],
            "confirmation": attrs.get("confirmation")}
