"""Hyperparameter searches with Optuna (``aakit search SEARCH.yaml --trials N``).

A search file names a base config and the space of the method's hyperparameters::

    name: synthetic
    base: ../synthetic/full.yaml          # relative to this file
    metric: val                           # maximise summary metrics[val].miou
    set: {train.epochs: 6}                # optional fixed overrides
    params:
      loss.lambda_aa: {type: float, low: 0.01, high: 1.0, log: true}    # lambda1
      loss.lambda_lr: {type: float, low: 0.01, high: 1.0, log: true}    # lambda2
      loss.margin_aa: {type: float, low: 0.5, high: 6.0}                # m
      loss.gamma: {type: float, low: 0.0, high: 5.0}
      loss.dilations: {type: categorical, choices: [[4, 8, 12, 24], [4, 8, 12]]}
    sampler: {type: tpe, seed: 0, n_startup_trials: 5}                  # or random
    pruner: {type: median, n_startup_trials: 3, n_warmup_steps: 2}      # threshold, none

Each trial is a normal run directory, ``results/runs/search-<name>-t<trial number>-<hash>/``,
and the trial records it (user attribute ``run``). Every epoch's val mIoU is reported to the
trial, and the pruner may stop a run after any epoch (the run is then marked interrupted and
the trial PRUNED).

``--trials N`` is the size of the study: workers stop once N trials are COMPLETE or PRUNED or
running. Several processes (``--workers``, or several ``aakit search`` commands, or several
machines with ``--storage postgresql://...``) share one study. On the default journal file a
lock beside the file makes "count the trials, then ask for one" atomic, so the study ends with
exactly N trials. On a database storage there is no such lock: two machines can ask at the same
moment, and the later trial (by number) then sees it is surplus and ends FAIL with
``outcome = "surplus"`` before training — never counted, never trained. A trial whose worker
was killed stays RUNNING until it is found dead (see :mod:`aakit.experiment.studies`); it is
then marked FAIL (``outcome = "stale"``) and a new trial takes its place, so none is lost.

A configuration is trained once (:mod:`aakit.experiment.twins`): a trial whose config hash has a
finished run takes that run's result untrained (COMPLETE, ``outcome = "reused"``), and one whose
config another live trial is training waits for it and then does the same. With a sampler
``seed``, trial ``n`` draws its values with ``seed + n``: two processes (or a resumed search) no
longer draw the same points one after the other.

The default storage is ``results/studies/search-<name>.log`` (optuna-dashboard opens it:
``optuna-dashboard results/studies/search-<name>.log``). With ``--set``, the study is
``search-<name>-<digest of the overrides>``: a changed objective is a different study.
"""
from __future__ import annotations

import hashlib
import json
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, Unpack

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from aakit.config import Config, ConfigError, apply_overrides, from_dict
from aakit.errors import AakitError
from aakit.experiment import studies, twins
from aakit.experiment.grid import format_value, override_strings
from aakit.experiment.launch import Cluster, describe_jobs
from aakit.experiment.paired import (
    PairedError,
    PairedSpec,
    check_confirm,
    check_reference,
    confirm,
    describe_confirmation,
    one_start_pairs,
    one_start_value,
    pair_starts,
    parse_paired,
    ranked_trials,
    run_paired_trial,
    study_json,
    study_metric,
)
from aakit.experiment.lifecycle import (
    Claim,
    Job,
    Lifecycle,
    Outcome,
    Say,
    UnitFailed,
    WorkerSpec,
    metric_value,
    printer,
)
from aakit.experiment.specfile import read_spec_file
from aakit.experiment.twins import REUSED
from aakit.experiment.workers import Launch, RunOptions, check_workers
from aakit.redact import redact_argv, redact_text
from aakit.files import read_json
from aakit.runs import run_dir_name, safe_name

SEARCH_KEYS = {"name", "base", "preset", "metric", "set", "params", "sampler", "pruner", "description",
               "objective", "reference", "seeds", "suite"}
PRUNERS = {"median", "threshold", "successive_halving", "hyperband", "none"}
PARAM_TYPES = {"float", "int", "categorical"}


class SearchError(AakitError):
    """A search file or search invocation that cannot be used."""


