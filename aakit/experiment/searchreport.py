"""The "Search" section of ``aakit report``: one row per search study under ``results/studies/``.

For each study: its trials, the best trial against the reference (the paper's setting, for a
paired study) with the confirmation's interval on fresh seeds and the selection bias (search
value minus confirmation mean), the parameters' importances, and the cost (the runs the study
used and their training time from ``summary.json``). Importances are Optuna's fANOVA
(:class:`optuna.importance.FanovaImportanceEvaluator`, which needs scikit-learn); without
scikit-learn, Optuna's PED-ANOVA (:class:`optuna.importance.PedAnovaImportanceEvaluator`), and
the table names which. The figures (:func:`search_figures`) are Optuna's matplotlib
visualisation: optimisation history, slice plot and importances.
"""
from __future__ import annotations

import importlib.util
import io
import warnings
from pathlib import Path
from typing import Any, Iterator

import optuna
import pandas as pd
from optuna.trial import TrialState

from aakit.experiment import studies
from aakit.experiment.tables import Block, ReportTable
from aakit.experiment.paired import pair_starts, ranked_trials, study_metric
from aakit.files import atomic_write_bytes
from aakit.runs import read_json


def committed_studies(results: Path) -> Iterator[tuple[str, optuna.Study]]:
    """Every search study in ``results/studies/search-*.log`` (read only)."""
    for log in sorted((Path(results) / "studies").glob("search-*.log")):
        st = studies.open_storage(None, log, read_only=True)
        for s in optuna.get_all_study_summaries(st):
            yield s.study_name, optuna.load_study(study_name=s.study_name, storage=st)


def importance_method() -> tuple[str, Any]:
    """fANOVA if scikit-learn is there, else PED-ANOVA: (its name, an evaluator)."""
    if importlib.util.find_spec("sklearn") is not None:
        return "fANOVA", optuna.importance.FanovaImportanceEvaluator(seed=0)
    return "PED-ANOVA (no scikit-learn for fANOVA)", optuna.importance.PedAnovaImportanceEvaluator()


def importances(study: optuna.Study) -> dict[str, float] | None:
    """The parameters' importances, or None (too few complete trials, or one value only)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if len(done) < 3:
        return None
    try:
        return dict(optuna.importance.get_param_importances(study, evaluator=importance_method()[1]))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return None


def study_runs(study: optuna.Study) -> set[str]:
    """The runs a study used: its trials' (and references') and its confirmation's."""
    runs: set[str] = set()
    for t in study.get_trials(deepcopy=False):
        for key in ("runs", "reference_runs"):
            runs |= set(t.user_attrs.get(key) or [])
        if isinstance(t.user_attrs.get("run"), str):
            runs.add(t.user_attrs["run"])
    for c in (study.user_attrs.get("confirmation") or {}).get("trials", []):
        runs |= {p[k] for p in c["pairs"] for k in ("config_run", "reference_run")}
    return runs


def cost(results: Path, study: optuna.Study) -> tuple[int, float]:
    """(runs used, their training hours from summary.json's ``wall_time_s``)."""
    runs = study_runs(study)
    seconds = 0.0
    for r in runs:
        s = read_json(Path(results) / "runs" / r / "summary.json")
        if isinstance(s, dict) and isinstance(s.get("wall_time_s"), (int, float)):
            seconds += float(s["wall_time_s"])
    return len(runs), seconds / 3600


def _best(study: optuna.Study, results: Path) -> tuple[optuna.trial.FrozenTrial | None, float | None]:
    """The best complete trial and its value, ranked as the confirmation ranks them
    (:func:`aakit.experiment.paired.ranking_value`: re-paired within one start where it can be)."""
    ranked = ranked_trials(study.get_trials(deepcopy=False), results, study_metric(study))
    return ranked[0] if ranked else (None, None)


def _interrupted(t: optuna.trial.FrozenTrial) -> bool:
    """Ended by Ctrl-C or a dead worker, not by its config (a resumed search retries it)."""
    return t.user_attrs.get("outcome") in studies.ENDED_BY_WORKER


def study_row(results: Path, name: str, study: optuna.Study) -> dict[str, Any]:
    """One study's numbers (the ``long`` frame of the section)."""
    trials = study.get_trials(deepcopy=False)
    paired = study.user_attrs.get("objective") == "paired"
    (best, value), conf = _best(study, results), study.user_attrs.get("confirmation") or {}
    n_runs, hours = cost(results, study)
    return {
        "study": name, "objective": "paired" if paired else "miou",
        **{s: sum(t.state == getattr(TrialState, s.upper()) for t in trials) for s in ("complete", "pruned")},
        "fail": sum(t.state == TrialState.FAIL and not _interrupted(t) for t in trials),
        "interrupted": sum(t.state == TrialState.FAIL and _interrupted(t) for t in trials),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
        "best_trial": None if best is None else best.number, "best_params": {} if best is None else dict(best.params),
        "search_value": value, "confirmed_trial": conf.get("trial"),
        "confirm_seeds": conf.get("seeds"), "confirm_mean": conf.get("mean_diff"), "ci_low": conf.get("ci_low"),
        "ci_high": conf.get("ci_high"), "selection_bias": conf.get("selection_bias"),
        "importances": importances(study), "runs": n_runs, "train_hours": hours, **shared_starts(results, study),
    }


