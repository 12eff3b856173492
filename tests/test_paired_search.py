"""Paired searches (issue 31): the objective, fidelity over seeds, confirmation, reading it."""
from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).parent))
from experiment_fakes import calls, noisy_train  # noqa: E402

from aakit.experiment import paired as P  # noqa: E402
from aakit.experiment import search as S  # noqa: E402
from aakit.experiment import studies  # noqa: E402

BASE = "preset: synthetic\nmodel: {backbone: small, num_classes: 11}\ntrain: {epochs: 2}\n"
SEARCH = """\
name: p
base: base.yaml
objective: paired
seeds: [0, 1, 2]
params:
  loss.lambda_aa: {type: float, low: 0.01, high: 1.0, log: true}
  loss.gamma: {type: float, low: 0.0, high: 5.0}
  loss.dilations: {type: categorical, choices: [[4, 8, 12, 24], [4, 8, 12], [12, 24, 36]]}
sampler: {type: random, seed: 0}
pruner: {type: none}
"""
QUIET = {"progress": False, "log": lambda m: None}


def write_search(tmp_path: Path, text: str = SEARCH) -> Path:
    (tmp_path / "base.yaml").write_text(BASE)
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def load_study(results: Path) -> optuna.Study:
    st = studies.open_storage(None, studies.default_storage_path(results, "search", "p"))
    return optuna.load_study(study_name="search-p", storage=st)


def miou(results: Path, run: str) -> float:
    """A run's val mIoU in points, read from its summary.json."""
    return 100 * json.loads((results / "runs" / run / "summary.json").read_text())["metrics"]["val"]["miou"]