# ----------------------------------------------------------------------------- the space
@dataclass
class Param:
    """One searched config key."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] = field(default_factory=list)

    def labels(self) -> list[Any]:
        """Categorical choices as Optuna can store them (lists become ``"4-8-12"``)."""
        return [format_value(c) if isinstance(c, (list, tuple)) else c for c in self.choices]

    def suggest(self, trial: optuna.Trial) -> Any:
        """Draw this parameter for a trial; returns the config value."""
        if self.type == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)  # type: ignore[arg-type]
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log,  # type: ignore[arg-type]
                                     step=int(self.step or 1))
        label = trial.suggest_categorical(self.key, self.labels())
        return self.choices[self.labels().index(label)]

    def first(self) -> Any:
        """A value inside the space (used to check the key against the config schema)."""
        if self.type == "categorical":
            return self.choices[0]
        return int(self.low) if self.type == "int" else float(self.low)  # type: ignore[arg-type]


@dataclass
class Search:
    """A loaded search file."""

    name: str
    file: Path
    base: dict[str, Any]
    metric: str
    fixed: dict[str, Any]
    params: list[Param]
    sampler: dict[str, Any]
    pruner: dict[str, Any]
    overrides: list[str]
    paired: PairedSpec | None = None  # objective: paired (see aakit.experiment.paired)
    suite: str | None = None  # the report suite whose page shows the study (None: the default one)

    @property
    def study_name(self) -> str:
        return study_name(self.name, self.overrides)

    def config(self, values: dict[str, Any], run_name: str) -> Config:
        """The config of a trial with the sampled ``values``."""
        data = apply_overrides(self.base, {**self.fixed, **values})
        data = apply_overrides(data, self.overrides)
        data["name"] = run_name
        return from_dict(data, f"{self.file} (trial values {values})")


def study_name(name: str, overrides: Sequence[str]) -> str:
    """``search-<name>``, or with ``--set`` items ``search-<name>-<digest of the items>``."""
    if not overrides:
        return f"search-{name}"
    digest = hashlib.sha256(json.dumps(list(overrides)).encode()).hexdigest()[:6]
    return f"search-{name}-{digest}"


def _parse_param(key: str, spec: Any, where: str) -> Param:
    if not isinstance(spec, dict):
        raise SearchError(f"{where}: params.{key} should be a mapping like {{type: float, low: 0, high: 1}}")
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise SearchError(f"{where}: params.{key}.type should be one of float, int, categorical; got {kind!r}")
    allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log", "step"}
    bad = sorted(set(spec) - allowed)
    if bad:
        raise SearchError(f"{where}: params.{key}: unknown key {bad[0]!r} (known: {', '.join(sorted(allowed))})")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SearchError(f"{where}: params.{key}.choices should be a non-empty list")
        if len(choices) == 1:
            raise SearchError(f"{where}: params.{key}: a categorical with one choice ({choices[0]!r}) searches "
                              "nothing: put it under set:, or give two choices or more")
        p = Param(key, kind, choices=choices)
        if len(set(map(str, p.labels()))) != len(choices):
            raise SearchError(f"{where}: params.{key}.choices repeats a choice")
        return p
    low, high = spec.get("low"), spec.get("high")
    for n, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SearchError(f"{where}: params.{key}.{n} should be a number, got {v!r}")
    if low >= high:  # type: ignore[operator]
        raise SearchError(f"{where}: params.{key}: empty range: low {low} should be < high {high}")
    log = bool(spec.get("log", False))
    if log and low <= 0:  # type: ignore[operator]
        raise SearchError(f"{where}: params.{key}: a log scale needs low > 0")
    return Param(key, kind, float(low), float(high), log, spec.get("step"))  # type: ignore[arg-type]


def load_search(path: str | Path, overrides: Sequence[str] = ()) -> Search:
    """Read and check a search file (every key against the config schema).

    Raises:
        SearchError: one line naming the file and the key at fault.
    """
    head = read_spec_file(path, kind="search", keys=SEARCH_KEYS, shape="base:, params:", error=SearchError)
    path, spec, name, base = head.path, head.spec, head.name, head.base
    fixed = spec.get("set") or {}
    if not isinstance(fixed, dict):
        raise SearchError(f"{path}: set: should be a mapping of dotted keys to values")
    if spec.get("preset") is not None:
        fixed = {**fixed, "preset": spec["preset"]}
    raw = spec.get("params")
    if not isinstance(raw, dict) or not raw:
        raise SearchError(f"{path}: params: should map at least one dotted config key to its range")
    params = [_parse_param(k, v, str(path)) for k, v in raw.items()]
    sampler = spec.get("sampler") or {"type": "tpe"}
    pruner = spec.get("pruner") or {"type": "median"}
    for what, d, kinds in (("sampler", sampler, {"tpe", "random"}), ("pruner", pruner, PRUNERS)):
        if not isinstance(d, dict) or d.get("type") not in kinds:
            raise SearchError(f"{path}: {what}.type should be one of {', '.join(sorted(kinds))}")
    metric = spec.get("metric", "val")
    suite = spec.get("suite")
    if suite is not None and (not isinstance(suite, str) or not suite):
        raise SearchError(f"{path}: suite: should be a report suite's name (e.g. v3), or left out")
    try:
        paired = parse_paired(spec, str(path))
    except PairedError as e:
        raise SearchError(str(e)) from None
    search = Search(name, path, base, metric, dict(fixed), params, dict(sampler), dict(pruner), list(overrides), paired,
                    suite)
    try:
        search.config({p.key: p.first() for p in params}, "check")
        if paired is not None:
            check_reference(search)
    except (ConfigError, PairedError) as e:
        raise SearchError(str(e)) from None
    make_sampler(search, 0)
    make_pruner(search)
    return search


def make_sampler(search: Search, offset: int) -> optuna.samplers.BaseSampler:
    """TPE (constant liar, for parallel workers) or random; a seed is offset by ``offset`` (a
    worker's index; then, for each trial, its number: see :func:`_seed_trial`)."""
    opts = {k: v for k, v in search.sampler.items() if k != "type"}
    seed = opts.pop("seed", None)
    seed = None if seed is None else int(seed) + offset
    try:
        if search.sampler["type"] == "random":
            return optuna.samplers.RandomSampler(seed=seed, **opts)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, **opts)
    except TypeError as e:
        raise SearchError(f"{search.file}: sampler: {e}") from None


