"""Searches: the space, pruning, the trial budget shared by processes, dead workers, PostgreSQL."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).parent))
from experiment_fakes import calls, fake_train  # noqa: E402

from aakit.errors import AakitError  # noqa: E402
from aakit.experiment import grid as G  # noqa: E402
from aakit.experiment import search as S  # noqa: E402
from aakit.experiment import studies  # noqa: E402

BASE = "preset: synthetic\nmodel: {backbone: small, num_classes: 11}\ntrain: {epochs: 3}\n"
SEARCH = """\
name: s
base: base.yaml
params:
  loss.lambda_aa: {type: float, low: 0.01, high: 1.0, log: true}
  loss.lambda_lr: {type: float, low: 0.01, high: 1.0, log: true}
  loss.margin_aa: {type: float, low: 0.5, high: 6.0}
  loss.gamma: {type: float, low: 0.0, high: 5.0}
  loss.dilations: {type: categorical, choices: [[4, 8, 12, 24, 36], [4, 8, 12, 24], [4, 8, 12], [12, 24, 36]]}
sampler: {type: random, seed: 0}
pruner: {type: none}
"""
QUIET = {"progress": False, "log": lambda m: None}


def write_search(tmp_path: Path, text: str = SEARCH) -> Path:
    (tmp_path / "base.yaml").write_text(BASE)
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def study_trials(results: Path, name: str = "s", storage: str | None = None) -> list[optuna.trial.FrozenTrial]:
    st = studies.open_storage(storage, studies.default_storage_path(results, "search", name))
    return optuna.load_study(study_name=f"search-{name}", storage=st).get_trials()


def check_trials_match_runs(results: Path, trials: list[optuna.trial.FrozenTrial]) -> None:
    """Each finished trial has its own run directory, named after its number, holding its value."""
    runs = [t.user_attrs["run"] for t in trials]
    assert len(set(runs)) == len(runs)
    for t in trials:
        assert t.user_attrs["run"].startswith(f"search-s-t{t.number}-")
        run = results / "runs" / t.user_attrs["run"]
        cfg = (run / "config.yaml").read_text()
        assert f"gamma: {t.params['loss.gamma']}" in cfg
        if t.state == TrialState.COMPLETE:
            summary = json.loads((run / "summary.json").read_text())
            assert t.value == pytest.approx(summary["metrics"]["val"]["miou"])


# ----------------------------------------------------------------------------- the space
def test_search_space_and_configs(tmp_path: Path) -> None:
    s = S.load_search(write_search(tmp_path))
    assert s.study_name == "search-s" and [p.key for p in s.params][-1] == "loss.dilations"
    assert s.params[-1].labels() == ["4-8-12-24-36", "4-8-12-24", "4-8-12", "12-24-36"]
    cfg = s.config({"loss.gamma": 0.7, "loss.dilations": [12, 24, 36]}, "x")
    assert cfg.loss.gamma == 0.7 and cfg.loss.dilations == (12, 24, 36) and cfg.name == "x"
    assert S.load_search(tmp_path / "s.yaml", ["train.epochs=1"]).study_name.startswith("search-s-")


@pytest.mark.parametrize(
    "edit, match",
    [
        (("loss.gamma: {type: float, low: 0.0, high: 5.0}", "loss.gama: {type: float, low: 0.0, high: 5.0}"),
         "unknown key loss.gama"),
        (("low: 0.0, high: 5.0", "low: 5.0, high: 1.0"), "low 5.0 should be < high 1.0"),
        (("type: float, low: 0.5", "type: floaty, low: 0.5"), "float, int, categorical"),
        (("name: s", "name: s\nbogus: 1"), "unknown key 'bogus'"),
        (("pruner: {type: none}", "pruner: {type: hyperbandit}"), "pruner.type"),
        (("pruner: {type: none}", "pruner: {type: median, n_warmup: 2}"), "pruner"),
        (("choices: [[4, 8, 12, 24, 36], [4, 8, 12, 24], [4, 8, 12], [12, 24, 36]]", "choices: []"), "non-empty"),
        (("base: base.yaml", "base: nope.yaml"), "config file not found"),
    ],
)
def test_bad_search_files(tmp_path: Path, edit: tuple[str, str], match: str) -> None:
    assert edit[0] in SEARCH
    path = write_search(tmp_path, SEARCH.replace(*edit))
    with pytest.raises(AakitError, match=match) as info:
        S.load_search(path)
    assert "\n" not in str(info.value)


def test_bad_arguments(tmp_path: Path) -> None:
    path = write_search(tmp_path)
    with pytest.raises(S.SearchError, match="--trials"):
        S.run_search(path, trials=0, results=tmp_path / "r", train=fake_train)
    with pytest.raises(studies.StorageError, match="cannot connect|driver"):
        S.run_search(path, trials=1, results=tmp_path / "r", storage="postgresql://x@127.0.0.1:1/db", train=fake_train)
    with pytest.raises(S.SearchError, match="search file not found"):
        S.load_search(tmp_path / "missing.yaml")


# ----------------------------------------------------------------------------- running
def test_search_runs_exactly_the_trials_asked_for_and_resumes(tmp_path: Path) -> None:
    path = write_search(tmp_path)
    results = tmp_path / "results"
    out = S.run_search(path, trials=3, results=results, train=fake_train, **QUIET)
    assert out.ran == [0, 1, 2] and not out.failed
    trials = study_trials(results)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    check_trials_match_runs(results, trials)
    assert all(len(t.intermediate_values) == 3 for t in trials)  # every epoch reported
    best = max(trials, key=lambda t: t.value)
    assert out.best is not None and out.best["number"] == best.number

    again = S.run_search(path, trials=3, results=results, train=fake_train, **QUIET)
    assert again.ran == [] and len(calls(results)) == 3
    more = S.run_search(path, trials=5, results=results, train=fake_train, **QUIET)
    assert more.ran == [3, 4] and len(study_trials(results)) == 5

    best = max(study_trials(results), key=lambda t: t.value)  # trials 3 and 4 drew new points (issue 27)
    (name, df), = S.show_search(path, results=results)
    assert name == "search-s" and list(df["number"])[0] == best.number and len(df) == 5
    assert list(df["value"]) == sorted(df["value"], reverse=True)
    text = S.format_trials(name, df)
    assert f"{100 * best.value:.2f}" in text and "loss.gamma" in text
    assert S.show_search(None, results=results)[0][0] == "search-s"


def test_pruner_stops_runs_on_the_per_epoch_miou(tmp_path: Path) -> None:
    lower = 0.40
    path = write_search(tmp_path, SEARCH.replace("pruner: {type: none}", f"pruner: {{type: threshold, lower: {lower}}}"))
    results = tmp_path / "results"
    S.run_search(path, trials=8, results=results, train=fake_train, **QUIET)
    trials = study_trials(results)
    states = {t.state for t in trials}
    assert states == {TrialState.COMPLETE, TrialState.PRUNED}  # this seed gives both
    for t in trials:
        first = t.intermediate_values[0]
        assert (t.state == TrialState.PRUNED) == (first < lower)
        status = json.loads((results / "runs" / t.user_attrs["run"] / "status.json").read_text())
        assert status["status"] == ("interrupted" if t.state == TrialState.PRUNED else "finished")
        if t.state == TrialState.PRUNED:
            assert len(t.intermediate_values) == 1
    check_trials_match_runs(results, trials)


def _search_process(path: str, results: str, trials: int, barrier: Any) -> None:
    barrier.wait(30)  # both processes start their search at the same moment
    S.run_search(path, trials=trials, results=Path(results), train=fake_train, progress=False, log=lambda m: None)


def test_two_search_processes_share_the_default_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_search(tmp_path)
    results = tmp_path / "results"
    monkeypatch.setenv("AAKIT_FAKE_SLEEP", "0.03")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_search_process, args=(str(path), str(results), 6, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    trials = study_trials(results)
    assert [t.number for t in trials] == list(range(6))  # none lost, none extra
    assert all(t.state == TrialState.COMPLETE for t in trials)
    check_trials_match_runs(results, trials)
    made = calls(results)
    assert len(made) == 6 and len({c[1] for c in made}) == 6  # each trial trained once
    assert len({c[2] for c in made}) == 2  # both processes worked


def test_workers_option_and_a_dead_workers_trial_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_search(tmp_path)
    results = tmp_path / "results"
    # a trial whose worker was killed: RUNNING, on this host, its process gone
    st = studies.open_storage(None, studies.default_storage_path(results, "search", "s"))
    study = studies.get_or_create_study(st, "search-s", direction="maximize")
    t = study.ask()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for k, v in {"host": socket.gethostname(), "pid": dead.pid, "heartbeat": time.time()}.items():
        t.set_user_attr(k, v)
    monkeypatch.setenv("AAKIT_FAKE_SLEEP", "0.03")
    out = S.run_search(path, trials=4, results=results, train=fake_train, workers=2, progress=False)
    trials = study_trials(results)
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["outcome"] == "stale"
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 4 and sorted(out.ran) == [t.number for t in done]
    check_trials_match_runs(results, done)
    assert str(os.getpid()) not in {c[2] for c in calls(results)}  # trained in the worker processes


def test_failed_trials_do_not_count_and_stop_after_three_in_a_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_search(tmp_path)
    results = tmp_path / "results"
    monkeypatch.setenv("AAKIT_FAKE_FAIL", "search-s")
    out = S.run_search(path, trials=5, results=results, train=fake_train, **QUIET)
    assert out.ran == [] and len(out.failed) == 3 and "injected failure" in out.failed[0][1]
    assert all(t.state == TrialState.FAIL for t in study_trials(results))
    out = S.run_search(path, trials=5, results=results, train=fake_train, max_failures=5, **QUIET)
    assert len(out.failed) == 5 and len(study_trials(results)) == 3 + 5


def test_cli_max_failures_below_one_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_cli

    path = write_search(tmp_path)
    code, out, err = run_cli(["search", str(path), "--trials", "2", "--max-failures", "0", "--results",
                              str(tmp_path / "r")], monkeypatch, capsys)
    assert code == 2 and "--max-failures 0: must be >= 1" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- one config, trained once
def trained_hashes(results: Path) -> list[str]:
    return [c[0] for c in calls(results)]


def trial_hash(t: optuna.trial.FrozenTrial) -> str:
    return str(t.user_attrs["run"]).rsplit("-", 1)[-1]


def check_values_match_configs(results: Path, trials: list[optuna.trial.FrozenTrial]) -> None:
    """Each COMPLETE trial's value is that of the finished run of its config."""
    for t in trials:
        if t.state == TrialState.COMPLETE:
            summary = json.loads((results / "runs" / t.user_attrs["run"] / "summary.json").read_text())
            assert summary["hash"] == trial_hash(t) and t.value == pytest.approx(summary["metrics"]["val"]["miou"])