def shared_starts(results: Path, study: optuna.Study) -> dict[str, int]:
    """How many of a paired study's pairs (the trials' and the confirmation's) have both runs
    started from one pre-trained checkpoint (:func:`aakit.experiment.paired.start_of`), of those
    whose starts are recorded: ``pairs_shared`` of ``pairs_known``."""
    conf = study.user_attrs.get("confirmation") or {}
    starts = [s for t in study.get_trials(deepcopy=False) if t.user_attrs.get("reference_runs")
              for s in pair_starts(results, t.user_attrs.get("runs") or [], t.user_attrs["reference_runs"])]
    starts += [pair_starts(results, [p["config_run"]], [p["reference_run"]])[0]
               for c in conf.get("trials") or [] for p in c.get("pairs") or []]
    return {"pairs_known": sum(s is not None for s in starts), "pairs_shared": sum(s is True for s in starts)}


def _fmt(v: Any, signed: bool = True) -> str:
    return "—" if v is None else f"{v:+.2f}" if signed else f"{v:.2f}"


def _rendered(r: dict[str, Any]) -> list[str]:
    params = ", ".join(f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                       for k, v in r["best_params"].items())
    value = _fmt(r["search_value"]) if r["objective"] == "paired" else _fmt(
        None if r["search_value"] is None else 100 * r["search_value"], signed=False)
    conf = "not confirmed" if r["ci_low"] is None else (
        f"{r['confirm_mean']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] on {len(r['confirm_seeds'])} fresh seeds")
    imp = "—" if not r["importances"] else ", ".join(
        f"{k.split('.')[-1]} {v:.2f}" for k, v in list(r["importances"].items())[:3])
    return [r["study"], f"{r['complete']}/{r['pruned']}/{r['fail']}/{r['interrupted'] + r['running']}", f"t{r['best_trial']}: {params}"
            if r["best_trial"] is not None else "—", value, conf, _fmt(r["selection_bias"]), imp,
            f"{r['pairs_shared']}/{r['pairs_known']}" if r["pairs_known"] else "—",
            f"{r['runs']} runs, {r['train_hours']:.2f} h"]


def search_tables(results: Path, suite: str | None = None) -> list[ReportTable]:
    """The report's Search section for one report suite (the studies whose search file says
    ``suite: NAME``; None: those without one); empty if there is none."""
    rows = [study_row(results, n, s) for n, s in committed_studies(results) if s.user_attrs.get("suite") == suite]
    if not rows:
        return []
    header = ["study", "complete/pruned/failed/unfinished", "best trial", "search value", "confirmation (95 % CI)",
              "selection bias", "importances", "pairs with one start", "cost"]
    notes = ["paired study: value = mean paired difference against the reference (the paper's setting unless the "
             "search file says otherwise), val mIoU points, on the same seeds; confirmation = the search's best trial "
             "rerun on fresh seeds no trial used, paired with the reference: its mean and Student-t 95 % interval, "
             "the study's answer; selection bias = search value − confirmation mean; a trial whose pairs did not share "
             "their pre-trained start is valued re-paired with references of its runs' own start where those are "
             "committed; a miou study: value = val mIoU %",
             "unfinished: trials a Ctrl-C or an ended session stopped (a resumed paired search retries each once, "
             "reusing the seeds it finished) or still running",
             f"importances: Optuna's {importance_method()[0]} over the complete trials (the top three)",
             "pairs with one start: the pairs (trials' and confirmation's) whose two runs began from the same "
             "pre-trained checkpoint (provenance.json's init_checkpoint sha256), of those that record one; a "
             "pre-training trained again on another processor gives other bits, and so pairs that do not share it",
             "cost: the distinct runs the study used (trials, references, confirmation) and their training time "
             "(summary.json wall_time_s)"]
    return [ReportTable(0, "Searches", "results/studies", pd.DataFrame(rows), [Block(header, [_rendered(r) for r in rows],
                        align="lrlrrrlrl")], notes, label="Search")]


def search_figures(results: Path, out: Path, suite: str | None = None) -> list[Path]:
    """Per study of ``suite`` (as :func:`search_tables`): optimisation history, slice plot and importances
    (Optuna's matplotlib visualisation) as ``<out>/<study>-history.png``, ``-slice.png``, ``-importances.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    written: list[Path] = []
    for name, study in committed_studies(results):
        if study.user_attrs.get("suite") != suite:
            continue
        if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
            continue
        plots = {"history": lambda s: ovm.plot_optimization_history(s), "slice": lambda s: ovm.plot_slice(s)}
        if importances(study):
            plots["importances"] = lambda s: ovm.plot_param_importances(s, evaluator=importance_method()[1])
        out.mkdir(parents=True, exist_ok=True)
        for kind, plot in plots.items():
            with warnings.catch_warnings():  # Optuna calls its matplotlib plots experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                ax = plot(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).get_figure()
            path = out / f"{name}-{kind}.png"
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
            atomic_write_bytes(path, buf.getvalue())
            plt.close(fig)
            written.append(path)
    return written