def make_pruner(search: Search) -> optuna.pruners.BasePruner:
    opts = {k: v for k, v in search.pruner.items() if k != "type"}
    try:
        kind = search.pruner["type"]
        if kind == "none":
            return optuna.pruners.NopPruner()
        if kind == "threshold":
            return optuna.pruners.ThresholdPruner(**opts)
        if kind == "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner(**opts)
        if kind == "hyperband":
            return optuna.pruners.HyperbandPruner(**opts)
        return optuna.pruners.MedianPruner(**opts)
    except (TypeError, ValueError) as e:
        raise SearchError(f"{search.file}: pruner: {e}") from None


# ----------------------------------------------------------------------------- running
@dataclass
class SearchResult:
    """What one ``run_search`` call did, and the study's best trial."""

    study: str
    storage: str
    ran: list[int] = field(default_factory=list)  # trial numbers trained here
    reused: list[int] = field(default_factory=list)  # trial numbers that took a finished run's result, untrained
    failed: list[tuple[int, str]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    job_ids: list[str] = field(default_factory=list)  # --launcher: the submitit jobs (SLURM: submitted only)
    jobs: Path | None = None  # --launcher: their folder (job files, logs)


def counted(trials: list[FrozenTrial], grace: float) -> list[FrozenTrial]:
    """Trials that use up the budget: COMPLETE, PRUNED, or RUNNING with a live worker."""
    now = time.time()
    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.RUNNING and studies.is_live(t, grace, now))]


@dataclass
class _TrialReport:
    """A search trial: each epoch's val mIoU to Optuna's pruner, the metric as its value."""

    study: optuna.Study
    trial: optuna.Trial
    metric: str

    def on_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        miou = record.get("miou")
        if not isinstance(miou, (int, float)):
            return
        self.trial.report(float(miou), int(epoch))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch} (val mIoU {100 * miou:.1f})")

    def value(self, run_dir: Path) -> float:
        summary = read_json(run_dir / "summary.json")
        value = metric_value(summary, self.metric) if isinstance(summary, dict) else None
        if value is None:
            raise UnitFailed(f"{run_dir.name}: no finished summary with metric {self.metric!r}")
        return value

    def complete(self, value: float, run: str) -> None:
        self.trial.set_user_attr("run", run)
        self.study.tell(self.trial, value)

    def prune(self) -> None:
        self.study.tell(self.trial, state=TrialState.PRUNED)


def _search_worker(
    spec: WorkerSpec, search_path: str, overrides: list[str], trials: int, *,
    worker_index: int = 0, log: Say | None = None,
) -> dict[str, Any]:
    """One worker: ask for trials while the study has fewer than ``trials``; train each (it
    stops after ``spec.max_failures`` trials fail in a row)."""
    search = load_search(search_path, overrides)
    lc = Lifecycle.open(spec, studies.default_storage_path(spec.results, "search", search.name), search.study_name,
                        sampler=make_sampler(search, worker_index), pruner=make_pruner(search))
    say = log or printer(f"{search.study_name} w{worker_index}")
    ran: list[int] = []
    failed: list[tuple[int, str]] = []
    in_a_row = 0  # failures
    seed = (lambda number: _seed_trial(search, lc, number)) if search.sampler.get("seed") is not None else None
    while in_a_row < spec.max_failures and (trial := _ask_within_budget(lc, trials, seed)) is not None:
        outcome = _run_trial(search, lc, trial, say)
        if outcome.state == "failed":
            failed.append((trial.number, outcome.message))
            in_a_row += 1
            say(f"trial {trial.number} FAILED: {outcome.message}")
        else:
            if outcome.message != REUSED:
                ran.append(trial.number)
            in_a_row = 0
    if in_a_row >= spec.max_failures:  # failed trials do not count towards --trials: without this, forever
        say(f"stopping: {in_a_row} trials in a row failed (last: {failed[-1][1]}; --max-failures N)")
    return {"ran": ran, "failed": failed}