def test_seeded_tpe_searches_in_two_processes_train_each_config_once(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_search(tmp_path, SEARCH.replace("sampler: {type: random, seed: 0}", "sampler: {type: tpe, seed: 0}"))
    results = tmp_path / "results"
    monkeypatch.setenv("AAKIT_FAKE_SLEEP", "0.03")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_search_process, args=(str(path), str(results), 6, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(90)
        assert p.exitcode == 0
    trials = [t for t in study_trials(results) if t.state == TrialState.COMPLETE]
    assert len(trials) == 6
    made = trained_hashes(results)
    assert len(made) == len(set(made)), "a configuration was trained twice"
    assert {trial_hash(t) for t in trials} == set(made)  # each trial has its config's run
    check_values_match_configs(results, trials)


def test_a_resumed_seeded_search_draws_new_points(tmp_path: Path) -> None:
    path = write_search(tmp_path)
    results = tmp_path / "results"
    S.run_search(path, trials=3, results=results, train=fake_train, **QUIET)
    S.run_search(path, trials=5, results=results, train=fake_train, **QUIET)
    trials = study_trials(results)
    assert len({trial_hash(t) for t in trials}) == 5 and len(trained_hashes(results)) == 5


def test_a_config_already_finished_is_reused_not_trained(tmp_path: Path) -> None:
    two = "params:\n  loss.dilations: {type: categorical, choices: [[4, 8, 12], [12, 24, 36]]}\n"
    path = write_search(tmp_path, SEARCH.split("params:")[0] + two + "sampler: {type: random, seed: 0}\n"
                        "pruner: {type: none}\n")
    results = tmp_path / "results"
    said: list[str] = []
    out = S.run_search(path, trials=5, results=results, train=fake_train, progress=False, log=said.append)
    trials = study_trials(results)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5  # reused trials count
    made = trained_hashes(results)
    assert len(made) == len(set(made)) == len({trial_hash(t) for t in trials}) <= 2  # 5 draws of 2 choices
    reused = [t for t in trials if t.user_attrs.get("outcome") == "reused"]
    assert len(reused) == 5 - len(made) and sorted(out.reused) == [t.number for t in reused]
    assert sorted(out.ran + out.reused) == [0, 1, 2, 3, 4]
    for t in reused:
        source = next(u for u in trials if trial_hash(u) == trial_hash(t) and u.user_attrs.get("outcome") != "reused")
        assert t.user_attrs["run"] == source.user_attrs["run"] and t.value == source.value
        assert any(f"trial {t.number}: " in m and "reused" in m for m in said)
    check_values_match_configs(results, trials)


def _leave_running_twin(results: Path, path: Path) -> tuple[Any, str]:
    """Trial 0: RUNNING in this live process with the only config (hash) of the space."""
    search = S.load_search(path)
    cfg = search.config({"train.log_every": 10}, "search-s-t0")
    st = studies.open_storage(None, studies.default_storage_path(results, "search", "s"))
    study = studies.get_or_create_study(st, "search-s", direction="maximize")
    t = study.ask()
    attrs = {"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time(), "session": "other",
             "run": f"search-s-t0-{cfg.hash()}"}
    for k, v in attrs.items():
        t.set_user_attr(k, v)
    return st, cfg


@pytest.mark.parametrize("twin_ends", ["complete", "fail"])
def test_a_config_being_trained_elsewhere_is_waited_for_not_trained_twice(tmp_path: Path, twin_ends: str) -> None:
    import threading

    from experiment_fakes import write_run

    # both choices are one configuration: train.log_every is not in the config hash (a categorical
    # with one choice is refused)
    one = "params:\n  train.log_every: {type: categorical, choices: [10, 20]}\n"
    path = write_search(tmp_path, SEARCH.split("params:")[0] + one + "sampler: {type: random, seed: 0}\n"
                        "pruner: {type: none}\n")
    results = tmp_path / "results"
    st, cfg = _leave_running_twin(results, path)

    def other_process_finishes() -> None:
        time.sleep(1.0)
        if twin_ends == "complete":
            run = write_run(results, cfg, "search-s-t0")
            summary = json.loads((run / "summary.json").read_text())
            studies.finish_trial(st, 0, TrialState.COMPLETE, summary["metrics"]["val"]["miou"])
        else:
            studies.finish_trial(st, 0, TrialState.FAIL, attrs={"outcome": "error"})

    thread = threading.Thread(target=other_process_finishes)
    thread.start()
    out = S.run_search(path, trials=2, results=results, train=fake_train, heartbeat=0.2, **QUIET)
    thread.join()
    trials = study_trials(results)
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if twin_ends == "complete":  # trial 1 waited for trial 0 and took its result
        assert trained_hashes(results) == [] and out.ran == [] and out.reused == [1]
        assert [t.number for t in done] == [0, 1] and done[1].user_attrs["outcome"] == "reused"
        assert done[1].value == done[0].value and done[1].user_attrs["run"] == done[0].user_attrs["run"]
    else:  # trial 0 failed while trial 1 waited: trial 1 trains it, trial 2 reuses that
        assert trained_hashes(results) == [cfg.hash()] and out.ran == [1] and out.reused == [2]
        assert [t.number for t in done] == [1, 2] and done[1].value == done[0].value
    check_values_match_configs(results, done)


# ----------------------------------------------------------------------------- --show, the study named
SHOWN = re.compile(r"(search-s-[0-9a-f]{6}) \((\d+) trials?\): (aakit search [^;]*)")


def shown_studies(err: str) -> dict[str, tuple[int, list[str]]]:
    """The studies an error line lists: name -> (trials, the command's arguments after "aakit")."""
    return {m[1]: (int(m[2]), shlex.split(m[3].strip())[1:]) for m in SHOWN.finditer(err)}


def test_show_without_the_set_of_the_run_lists_the_studies_and_how_to_name_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_cli

    path = write_search(tmp_path)
    results = tmp_path / "results"
    sets = [["train.epochs=1"], ["train.epochs=2", "loss.dilations=[4, 8]"]]
    for n, overrides in enumerate(sets):
        S.run_search(path, trials=2 - n, overrides=overrides, results=results, train=fake_train, **QUIET)
    code, out, err = run_cli(["search", str(path), "--show", "--results", str(results)], monkeypatch, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no study search-s " in err, err
    listed = shown_studies(err)
    assert {name: k for name, (k, _) in listed.items()} == {
        S.load_search(path, sets[0]).study_name: 2, S.load_search(path, sets[1]).study_name: 1}
    for name, (k, argv) in listed.items():  # the exact command shows that study
        code, out, err = run_cli(argv, monkeypatch, capsys)
        assert code == 0 and out.startswith(f"{name} (value") and len(out.strip().splitlines()) == 2 + k, (argv, err)


def test_show_names_the_set_of_a_study_made_before_it_was_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_cli

    path = write_search(tmp_path)
    results = tmp_path / "results"
    name = S.load_search(path, ["train.epochs=1"]).study_name
    st = studies.open_storage(None, studies.default_storage_path(results, "search", "s"))
    study = optuna.create_study(storage=st, study_name=name, direction="maximize")  # no user attributes
    t = study.ask()
    t.set_user_attr("run", "search-s-t0-0123abcd")
    study.tell(t, 0.5)
    run = results / "runs" / "search-s-t0-0123abcd"
    run.mkdir(parents=True)  # what aakit train records: the search's own overrides, then the --set
    (run / "provenance.json").write_text(json.dumps({"overrides": ["train.epochs=3", "loss.gamma=1.0",
                                                                   "train.epochs=1"]}))
    code, out, err = run_cli(["search", str(path), "--show", "--results", str(results)], monkeypatch, capsys)
    assert code == 2 and shown_studies(err)[name][0] == 1, err
    code, out, err = run_cli(shown_studies(err)[name][1], monkeypatch, capsys)
    assert code == 0 and out.startswith(f"{name} (value"), err


# ----------------------------------------------------------------------------- PostgreSQL
# (the postgres_url fixture is in conftest.py)
def test_search_and_grid_on_a_real_postgresql_server(tmp_path: Path, postgres_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_search(tmp_path)
    results = tmp_path / "results"
    monkeypatch.setenv("AAKIT_FAKE_SLEEP", "0.03")
    out = S.run_search(path, trials=4, results=results, storage=postgres_url, train=fake_train,
                       workers=2, progress=False)
    trials = study_trials(results, storage=postgres_url)
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(counted) == 4 and sorted(out.ran) == [t.number for t in counted]
    # Without a lock a trial may exceed the budget in a race: it then ends FAIL as surplus, untrained.
    assert all(t.user_attrs.get("outcome") == "surplus" for t in trials if t not in counted)
    check_trials_match_runs(results, counted)
    assert len(calls(results)) == 4
    assert not (results / "studies").exists()  # nothing went to the default journal file

    (tmp_path / "g.yaml").write_text(
        "name: g\nbase: base.yaml\nseeds: [0, 1]\ntable: 4\nrow: 'gamma={loss.gamma}'\naxes: {loss.gamma: [0, 2]}\n")
    g = G.run_grid(tmp_path / "g.yaml", results=results, storage=postgres_url, train=fake_train, workers=2,
                   progress=False)
    assert len(g.ran) == 4 and g.counts()["done"] == 4
    assert json.loads((results / "grids" / "g" / "grid.json").read_text())["storage"].startswith("postgresql://")