def t_interval(diffs: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % Student-t bounds, computed here (not with aakit's function)."""
    n, mean = len(diffs), sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


# ----------------------------------------------------------------------------- the objective
def test_a_trials_value_is_its_mean_paired_difference_on_the_same_seeds(tmp_path: Path) -> None:
    results = tmp_path / "results"
    S.run_search(write_search(tmp_path), trials=4, results=results, train=noisy_train, **QUIET)
    study = load_study(results)
    assert study.user_attrs["objective"] == "paired" and study.user_attrs["seeds"] == [0, 1, 2]
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    refs = set()
    for t in trials:
        assert t.user_attrs["seeds"] == [0, 1, 2] and len(t.user_attrs["runs"]) == 3
        diffs = [miou(results, a) - miou(results, b) for a, b in zip(t.user_attrs["runs"], t.user_attrs["reference_runs"])]
        assert t.value == pytest.approx(sum(diffs) / 3) and t.user_attrs["diffs"] == pytest.approx(diffs)
        for run, seed in zip(t.user_attrs["runs"], [0, 1, 2]):  # the config on that seed
            cfg = (results / "runs" / run / "config.yaml").read_text()
            assert f"seed: {seed}" in cfg and f"gamma: {t.params['loss.gamma']}" in cfg
        refs |= set(t.user_attrs["reference_runs"])
    assert len(refs) == 3  # one reference run per seed, shared by every trial
    for ref in refs:  # the reference is the paper's setting
        cfg = (results / "runs" / ref / "config.yaml").read_text()
        assert "gamma: 2.0" in cfg and "lambda_aa: 0.1" in cfg and "margin_aa: 3.0" in cfg
    made = [c[0] for c in calls(results)]
    assert len(made) == len(set(made)) == 3 + 4 * 3  # each configuration trained once


def test_a_trial_drawing_the_reference_or_a_trained_config_trains_nothing_new(tmp_path: Path) -> None:
    text = SEARCH.replace("  loss.lambda_aa: {type: float, low: 0.01, high: 1.0, log: true}\n  loss.gamma: "
                          "{type: float, low: 0.0, high: 5.0}\n", "")
    results = tmp_path / "results"
    S.run_search(write_search(tmp_path, text), trials=6, results=results, train=noisy_train, **QUIET)
    trials = load_study(results).get_trials()
    made = [c[0] for c in calls(results)]
    assert len(made) == len(set(made)) <= 3 * 3  # 3 choices (one is the reference) x 3 seeds
    for t in trials:
        if t.params["loss.dilations"] == "4-8-12-24":  # the reference itself: its difference is 0
            assert t.value == 0 and t.user_attrs["runs"] == t.user_attrs["reference_runs"]


def test_a_trial_interrupted_between_seeds_is_retried_with_its_finished_runs_reused(tmp_path: Path) -> None:
    results, path, made = tmp_path / "results", write_search(tmp_path), []

    def interrupted_at_the_4th(cfg: Any, **kw: Any) -> Path:  # ref s0, t0 s0, ref s1, then Ctrl-C
        made.append(cfg.hash())
        if len(made) == 4:
            raise KeyboardInterrupt
        return noisy_train(cfg, **kw)

    with pytest.raises(KeyboardInterrupt):
        S.run_search(path, trials=2, results=results, train=interrupted_at_the_4th, **QUIET)
    first = load_study(results).get_trials()
    assert first[0].state == TrialState.FAIL and first[0].user_attrs["outcome"] == "interrupted"
    assert len(first[0].user_attrs["runs"]) == 1  # seed 0 was done
    from aakit.experiment.searchreport import search_tables
    row = search_tables(results)[0].blocks[0].rows[0]
    assert row[1] == "0/0/0/1"  # complete/pruned/failed/unfinished: the interrupted trial is not "failed"
    S.run_search(path, trials=2, results=results, train=noisy_train, **QUIET)
    trials = load_study(results).get_trials()
    retry = [t for t in trials if t.user_attrs.get("retry_of") == 0]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == first[0].params
    assert retry[0].user_attrs["runs"][0] == first[0].user_attrs["runs"][0]  # seed 0's run reused, by hash
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    trained = [c[0] for c in calls(results)]
    assert len(trained) == len(set(trained))  # nothing trained twice
    S.run_search(path, trials=3, results=results, train=noisy_train, **QUIET)  # retried once, not again
    assert len([t for t in load_study(results).get_trials() if t.user_attrs.get("retry_of") == 0]) == 1


def _paired_process(path: str, results: str, trials: int, barrier: Any) -> None:
    barrier.wait(30)
    S.run_search(path, trials=trials, results=Path(results), train=noisy_train, progress=False, log=lambda m: None)


def test_two_processes_share_the_reference_runs_and_train_each_config_once(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing as mp

    path = write_search(tmp_path)
    results = tmp_path / "results"
    monkeypatch.setenv("AAKIT_FAKE_SLEEP", "0.05")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_paired_process, args=(str(path), str(results), 4, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    trials = load_study(results).get_trials()
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    made = calls(results)
    assert len(made) == len({c[0] for c in made}) == 3 + 4 * 3  # both wanted the references: trained once
    assert len({c[2] for c in made}) == 2


# ----------------------------------------------------------------------------- fidelity
def test_successive_halving_over_seeds_gives_more_seeds_only_to_promising_trials(tmp_path: Path) -> None:
    text = SEARCH.replace("seeds: [0, 1, 2]", "seeds: [0, 1, 2, 3]").replace(
        "pruner: {type: none}", "pruner: {type: successive_halving, min_resource: 1, reduction_factor: 2}")
    results = tmp_path / "results"
    S.run_search(write_search(tmp_path, text), trials=8, results=results, train=noisy_train, **QUIET)
    trials = load_study(results).get_trials()
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and done
    for t in pruned:  # stopped at a rung, with the running paired mean of the seeds it ran
        seeds = t.user_attrs["seeds"]
        assert len(seeds) < 4 and seeds == [0, 1, 2, 3][:len(seeds)]
        assert max(t.intermediate_values) == len(seeds)
        assert t.intermediate_values[len(seeds)] == pytest.approx(sum(t.user_attrs["diffs"]) / len(seeds))
    assert all(t.user_attrs["seeds"] == [0, 1, 2, 3] for t in done)
    trained_seeds = sum(len(t.user_attrs["seeds"]) for t in trials)
    assert trained_seeds < 4 * len(trials)  # fewer runs than every trial on every seed


# ----------------------------------------------------------------------------- confirmation
def test_confirmation_reruns_the_best_trials_on_fresh_seeds_and_its_interval_follows_from_the_runs(
        tmp_path: Path) -> None:
    path, results = write_search(tmp_path), tmp_path / "results"
    S.run_search(path, trials=4, results=results, train=noisy_train, **QUIET)
    out = S.confirm_search(path, k=2, seeds=[10, 11, 12], results=results, train=noisy_train, **QUIET)
    study = load_study(results)
    stored = study.user_attrs["confirmation"]
    assert stored == json.loads(json.dumps(out))
    best = sorted((t for t in study.get_trials() if t.state == TrialState.COMPLETE), key=lambda t: -t.value)
    assert [c["trial"] for c in out["trials"]] == [best[0].number, best[1].number] and out["trial"] == best[0].number
    for c in out["trials"]:
        assert [p["seed"] for p in c["pairs"]] == [10, 11, 12]
        diffs = [miou(results, p["config_run"]) - miou(results, p["reference_run"]) for p in c["pairs"]]
        mean, low, high = t_interval(diffs)
        assert (c["mean_diff"], c["ci_low"], c["ci_high"]) == pytest.approx((mean, low, high))
        t = study.trials[c["trial"]]
        assert c["selection_bias"] == pytest.approx(t.value - mean)
        for p in c["pairs"]:  # the same config as the trial, on the fresh seed
            cfg = (results / "runs" / p["config_run"] / "config.yaml").read_text()
            assert f"seed: {p['seed']}" in cfg and f"gamma: {t.params['loss.gamma']}" in cfg
    assert "selection bias" in P.describe_confirmation(out)


@pytest.mark.parametrize("k, seeds, match", [
    (1, [2, 10], "already used by the search"), (9, [10, 11], "has 2 complete"), (1, [10], "at least 2"),
    (0, [10, 11], "must be >= 1"),
])
def test_confirmation_refuses_used_seeds_and_too_many_trials_before_training(tmp_path: Path, k: int,
                                                                             seeds: list[int], match: str) -> None:
    path, results = write_search(tmp_path), tmp_path / "results"
    S.run_search(path, trials=2, results=results, train=noisy_train, **QUIET)
    before = len(calls(results))
    with pytest.raises(S.SearchError, match=match) as info:
        S.confirm_search(path, k=k, seeds=seeds, results=results, train=noisy_train, **QUIET)
    assert "\n" not in str(info.value) and len(calls(results)) == before


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("edit, match", [
    (("loss.gamma: {type", "loss.gama: {type"), "unknown key loss.gama"),
    (("low: 0.0, high: 5.0", "low: 2.0, high: 2.0"), "empty range"),
    (("[[4, 8, 12, 24], [4, 8, 12], [12, 24, 36]]", "[[4, 8, 12]]"), "one choice"),
    (("objective: paired", "objective: paired\nreference: {loss.gamma: 9.0}"), "reference: loss.gamma = 9 is outside"),
    (("[[4, 8, 12, 24], [4, 8, 12], [12, 24, 36]]", "[[4, 8, 12], [12, 24, 36]]"),
     "reference: loss.dilations = 4-8-12-24 is outside"),
    (("objective: paired", "objective: paired\nreference: {loss.gammma: 2.0}"), "unknown key loss.gammma"),
    (("seeds: [0, 1, 2]", "seeds: [0, 0]"), "repeats a seed"),
    (("objective: paired", "objective: best"), "objective should be miou or paired"),
])
def test_bad_paired_search_files_exit_2_in_one_line_and_train_nothing(
        tmp_path: Path, edit: tuple[str, str], match: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_cli

    assert edit[0] in SEARCH
    path = write_search(tmp_path, SEARCH.replace(*edit))
    code, out, err = run_cli(["search", str(path), "--trials", "1", "--results", str(tmp_path / "r")],
                             monkeypatch, capsys)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- reading it
def test_show_json_gives_trials_seeds_and_the_confirmation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_cli

    path, results = write_search(tmp_path), tmp_path / "results"
    S.run_search(path, trials=3, results=results, train=noisy_train, **QUIET)
    S.confirm_search(path, k=1, seeds=[20, 21], results=results, train=noisy_train, **QUIET)
    code, out, err = run_cli(["search", str(path), "--show", "--format", "json", "--results", str(results)],
                             monkeypatch, capsys)
    assert code == 0, err
    got = json.loads(out)
    assert got["objective"] == "paired" and got["unit"].startswith("val mIoU points")
    assert {t["state"] for t in got["trials"]} == {"COMPLETE"} and all(t["seeds"] == [0, 1, 2] for t in got["trials"])
    conf = got["confirmation"]
    assert [p["seed"] for p in conf["pairs"]] == [20, 21]
    assert {"seed", "config_run", "reference_run"} <= set(conf["pairs"][0])
    diffs = [miou(results, p["config_run"]) - miou(results, p["reference_run"]) for p in conf["pairs"]]
    assert (conf["ci_low"], conf["ci_high"]) == pytest.approx(t_interval(diffs)[1:])
    code, out, err = run_cli(["search", str(path), "--show", "--results", str(results)], monkeypatch, capsys)
    assert code == 0 and "mean paired difference" in out and "confirmation of trial" in out, out + err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dashboard_serves_the_studys_storage_on_a_loopback_port(tmp_path: Path) -> None:
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed (pip install 'aakit[search]')")
    path, results = write_search(tmp_path), tmp_path / "results"
    S.run_search(path, trials=2, results=results, train=noisy_train, **QUIET)
    port = _free_port()
    cmd = [sys.executable, "-m", "aakit.cli", "search", str(path), "--dashboard", "--port", str(port),
           "--results", str(results)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        body, deadline = None, time.time() + 60
        while body is None and time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    body = json.loads(r.read())
            except OSError:
                time.sleep(0.5)
        assert body is not None, proc.stdout.read() if proc.poll() is not None else "no answer"  # type: ignore[union-attr]
        names = [s["study_name"] for s in body["study_summaries"]]
        assert names == ["search-p"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_report_has_a_search_section_with_the_confirmation_importances_cost_and_figures(tmp_path: Path) -> None:
    from aakit.experiment import report as R
    from aakit.experiment.searchreport import search_figures, search_tables

    path, results = write_search(tmp_path), tmp_path / "results"
    S.run_search(path, trials=5, results=results, train=noisy_train, **QUIET)
    conf = S.confirm_search(path, k=1, seeds=[30, 31, 32], results=results, train=noisy_train, **QUIET)
    [table] = search_tables(results)
    row = table.long.iloc[0]
    assert row["study"] == "search-p" and row["complete"] == 5 and row["confirmed_trial"] == conf["trial"]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((conf["ci_low"], conf["ci_high"]))
    assert row["runs"] == len({c[0] for c in calls(results)})  # every run it trained, each once
    assert set(row["importances"]) == {"loss.lambda_aa", "loss.gamma", "loss.dilations"}
    said: list[str] = []
    R.cli_run(table=None, fmt="md", out=None, preset="synthetic", figures=True, results=results, echo=said.append,
              warn=lambda m: None, tables=True)
    text = "\n".join(said)
    assert "**Search.**" in text and f"[{conf['ci_low']:+.2f}, {conf['ci_high']:+.2f}]" in text
    figs = sorted(p.name for p in (results / "figures").glob("search-p-*.png"))
    assert figs == ["search-p-history.png", "search-p-importances.png", "search-p-slice.png"]
    assert len(search_figures(results, tmp_path / "again")) == 3


def test_a_search_files_suite_puts_its_study_on_that_suites_page_only(tmp_path: Path) -> None:
    from aakit.experiment.searchreport import search_figures, search_tables

    results = tmp_path / "results"
    S.run_search(write_search(tmp_path), trials=3, results=results, train=noisy_train, **QUIET)  # no suite:
    other = tmp_path / "o"
    other.mkdir()
    text = SEARCH.replace("name: p\n", "name: q\nsuite: v9\n")
    S.run_search(write_search(other, text), trials=3, results=results, train=noisy_train, **QUIET)
    assert [t.long.iloc[0]["study"] for t in search_tables(results)] == ["search-p"]
    assert [t.long.iloc[0]["study"] for t in search_tables(results, "v9")] == ["search-q"]
    assert search_tables(results, "v1") == []
    assert {p.name.split("-")[1] for p in search_figures(results, tmp_path / "f9", "v9")} == {"q"}
    with pytest.raises(S.SearchError, match=r"suite: should be"):
        S.load_search(write_search(other, SEARCH.replace("name: p\n", "name: p\nsuite: [v9]\n")))


def test_the_tuis_study_view_reads_the_paired_value_and_the_confirmation(tmp_path: Path) -> None:
    from aakit.tui.data import StudyReader
    from aakit.tui.screens.main import study_value

    path, results = write_search(tmp_path), tmp_path / "results"
    S.run_search(path, trials=2, results=results, train=noisy_train, **QUIET)
    [before] = StudyReader(results).read()
    assert before.paired and before.confirmation is None
    conf = S.confirm_search(path, k=1, seeds=[40, 41], results=results, train=noisy_train, **QUIET)
    [st] = StudyReader(results).read()
    assert st.confirmation == (f"confirmed #{conf['trial']}: {conf['mean_diff']:+.2f} [{conf['ci_low']:+.2f}, "
                               f"{conf['ci_high']:+.2f}] pt, 2 seeds")
    best = load_study(results).best_trial
    assert st.best_number == best.number and study_value(st, best.value) == f"{best.value:+.2f} pt"


@pytest.mark.parametrize("argv, match", [
    (["--confirm", "1", "--confirm-seeds", "1,50"], "already used by the search"),
    (["--confirm", "1", "--confirm-seeds", "x,y"], "--confirm-seeds 'x,y'"),
    (["--show", "--format", "yaml"], "--format 'yaml'"),
])
def test_bad_confirm_and_show_arguments_exit_2_in_one_line(tmp_path: Path, argv: list[str], match: str,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_cli

    path, results = write_search(tmp_path), tmp_path / "results"
    S.run_search(path, trials=1, results=results, train=noisy_train, **QUIET)
    before = sorted(p.name for p in (results / "runs").iterdir())
    code, out, err = run_cli(["search", str(path), *argv, "--results", str(results)], monkeypatch, capsys)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in (results / "runs").iterdir()) == before  # nothing trained


# ----------------------------------------------------------------------------- pairs that share their start
def _train_from(start: Any, shift: float = 0.0):
    """:func:`noisy_train` whose run records the pre-trained checkpoint it began from, as
    aakit's provenance.json does: ``start(name)`` gives its sha256; ``shift`` is added to its
    val mIoU (another start gives other numbers)."""
    def train(cfg: Any, **kw: Any) -> Path:
        run = noisy_train(cfg, **kw)
        (run / "provenance.json").write_text(json.dumps(
            {"init_checkpoint": {"run": "cls", "file": "last.pt", "sha256": start(run.name)}}))
        summary = json.loads((run / "summary.json").read_text())
        summary["metrics"]["val"]["miou"] += shift
        (run / "summary.json").write_text(json.dumps(summary))
        return run
    return train


def test_each_machine_pairs_with_a_reference_trained_from_its_own_start(tmp_path: Path) -> None:
    """A pre-training trained again on another processor has other bits. A trial run there is
    paired with a reference that began from the same checkpoint: trained once on that machine
    (named after its start) and shared by its later trials; the first machine's is not reused."""
    path, results, said = write_search(tmp_path), tmp_path / "results", []
    here = {"sha": "a" * 64}
    S.run_search(path, trials=2, results=results, train=_train_from(lambda name: here["sha"]), **QUIET)
    here["sha"] = "b" * 64  # the next session's machine
    S.run_search(path, trials=4, results=results, train=_train_from(lambda name: here["sha"]), progress=False,
                 log=said.append)
    study = load_study(results)
    for t in study.trials:
        assert P.pair_starts(results, t.user_attrs["runs"], t.user_attrs["reference_runs"]) == [True] * 3
    old, new = study.trials[0].user_attrs["reference_runs"], study.trials[2].user_attrs["reference_runs"]
    assert study.trials[1].user_attrs["reference_runs"] == old and study.trials[3].user_attrs["reference_runs"] == new
    assert not set(old) & set(new) and all(r.startswith(f"search-p-ref-s{s}-bbbbbbbb-") for r, s in zip(new, [0, 1, 2]))
    assert sum(line.startswith("training search-p-ref-") for line in said) == 3  # once per seed, on the new machine
    for t in study.trials:  # each value is the mean of its own pairs, read back from the runs' summaries
        diffs = [miou(results, a) - miou(results, b)
                 for a, b in zip(t.user_attrs["runs"], t.user_attrs["reference_runs"])]
        assert t.value == pytest.approx(sum(diffs) / 3)
    assert not any("does not share its start" in line for line in said)
    assert study.user_attrs["metric"] == "val"  # what a re-paired value is read in (study_metric)


def test_pairs_whose_runs_began_from_other_pre_trained_checkpoints_are_said_and_counted(tmp_path: Path) -> None:
    """Where a pair cannot share its start (a reference trained here that still began elsewhere,
    as when a config run is reused from another machine), aakit says it when the pair forms and
    counts it in --show, the json, the report and the confirmation."""
    from aakit.experiment.searchreport import search_tables

    path, results, said = write_search(tmp_path), tmp_path / "results", []
    S.run_search(path, trials=2, results=results, train=_train_from(lambda name: "a" * 64), **QUIET)
    elsewhere = _train_from(lambda name: ("c" if "-ref-" in name else "d") * 64)
    S.run_search(path, trials=3, results=results, train=elsewhere, progress=False, log=said.append)
    study = load_study(results)
    first, last = study.trials[0], study.trials[2]
    assert P.pair_starts(results, first.user_attrs["runs"], first.user_attrs["reference_runs"]) == [True] * 3
    assert P.pair_starts(results, last.user_attrs["runs"], last.user_attrs["reference_runs"]) == [False] * 3
    assert sum("does not share its start" in line and "cccccccccccccccc" in line for line in said) == 3
    rows = {r["number"]: r for r in S.show_json(path, results=results)["trials"]}
    assert rows[0]["same_start"] == [True] * 3 and rows[2]["same_start"] == [False] * 3
    (name, df), = S.show_search(path, results=results)
    assert dict(zip(df["number"], df["start"])) == {0: "same", 1: "same", 2: "differs 3/3"}
    (table,) = search_tables(results)
    assert table.long.iloc[0][["pairs_shared", "pairs_known"]].tolist() == [6, 9]
    assert "6/9" in table.blocks[0].rows[0]
    # a confirmation whose references began elsewhere than its configs: each pair is counted
    out = S.confirm_search(path, k=1, seeds=[10, 11], results=results, progress=False, log=lambda m: None,
                           train=_train_from(lambda name: ("c" if "-ref-" in name else "d") * 64))
    assert [p["same_start"] for p in out["pairs"]] == [False, False] and out["start_mismatches"] == 2
    assert "2 of 2 pairs did not share their pre-trained start" in P.describe_confirmation(out)
    from aakit.tui.data import StudyReader
    [st] = StudyReader(results).read()
    assert st.confirmation is not None and st.confirmation.endswith("pt, 2 seeds, 2 across two starts")
    # once references of the config runs' own start exist here, such a trial is re-paired with them
    (_, df), = S.show_search(path, results=results)
    assert df.set_index("number")["one start"].tolist() == [""] * 3  # none yet
    fourth = S.run_search(path, trials=4, results=results, train=_train_from(lambda name: "d" * 64, shift=0.01),
                          **QUIET)
    repaired = P.one_start_pairs(results, last.user_attrs["runs"], last.user_attrs["reference_runs"])
    assert all(r is not None and "-dddddddd-" in r for r in repaired)
    assert [P.start_of(results / "runs" / r) for r in last.user_attrs["reference_runs"]] == ["c" * 16] * 3  # kept
    want = sum(miou(results, a) - miou(results, str(b)) for a, b in zip(last.user_attrs["runs"], repaired)) / 3
    assert want == pytest.approx(last.value - 1.0)  # its references from start d are 1 point higher
    (_, df), = S.show_search(path, results=results)
    cells = dict(zip(df["number"], df["one start"]))
    assert cells[2] == f"{want:+.2f}" and cells[0] == cells[3] == ""
    rows = {r["number"]: r for r in S.show_json(path, results=results)["trials"]}
    assert rows[2]["value_one_start"] == pytest.approx(want) and rows[2]["one_start_reference_runs"] == repaired
    assert rows[0]["value_one_start"] == pytest.approx(rows[0]["value"])
    # the confirmation ranks trials by that value: trial 2 by its re-paired one, the others by theirs
    study = load_study(results)
    ranked = {t.number: P.ranking_value(t, results) for t in study.trials}
    assert ranked[2] == pytest.approx(want) and all(ranked[n] == study.trials[n].value for n in (0, 1, 3))
    chosen = P.check_confirm(S.load_search(path), study.trials, 4, [50, 51], results)
    assert [t.number for t in chosen] == sorted(ranked, key=lambda n: -ranked[n])
    # --show, the search's last line and the report name the trials in that one order
    (_, df), = S.show_search(path, results=results)
    assert list(df["number"]) == [t.number for t in chosen]
    assert fourth.best is not None and fourth.best["number"] == chosen[0].number
    assert fourth.best["ranked"] == pytest.approx(ranked[chosen[0].number])
    [st] = StudyReader(results).read()  # the TUI's study view
    assert st.best_number == chosen[0].number and st.best_values == pytest.approx((ranked[chosen[0].number],))
    assert search_tables(results)[0].blocks[0].rows[0][2].startswith(f"t{chosen[0].number}:")
    assert P.start_of(tmp_path) is None and P.same_start(None, "x") is None  # no record: unknown, not a mismatch