def _ask_within_budget(lc: Lifecycle, budget: int, seed: Callable[[int], None] | None = None) -> optuna.Trial | None:
    """A new trial, or None once the study counts ``budget`` trials (see :func:`counted`);
    ``seed(n)`` is called with the number the new trial is to get (exact under a journal's lock)."""
    grace = lc.spec.grace
    with lc.budget_lock():
        lc.recover_stale()
        requeue_interrupted(lc)
        trials = lc.trials()
        if len(counted(trials, grace)) >= budget:
            return None
        if seed is not None:
            seed(len(trials))  # before the ask: a multivariate TPE samples at the ask
        trial = lc.ask()
    if seed is not None and trial.number != len(trials):
        seed(trial.number)  # a database storage without the lock: another trial came first
    # Safety net for storages without the lock: am I beyond the budget?
    before = [t for t in counted(lc.trials(), grace) if t.number < trial.number]
    if len(before) >= budget:
        lc.fail(Claim.of(trial), "surplus")
        return None
    return trial


def requeue_interrupted(lc: Lifecycle) -> list[int]:
    """Enqueue again, once, each paired trial that Ctrl-C or a dead worker left FAIL
    (``outcome`` interrupted or stale): the retry (user attribute ``retry_of``) draws the same
    params, so the runs of the seeds it finished are found by config hash and reused, not lost
    with the session. A trial failed by its config (``outcome = "error"``) is not retried."""
    trials = lc.trials()
    retried = {t.user_attrs.get("retry_of") for t in trials}
    numbers = []
    for t in trials:
        if (t.state == TrialState.FAIL and t.user_attrs.get("outcome") in studies.ENDED_BY_WORKER and t.params
                and t.user_attrs.get("objective") == "paired" and t.number not in retried):
            lc.study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            numbers.append(t.number)
    return numbers


def _seed_trial(search: Search, lc: Lifecycle, number: int) -> None:
    """A seeded sampler draws trial ``number``'s values with ``seed + number``: the same draw for
    the same trial whichever process asks, and never one stream for two trials (two processes
    with one seed drew the same points, and so did a resumed search)."""
    lc.study.sampler = make_sampler(search, number)


def _run_trial(search: Search, lc: Lifecycle, trial: optuna.Trial, say: Say) -> Outcome:
    """Sample the trial's values, train its config (unless it was or is being trained: see
    :mod:`aakit.experiment.twins`), and report to it."""
    claim = Claim.of(trial)
    values = {p.key: p.suggest(trial) for p in search.params}
    name = safe_name(f"{search.study_name}-t{trial.number}")
    try:
        cfg = search.config(values, name)
    except ConfigError as e:  # e.g. a sampled value the schema refuses
        return lc.fail(claim, "error", redact_text(str(e)))
    say(f"trial {trial.number}: " + ", ".join(f"{k.split('.')[-1]}={format_value(v)}" for k, v in values.items()))
    if search.paired is not None:  # the mean paired difference over seeds (no per-epoch pruning)
        return run_paired_trial(search, lc, trial, values, say)
    report = _TrialReport(lc.study, trial, search.metric)
    twin = twins.settle(lc, claim, run_dir_name(name, cfg.hash()), search.metric, say)
    if twin.action != "train":
        return _reuse(lc, claim, report, twin, say)
    used = override_strings({**search.fixed, **values}) + search.overrides
    outcome = lc.run_unit(claim, Job(cfg, name, used), report)
    if outcome.state == "pruned":
        say(f"trial {trial.number}: {outcome.message}")
    elif outcome.state == "done" and outcome.value is not None:
        say(f"trial {trial.number}: val mIoU {100 * outcome.value:.2f}")
    return outcome


def _reuse(lc: Lifecycle, claim: Claim, report: _TrialReport, twin: twins.Twin, say: Say) -> Outcome:
    """Finish an untrained trial with the result of its config's run (or its twin's PRUNED end)."""
    source = f"trial {twin.trial}" if twin.trial is not None else f"run {twin.run}"
    lc.storage.set_trial_user_attr(claim.trial_id, "outcome", REUSED)
    if twin.trial is not None:
        lc.storage.set_trial_user_attr(claim.trial_id, "reused_from", twin.trial)
    if twin.action == "pruned":
        report.prune()
        say(f"trial {claim.number}: same config as {source}, which was pruned: pruned too (not trained)")
        return Outcome("pruned", message=REUSED)
    assert twin.value is not None and twin.run is not None
    report.complete(twin.value, twin.run)
    say(f"trial {claim.number}: same config as {source}: reused its val mIoU {100 * twin.value:.2f} (not trained)")
    return Outcome("done", run=twin.run, value=twin.value, message=REUSED)


def run_search(search_path: str | Path, *, trials: int, overrides: Sequence[str] = (),
               **options: Unpack[RunOptions]) -> SearchResult:
    """Run a search until its study holds ``trials`` trials (``aakit search``).

    Args:
        search_path: the search YAML.
        trials: total size of the study (COMPLETE + PRUNED + running), shared by all workers.
        overrides: ``--set`` items applied to every trial (they name a separate study).
        options: where and how the trials run (see :class:`~aakit.experiment.workers.RunOptions`;
            the storage defaults to ``results/studies/search-<name>.log``).

    Raises:
        SearchError, StorageError: bad input, with a one-line message.
    """
    if trials < 1:
        raise SearchError(f"--trials {trials}: must be >= 1")
    check_workers(options, SearchError)
    search = load_search(search_path, overrides)
    launch = Launch.prepare(options, "search", search.name, search.study_name)
    _record_overrides(launch.storage, search)
    out = SearchResult(search.study_name, launch.where)
    done = launch.dispatch(_search_worker, (str(search_path), list(overrides), trials))
    out.ran, out.failed, out.job_ids, out.jobs = done.ran, done.failed, list(done.job_ids), done.jobs
    study = optuna.load_study(study_name=search.study_name, storage=launch.storage)
    out.reused = [t.number for t in study.get_trials(deepcopy=False) if t.user_attrs.get("outcome") == REUSED
                  and t.user_attrs.get("session") == launch.spec.session]
    out.best = _best(study, Path(launch.spec.results))
    return out


def _record_overrides(storage: BaseStorage, search: Search) -> None:
    """The study keeps its ``--set`` items (user attribute ``overrides``, secrets masked), once:
    ``aakit search --show`` names them when a study is asked for without them; a paired study
    also its objective, reference, seeds and metric."""
    sid = storage.get_study_id_from_name(search.study_name)
    attrs = storage.get_study_user_attrs(sid)
    if "overrides" not in attrs:
        storage.set_study_user_attr(sid, "overrides", redact_argv(search.overrides))
    if search.suite is not None and "suite" not in attrs:  # the report page that shows it
        storage.set_study_user_attr(sid, "suite", search.suite)
    if search.paired is not None and "objective" not in attrs:
        storage.set_study_user_attr(sid, "objective", "paired")
        storage.set_study_user_attr(sid, "reference", search.paired.reference)
        storage.set_study_user_attr(sid, "seeds", list(search.paired.seeds))
    if search.paired is not None and "metric" not in attrs:  # what its values are differences of
        storage.set_study_user_attr(sid, "metric", search.metric)


def confirm_search(search_path: str | Path, *, k: int, seeds: Sequence[int], overrides: Sequence[str] = (),
                   **options: Unpack[RunOptions]) -> dict[str, Any]:
    """``aakit search FILE --confirm K --confirm-seeds ...``: the best ``k`` trials of the study
    rerun on fresh ``seeds``, each paired with the reference (:func:`aakit.experiment.paired.confirm`).

    Raises:
        SearchError: bad input (checked before anything trains), one line.
    """
    check_workers(options, SearchError)
    search = load_search(search_path, overrides)
    results = Path(options.get("results", Path("results")))
    default = studies.default_storage_path(results, "search", search.name)
    if options.get("storage") is None and not default.exists():
        raise SearchError(f"no study {search.study_name} in {default} (run the search first)")
    launch = Launch.prepare(options, "search", search.name, search.study_name)
    lc = Lifecycle.open(launch.spec, launch.default_journal, search.study_name)
    try:
        check_confirm(search, lc.trials(), k, seeds, results)
        return confirm(lc, search, k, seeds, options.get("log") or printer(f"{search.study_name} confirm"))
    except PairedError as e:
        raise SearchError(str(e)) from None


# ----------------------------------------------------------------------------- showing
def _best(study: optuna.Study, results: Path | None = None) -> dict[str, Any] | None:
    """The best complete trial as the confirmation ranks it (``ranked``: its value re-paired
    within one start where it can be, else ``value``)."""
    ranked = ranked_trials(study.get_trials(deepcopy=False), results, study_metric(study))
    if not ranked:
        return None
    t, value = ranked[0]
    run = t.user_attrs.get("run") or (t.user_attrs.get("runs") or [None])[0]  # a paired trial: its first seed's
    return {"number": t.number, "value": t.value, "ranked": value, "params": dict(t.params), "run": run}


def _paired_best(best: dict[str, Any]) -> str:
    """``paired +2.52 points``, and the stored value beside it where the ranking re-paired it."""
    text = f"paired {best['ranked']:+.2f} points"
    return text if abs(best["ranked"] - best["value"]) < 5e-3 else f"{text} re-paired within one start ({best['value']:+.2f} as stored)"


def _start_cell(results: Path | None, t: FrozenTrial, metric: str) -> dict[str, str]:
    """A paired trial's ``start`` column: whether each pair's two runs began from one pre-trained
    checkpoint (``same``), some did not (``differs k/n``), or it is not recorded (``?``); where
    some did not, ``one start``: its value re-paired within each config run's start."""
    refs = t.user_attrs.get("reference_runs")
    if results is None or not refs:
        return {}
    runs = t.user_attrs.get("runs") or []
    starts = pair_starts(results, runs, refs)
    apart = sum(s is False for s in starts)
    cell = {"start": f"differs {apart}/{len(starts)}" if apart else "same" if all(starts) else "?"}
    if apart:  # re-paired with each seed's reference of the config run's own start, where there is one
        value = (one_start_value(results, runs, one_start_pairs(results, runs, refs), metric)
                 if t.state == TrialState.COMPLETE else None)
        cell["one start"] = "" if value is None else f"{value:+.2f}"
    return cell


def trials_frame(study: optuna.Study, results: Path | None = None) -> Any:
    """All trials of a study as a pandas DataFrame, best first; with ``results``, a paired
    trial's ``start`` (:func:`_start_cell`)."""
    import pandas as pd

    rows, metric = [], study_metric(study)
    for t in study.get_trials(deepcopy=False):
        dur = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        rows.append({
            "number": t.number, "state": t.state.name, "value": t.value,
            **{k: v for k, v in t.params.items()},
            "epochs": len(t.intermediate_values), "run": t.user_attrs.get("run"),
            **({"seeds": format_value(t.user_attrs["seeds"])} if "seeds" in t.user_attrs else {}),
            **_start_cell(results, t, metric),
            "outcome": t.user_attrs.get("outcome", ""), "seconds": dur,
        })
    df = pd.DataFrame(rows)
    if "one start" in df:  # beside ``start``, blank where the pairs share their start
        df.insert(list(df.columns).index("start") + 1, "one start", df.pop("one start").fillna(""))
    df.attrs["paired"] = study.user_attrs.get("objective") == "paired"
    if df.empty:
        return df
    order = {"COMPLETE": 0, "RUNNING": 1, "PRUNED": 2, "FAIL": 3, "WAITING": 4}
    ranked = {t.number: v for t, v in ranked_trials(study.get_trials(deepcopy=False), results, metric)}
    df["_o"], df["_r"] = df["state"].map(order), df["number"].map(ranked).fillna(df["value"])
    df = df.sort_values(["_o", "_r", "number"], ascending=[True, False, True], na_position="last")
    out = df.drop(columns=["_o", "_r"]).reset_index(drop=True)
    out.attrs["paired"] = df.attrs["paired"]
    return out


def trials_frame_empty() -> Any:
    import pandas as pd

    return pd.DataFrame(columns=["number", "state", "value", "epochs", "run", "outcome", "seconds"])


def show_search(
    search_path: str | Path | None = None,
    *,
    overrides: Sequence[str] = (),
    results: Path = Path("results"),
    storage: str | None = None,
    top: int = 10,
) -> list[tuple[str, Any]]:
    """``aakit search --show``: (study name, trials DataFrame, best first, at most ``top``) pairs.

    Without a search file, every ``search-*`` study in ``results/studies/*.log`` (or in
    ``storage``) is shown.
    """
    results = Path(results)
    if search_path is not None:
        return [_show_study(load_search(search_path, overrides), results, storage, top)]
    found: list[tuple[str, BaseStorage]] = []  # each storage opened (and checked) once
    if storage is not None:
        st = studies.open_storage(storage, results / "studies" / "none.log", read_only=True)
        found += [(s.study_name, st) for s in optuna.get_all_study_summaries(st) if s.study_name.startswith("search-")]
    else:
        for log_file in sorted((results / "studies").glob("search-*.log")):
            st = studies.open_storage(None, log_file, read_only=True)
            found += [(s.study_name, st) for s in optuna.get_all_study_summaries(st)]
    return [(name, trials_frame(optuna.load_study(study_name=name, storage=st), results).head(top))
            for name, st in found]


def _show_study(search: Search, results: Path, storage: str | None, top: int) -> tuple[str, Any]:
    """The study of a search file (and its ``--set``): its name and best trials."""
    study = load_search_study(search, results, storage)
    return search.study_name, trials_frame_empty() if study is None else trials_frame(study, results).head(top)


def load_search_study(search: Search, results: Path, storage: str | None) -> optuna.Study | None:
    """The study of a search file (and its ``--set``), read only; None if it never ran here."""
    name, default = search.study_name, studies.default_storage_path(results, "search", search.name)
    if storage is None and not default.exists():
        return None  # never ran here: create no file
    st = studies.open_storage(storage, default, read_only=True)
    try:
        return optuna.load_study(study_name=name, storage=st)
    except KeyError:
        raise _no_study(search, st, results, storage) from None


def show_json(search_path: str | Path, *, overrides: Sequence[str] = (), results: Path = Path("results"),
              storage: str | None = None) -> dict[str, Any]:
    """``aakit search FILE --show --format json``: :func:`aakit.experiment.paired.study_json`."""
    search = load_search(search_path, overrides)
    study = load_search_study(search, Path(results), storage)
    if study is None:
        return {"study": search.study_name, "objective": "paired" if search.paired else "miou", "trials": [],
                "confirmation": None}
    return study_json(search.study_name, study, Path(results))


def _no_study(search: Search, st: BaseStorage, results: Path, storage: str | None) -> SearchError:
    """No study of this search file and ``--set``: the error names the storage's studies of the
    search file, each with its trials and the command that shows it (one line)."""
    where = studies.describe_storage(storage, studies.default_storage_path(results, "search", search.name))
    asked = f"--set {' '.join(search.overrides)}" if search.overrides else "no --set"
    others = [s for s in optuna.get_all_study_summaries(st) if s.study_name != search.study_name
              and re.fullmatch(rf"search-{re.escape(search.name)}(-[0-9a-f]{{6}})?", s.study_name)]
    if not others:
        return SearchError(f"no study {search.study_name} in {where} ({asked}; run the search first)")
    items = []
    for s in sorted(others, key=lambda s: s.study_name):
        sets = _study_overrides(st, s.study_name, s.user_attrs, search.name, results)
        how = "its --set items are not recorded" if sets is None else _show_command(search.file, sets, results, storage)
        items.append(f"{s.study_name} ({s.n_trials} trial{'' if s.n_trials == 1 else 's'}): {how}")
    return SearchError(f"no study {search.study_name} in {where} ({asked}); the studies of {search.file} "
                       f"there: {'; '.join(items)}")


def _study_overrides(st: BaseStorage, name: str, attrs: dict[str, Any], search: str, results: Path) -> list[str] | None:
    """A study's ``--set`` items: recorded on it (:func:`_record_overrides`), else (a study made
    before) the end of the overrides a run of one of its trials recorded (``provenance.json``)
    whose digest gives the study's name; None if neither tells."""
    if isinstance(attrs.get("overrides"), list):
        return [str(x) for x in attrs["overrides"]]
    if name == study_name(search, []):
        return []
    for t in st.get_all_trials(st.get_study_id_from_name(name), deepcopy=False):
        run = t.user_attrs.get("run")
        prov = read_json(Path(results) / "runs" / run / "provenance.json") if isinstance(run, str) else None
        items = prov.get("overrides") if isinstance(prov, dict) else None
        if isinstance(items, list):
            found = [items[i:] for i in range(len(items) + 1) if study_name(search, items[i:]) == name]
            if found:
                return [str(x) for x in found[0]]
    return None


def _show_command(search_file: Path, overrides: Sequence[str], results: Path, storage: str | None) -> str:
    """The ``aakit search FILE --show --set ...`` command line of a study (password masked)."""
    argv = ["aakit", "search", str(search_file), "--show", *[a for o in overrides for a in ("--set", o)]]
    if Path(results) != Path("results"):
        argv += ["--results", str(results)]
    if storage is not None:
        argv += ["--storage", studies.describe_storage(storage, Path())]
    return shlex.join(argv)


def format_trials(name: str, df: Any) -> str:
    """Plain-text table of a study's trials (values as mIoU %)."""
    if df is None or df.empty:
        return f"{name}: no trials yet"
    shown = df.copy()
    paired = bool(df.attrs.get("paired"))
    if paired and "run" in shown and shown["run"].isna().all():
        shown = shown.drop(columns="run")  # a paired trial names its runs per seed (--format json)
    shown["value"] = shown["value"].map(lambda v: "" if v is None or v != v else
                                        f"{v:+.2f}" if paired else f"{100 * v:.2f}")
    for c in shown.columns:
        if shown[c].dtype == float and c not in ("seconds",):
            shown[c] = shown[c].map(lambda v: "" if v != v else f"{v:.4g}")
    if "seconds" in shown:
        shown["seconds"] = shown["seconds"].map(lambda v: "" if v is None or v != v else f"{v:.0f}")
    unit = ("value = mean paired difference vs the reference, val mIoU points; epochs = seeds done"
            if paired else "value = val mIoU %")
    return f"{name} ({unit})\n" + str(shown.to_string(index=False))


@dataclass(frozen=True)
class ShowOptions:
    """``aakit search``'s reading options: ``--show``, ``--format``, ``--confirm``, ``--dashboard``."""

    show: bool = False
    fmt: str = "text"  # text or json (with --show)
    confirm: int | None = None  # --confirm K: the best K trials on fresh seeds
    confirm_seeds: tuple[int, ...] = ()
    dashboard: bool = False
    port: int = 8080


def parse_seeds(text: str | None) -> tuple[int, ...]:
    """``--confirm-seeds 100,101,102`` or ``100-104`` -> the seeds; SearchError for anything else."""
    if not text:
        return ()
    try:
        if re.fullmatch(r"\d+-\d+", text.strip()):
            a, b = (int(x) for x in text.split("-"))
            return tuple(range(a, b + 1))
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise SearchError(f"--confirm-seeds {text!r}: expected seeds like 100,101,102 or 100-104") from None


def cli_show(search_file: Path | None, *, opts: ShowOptions, overrides: list[str], results: Path, storage: str | None,
             echo: Callable[[str], None]) -> None:
    """``aakit search [FILE] --show [--format json]``."""
    if opts.fmt not in ("text", "json"):
        raise SearchError(f"--format {opts.fmt!r}: expected text or json")
    if opts.fmt == "json":
        if search_file is None:
            raise SearchError("--show --format json: give the SEARCH.yaml")
        echo(json.dumps(show_json(search_file, overrides=overrides, results=results, storage=storage), indent=2))
        return
    found = show_search(search_file, overrides=overrides, results=results, storage=storage)
    if not found:
        echo(f"no search studies under {Path(results) / 'studies'}")
    for name, df in found:
        echo(format_trials(name, df))
    if search_file is not None:
        conf = show_json(search_file, overrides=overrides, results=results, storage=storage)["confirmation"]
        if conf:
            echo(describe_confirmation(conf))


def cli_run(
    search_file: Path | None,
    *,
    trials: int,
    storage: str | None,
    workers: int,
    gpus: str | None,
    show: bool,
    overrides: list[str],
    results: Path,
    echo: Callable[[str], None] = print,
    cluster: Cluster | None = None,
    max_failures: int = 3,
    opts: ShowOptions | None = None,
) -> None:
    """What ``aakit search`` does (the CLI's thin wrapper calls this); ``cluster``
    (``--launcher``): the workers run as submitit jobs (SLURM: returns once submitted)."""
    opts = opts or ShowOptions(show=show)
    if opts.show or show:
        return cli_show(search_file, opts=opts, overrides=overrides, results=results, storage=storage, echo=echo)
    if search_file is None:
        raise SearchError("aakit search: give a SEARCH.yaml (experiments/searches/...) or --show")
    if opts.dashboard:
        from aakit.experiment.dashboard import serve

        return serve(load_search(search_file, overrides), results=results, storage=storage, port=opts.port, echo=echo)
    if opts.confirm is not None:
        conf = confirm_search(search_file, k=opts.confirm, seeds=opts.confirm_seeds, overrides=overrides,
                              results=results, storage=storage, progress=True, log=echo, max_failures=max_failures)
        return echo(describe_confirmation(conf))
    here = workers == 1 and cluster is None  # in this process: the progress bar and lines here
    out = run_search(search_file, trials=trials, overrides=overrides, results=results, storage=storage,
                     workers=workers, gpus=gpus, progress=here or cluster is not None,
                     log=echo if here else None, launcher=cluster, max_failures=max_failures)
    if cluster is not None:
        echo(describe_jobs(cluster, out.job_ids, out.jobs))
    echo(f"{out.study} on {out.storage}: ran trials {out.ran or 'none'}"
         + (f"; reused the result of a run of the same config: trials {out.reused}" if out.reused else "")
         + (f"; failed {[n for n, _ in out.failed]}" if out.failed else ""))
    if out.best:
        params = ", ".join(f"{k}={v}" for k, v in out.best["params"].items())
        value = _paired_best(out.best) if load_search(search_file, overrides).paired \
            else f"val mIoU {100 * out.best['value']:.2f}"
        echo(f"best: trial {out.best['number']} {value} ({params}) run {out.best['run']}")
