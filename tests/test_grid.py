"""Grids: expansion, bad input, resumability, crashed workers, several workers on one storage."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import FrozenTrial, TrialState

sys.path.insert(0, str(Path(__file__).parent))
from experiment_fakes import calls, fake_train  # noqa: E402

from aakit.errors import AakitError  # noqa: E402
from aakit.experiment import grid as G  # noqa: E402
from aakit.experiment import studies  # noqa: E402

BASE = "preset: synthetic\nmodel: {backbone: small, num_classes: 11}\ntrain: {epochs: 2}\n"
TABLE1 = """\
name: t1
base: base.yaml
seeds: [0, 1]
rows:
  - {table: 1, row: CLS+CE, set: {loss.affinity: none, loss.label_reassign: false}}
  - {table: 1, row: CLS+CE+AA, set: {loss.affinity: aa, loss.label_reassign: false}}
  - {table: 1, row: CLS+CE+AA+LR, set: {}}
  - {table: 1, row: CLS+CE+AA+LR+rfpc, set: {}, metric: val_rfpc}
"""


def write_grid(tmp_path: Path, text: str = TABLE1, name: str = "grid.yaml") -> Path:
    (tmp_path / "base.yaml").write_text(BASE)
    path = tmp_path / name
    path.write_text(text)
    return path


def trials_of(results: Path, name: str) -> list[FrozenTrial]:
    storage = studies.open_storage(None, studies.default_storage_path(results, "grid", name))
    return optuna.load_study(study_name=f"grid-{name}", storage=storage).get_trials()


# ----------------------------------------------------------------------------- expansion
def test_rows_expand_to_points_with_hashes(tmp_path: Path) -> None:
    grid = G.load_grid(write_grid(tmp_path))
    assert grid.name == "t1" and grid.preset == "synthetic"
    assert len(grid.points) == 8
    p = grid.points[0]
    assert (p.id, p.table, p.row, p.seed, p.metric) == ("t1-CLS+CE-s0", 1, "CLS+CE", 0, "val")
    assert p.config.loss.affinity == "none" and p.config.train.seed == 0
    assert p.params == {"loss.affinity": "none", "loss.label_reassign": False}
    # +AA+LR and its rfpc row are the same training: one unit of work per seed.
    full = [q for q in grid.points if q.row.startswith("CLS+CE+AA+LR")]
    assert len({q.hash for q in full}) == 2
    assert len(grid.units()) == 6
    assert grid.points[-1].metric == "val_rfpc"


def test_axes_cross_with_row_template_and_cli_overrides(tmp_path: Path) -> None:
    text = ("base: base.yaml\nseeds: [3]\ntable: 4\nrow: 'g={loss.gamma} d={loss.dilations}'\n"
            "axes: {loss.gamma: [0, 0.5, 2.0], loss.dilations: [[4, 8], [12, 24, 36]]}\n")
    grid = G.load_grid(write_grid(tmp_path, text, "t4.yaml"), overrides=["train.epochs=1"])
    assert grid.name == "t4"
    assert [p.row for p in grid.points] == [
        "g=0 d=4-8", "g=0 d=12-24-36", "g=0.5 d=4-8", "g=0.5 d=12-24-36", "g=2 d=4-8", "g=2 d=12-24-36"]
    assert all(p.config.train.epochs == 1 and p.config.train.seed == 3 for p in grid.points)
    assert grid.points[1].config.loss.dilations == (12, 24, 36)
    assert grid.points[2].params == {"loss.gamma": 0.5, "loss.dilations": [4, 8]}
    # the command line's --set comes last and changes the identity of every point
    assert G.load_grid(tmp_path / "t4.yaml").points[0].hash != grid.points[0].hash


def test_order_seeds_hands_out_every_row_of_a_seed_first(tmp_path: Path) -> None:
    rows = G.load_grid(write_grid(tmp_path))
    seeds = G.load_grid(write_grid(tmp_path, TABLE1.replace("rows:", "order: seeds\nrows:"), "by_seed.yaml"))
    assert [p.seed for p in rows.points] == [0, 1] * 4
    assert [p.seed for p in seeds.points] == [0] * 4 + [1] * 4
    assert [p.row for p in seeds.points[:4]] == [p.row for p in rows.points[::2]]
    assert sorted(p.hash for p in seeds.points) == sorted(p.hash for p in rows.points)  # same work
    assert [u.seed for u in seeds.units()] == [0, 0, 0, 1, 1, 1]



def test_a_row_may_run_more_seeds_than_the_grid_and_keeps_its_hashes(tmp_path: Path) -> None:
    """rows[i].seeds: one comparison gets more seeds (a wide interval) without the others; the
    points the grid already had keep their hashes, so their runs still count."""
    before = G.load_grid(write_grid(tmp_path))
    text = TABLE1.replace("rows:", "order: seeds\nrows:").replace(
        "row: CLS+CE, set:", "row: CLS+CE, seeds: [0, 1, 2, 3], set:").replace(
        "row: CLS+CE+AA, set:", "row: CLS+CE+AA, seeds: [3, 0, 1, 2], set:")
    more = G.load_grid(write_grid(tmp_path, text, "more.yaml"))
    seeds = Counter(p.row for p in more.points)
    assert seeds == {"CLS+CE": 4, "CLS+CE+AA": 4, "CLS+CE+AA+LR": 2, "CLS+CE+AA+LR+rfpc": 2}
    assert {p.id: p.hash for p in before.points} == {p.id: p.hash for p in more.points if p.seed in (0, 1)}
    # order: seeds runs every row's seed 0, then 1, then the extra seeds in the order first listed
    assert [p.seed for p in more.points] == [0] * 4 + [1] * 4 + [2, 2, 3, 3]


@pytest.mark.parametrize("seeds", ["[]", "[1, 1]", "[a]", "3"])
def test_a_bad_row_seeds_list_names_the_row(tmp_path: Path, seeds: str) -> None:
    text = TABLE1.replace("row: CLS+CE, set:", f"row: CLS+CE, seeds: {seeds}, set:")
    with pytest.raises(G.GridError, match=r"rows\[0\]\.seeds: "):
        G.load_grid(write_grid(tmp_path, text))


def test_duplicate_row_label_is_refused(tmp_path: Path) -> None:
    text = ("base: base.yaml\ntable: 4\nrow: 'gamma={loss.gamma}'\n"
            "axes: {loss.gamma: [1], loss.dilations: [[4, 8], [12, 24]]}\n")
    with pytest.raises(G.GridError, match="appears twice"):
        G.load_grid(write_grid(tmp_path, text))


@pytest.mark.parametrize(
    "text, match",
    [
        ("base: base.yaml\nrows: []\n", "no points"),
        ("base: base.yaml\ntable: 2\naxes: {loss.gamma: []}\n", "no points"),
        ("base: base.yaml\nrows: [{table: 1, row: a, set: {loss.nope: 1}}]\n", "unknown key loss.nope"),
        ("base: base.yaml\nbogus: 1\nrows: [{table: 1, row: a}]\n", "unknown key 'bogus'"),
        ("base: base.yaml\nrows: [{table: 1, row: a, sett: {}}]\n", "unknown key 'sett'"),
        ("base: missing.yaml\nrows: [{table: 1, row: a}]\n", "config file not found"),
        ("base: base.yaml\nseeds: []\nrows: [{table: 1, row: a}]\n", "seeds"),
        ("base: base.yaml\nrows: [{table: 9, row: a}]\n", "table should be 1..6"),
        ("base: base.yaml\nrows: [{table: 1, row: a, set: {loss.gamma: -1}}]\n", "loss.gamma"),
        ("base: base.yaml\nrows: [{table: 1}]\naxes: {loss.gamma: [1]}\n", "exactly one of"),
        ("base: base.yaml\nrows: [{table: 1, row: a\n", "YAML syntax error"),
        ("base: base.yaml\norder: random\nrows: [{table: 1, row: a}]\n", "order: should be one of rows, seeds"),
    ],
)
def test_bad_grid_files_raise_one_line_errors(tmp_path: Path, text: str, match: str) -> None:
    path = write_grid(tmp_path, text)
    with pytest.raises(AakitError, match=match) as info:
        G.load_grid(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_missing_grid_file(tmp_path: Path) -> None:
    with pytest.raises(G.GridError, match="grid file not found"):
        G.run_grid(tmp_path / "nope.yaml", results=tmp_path / "results", train=fake_train)


def test_unreachable_storage_is_a_one_line_error(tmp_path: Path) -> None:
    path = write_grid(tmp_path)
    with pytest.raises(studies.StorageError) as info:
        G.run_grid(path, results=tmp_path / "r", storage="postgresql://nobody@127.0.0.1:1/none",
                   train=fake_train)
    assert "\n" not in str(info.value) and "127.0.0.1" in str(info.value)
    with pytest.raises(studies.StorageError, match="not a database URL"):
        studies.open_storage("nonsense", tmp_path / "x.log")
    assert not (tmp_path / "r").exists()  # nothing written


# ----------------------------------------------------------------------------- running
def test_grid_runs_every_unit_once_and_second_invocation_runs_nothing(tmp_path: Path) -> None:
    path = write_grid(tmp_path)
    results = tmp_path / "results"
    out = G.run_grid(path, results=results, train=fake_train, progress=False, log=lambda m: None)
    grid = G.load_grid(path)
    assert len(out.ran) == 6 and not out.failed
    assert Counter(c[0] for c in calls(results)) == Counter(u.hash for u in grid.units())
    assert out.counts() == {"done": 8, "running": 0, "missing": 0, "failed": 0}

    state = json.loads((results / "grids" / "t1" / "grid.json").read_text())
    assert state["name"] == "t1" and state["file"] == str(path)
    assert [p["id"] for p in state["points"]] == [p.id for p in grid.points]
    for p, q in zip(state["points"], grid.points):
        assert set(p) >= {"id", "table", "row", "params", "seed", "hash", "run", "state"}
        assert p["hash"] == q.hash and p["state"] == "done"
        assert p["run"] == f"{q.run_name}-{q.hash}" or p["run"].endswith(q.hash)
        assert (results / "runs" / p["run"] / "summary.json").exists()
    # the study holds one COMPLETE trial per unit, valued with the point's metric
    done = [t for t in trials_of(results, "t1") if t.state == TrialState.COMPLETE]
    assert len(done) == 6
    rfpc_unit = next(u for u in grid.units() if u.row == "CLS+CE+AA+LR")
    t = next(t for t in done if t.user_attrs["point"] == rfpc_unit.hash and t.user_attrs["seed"] == 0)
    summary = json.loads((results / "runs" / t.user_attrs["run"] / "summary.json").read_text())
    assert t.value == pytest.approx(summary["metrics"]["val"]["miou"])
    assert t.intermediate_values  # per-epoch mIoU reported to the trial

    again = G.run_grid(path, results=results, train=fake_train, progress=False, log=lambda m: None)
    assert again.ran == [] and len(calls(results)) == 6
    # a finished run made outside the grid (same config hash) is never redone either
    out2 = G.run_grid(path, results=results, overrides=["train.epochs=2"], train=fake_train,
                      progress=False, log=lambda m: None)
    assert out2.ran == []


def test_dry_run_and_status_leave_the_journal_untouched(tmp_path: Path) -> None:
    """Looking at a grid (committed journals under results/studies/) must not change a byte."""
    path = write_grid(tmp_path)
    results = tmp_path / "results"
    G.run_grid(path, results=results, train=fake_train, progress=False, log=lambda m: None)
    journal = studies.default_storage_path(results, "grid", "t1")
    before = journal.read_bytes()
    lines: list[str] = []
    assert G.cli_run(path, overrides=[], workers=1, gpus=None, storage=None, results=results,
                     dry_run=True, echo=lines.append) is None
    assert "done" in lines[0]
    state = G.state_path(results, "t1")
    state_before = state.read_bytes()
    G.grid_status(path, results=results)
    assert journal.read_bytes() == before
    assert state.read_bytes() == state_before  # nothing changed but the time: grid.json left as it is


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def leave_claim(results: Path, name: str, unit: G.GridPoint, **attrs: object) -> None:
    """A RUNNING trial as a worker killed midway leaves it."""
    storage = studies.open_storage(None, studies.default_storage_path(results, "grid", name))
    study = studies.get_or_create_study(storage, f"grid-{name}", direction="maximize")
    sid = storage.get_study_id_from_name(study.study_name)
    ua = {"point": unit.hash, "host": socket.gethostname(), "pid": 1, "heartbeat": time.time(),
          "session": "old", **attrs}
    storage.create_new_trial(sid, FrozenTrial(
        number=0, state=TrialState.RUNNING, value=None, datetime_start=studies.utc_now(),
        datetime_complete=None, params={}, distributions={}, user_attrs=ua, system_attrs={},
        intermediate_values={}, trial_id=0))


def test_point_of_a_killed_worker_is_picked_up_by_the_next_invocation(tmp_path: Path) -> None:
    path = write_grid(tmp_path)
    results = tmp_path / "results"
    grid = G.load_grid(path)
    units = grid.units()
    # unit 0: its worker died on this host (pid gone) midway, after a checkpoint
    leave_claim(results, "t1", units[0], pid=dead_pid())
    partial = results / "runs" / f"{units[0].run_name}-{units[0].hash}"
    (partial / "checkpoints").mkdir(parents=True)
    (partial / "checkpoints" / "last.pt").write_bytes(b"x")
    (partial / "config.yaml").write_text("{}\n")
    (partial / "status.json").write_text(json.dumps({"status": "running", "pid": dead_pid()}))
    # unit 1: a worker on another machine that stopped sending heartbeats long ago
    leave_claim(results, "t1", units[1], host="elsewhere", pid=12345, heartbeat=time.time() - 3600)
    # unit 2: a worker on another machine that is alive (fresh heartbeat): must be left alone
    leave_claim(results, "t1", units[2], host="elsewhere", pid=12345, heartbeat=time.time())

    out = G.run_grid(path, results=results, train=fake_train, progress=False, grace=60, log=lambda m: None)
    hashes = [c[0] for c in calls(results)]
    assert sorted(hashes) == sorted(u.hash for u in units if u is not units[2])
    assert [c[3] for c in calls(results) if c[0] == units[0].hash] == ["resume"]
    states = {p["hash"]: p["state"] for p in out.points}
    assert states[units[2].hash] == "running"
    assert sum(s == "done" for s in states.values()) == len(units) - 1
    stale = [t for t in trials_of(results, "t1") if t.user_attrs.get("outcome") == "stale"]
    assert {t.user_attrs["point"] for t in stale} == {units[0].hash, units[1].hash}


def test_failed_point_is_retried_by_the_next_invocation_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_grid(tmp_path)
    results = tmp_path / "results"
    monkeypatch.setenv("AAKIT_FAKE_FAIL", "CLS+CE-s1")
    out = G.run_grid(path, results=results, train=fake_train, progress=False, log=lambda m: None)
    assert [f[0] for f in out.failed] == ["t1-CLS+CE-s1"] and "injected failure" in out.failed[0][1]
    assert out.counts()["failed"] == 1 and out.counts()["done"] == 7
    assert len(calls(results)) == 6  # tried once, not looped on
    monkeypatch.delenv("AAKIT_FAKE_FAIL")
    out = G.run_grid(path, results=results, train=fake_train, progress=False, log=lambda m: None)
    assert len(out.ran) == 1 and out.counts()["done"] == 8


def test_a_worker_stops_after_max_failures_in_a_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken machine (here every point raises) fails 3 points, then its worker stops and the
    rest stay missing; a success in between resets the count."""
    path = write_grid(tmp_path)
    results = tmp_path / "results"
    said: list[str] = []
    monkeypatch.setenv("AAKIT_FAKE_FAIL", "CLS+CE")  # every run name holds it
    out = G.run_grid(path, results=results, train=fake_train, progress=False, log=said.append)
    assert len(calls(results)) == 3 and len(out.failed) == 3
    assert out.counts()["failed"] == 3 and out.counts()["missing"] == 5  # the rfpc row shares its unit
    assert any(m.startswith("stopping this worker: 3 points in a row failed") for m in said)
    out = G.run_grid(path, results=results, train=fake_train, progress=False, log=lambda m: None, max_failures=100)
    assert len(calls(results)) == 3 + 6 and out.counts()["failed"] == 8
    monkeypatch.setenv("AAKIT_FAKE_FAIL", "-s1")  # fail, succeed, fail, ...: never 3 in a row
    out = G.run_grid(path, results=results, train=fake_train, progress=False, log=lambda m: None, max_failures=2)
    assert out.counts()["done"] == 4 and out.counts()["failed"] == 4 and len(out.failed) == 3
    with pytest.raises(G.GridError, match="--max-failures 0: must be >= 1"):
        G.run_grid(path, results=results, train=fake_train, progress=False, max_failures=0)


def test_cli_grid_max_failures_below_one_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_cli

    code, out, err = run_cli(["grid", str(write_grid(tmp_path)), "--max-failures", "0", "--results",
                              str(tmp_path / "r")], monkeypatch, capsys)
    assert code == 2 and "--max-failures 0: must be >= 1" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def _grid_process(path: str, results: str, barrier: Any) -> None:
    barrier.wait(30)  # both processes start their grid at the same moment
    G.run_grid(path, results=Path(results), train=fake_train, progress=False, log=lambda m: None)


def test_two_processes_on_one_storage_run_each_point_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like two machines started on the same grid (here: two processes, one journal file)."""
    text = TABLE1.replace("seeds: [0, 1]", "seeds: [0, 1, 2]")
    path = write_grid(tmp_path, text)
    results = tmp_path / "results"
    monkeypatch.setenv("AAKIT_FAKE_SLEEP", "0.05")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_grid_process, args=(str(path), str(results), barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    units = G.load_grid(path).units()
    seen = Counter(c[0] for c in calls(results))
    assert seen == Counter(u.hash for u in units)  # every unit exactly once
    assert len({c[2] for c in calls(results)}) == 2  # and both processes took a share
    points = G.grid_status(path, results=results)
    assert all(p["state"] == "done" for p in points)


def test_workers_option_runs_points_in_parallel_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_grid(tmp_path)
    results = tmp_path / "results"
    monkeypatch.setenv("AAKIT_FAKE_SLEEP", "0.05")
    out = G.run_grid(path, results=results, train=fake_train, workers=2, progress=False)
    assert Counter(c[0] for c in calls(results)) == Counter(u.hash for u in G.load_grid(path).units())
    assert len(out.ran) == 6 and out.counts()["done"] == 8
    assert str(os.getpid()) not in {c[2] for c in calls(results)}  # trained in the worker processes


def test_worker_env_pins_gpus_or_cpu() -> None:
    from aakit.experiment.workers import WorkerError, parse_gpus, worker_env

    assert parse_gpus("0,1") == ["0", "1"] and parse_gpus(None) is None
    assert worker_env(1, 2, ["0", "1"])["CUDA_VISIBLE_DEVICES"] == "1"
    assert worker_env(2, 3, ["0", "1"])["CUDA_VISIBLE_DEVICES"] == "0"
    assert worker_env(0, 2, None)["CUDA_VISIBLE_DEVICES"] == ""
    assert "CUDA_VISIBLE_DEVICES" not in worker_env(0, 1, None)
    with pytest.raises(WorkerError, match="--gpus"):
        parse_gpus("a,b")


def test_shipped_grid_files_expand() -> None:
    root = Path(__file__).resolve().parents[1] / "experiments" / "grids"
    files = sorted(root.glob("table*.yaml")) + sorted((root / "voc").glob("table*.yaml"))
    assert len(files) == 8
    missing = [f for f in files if not (f.parent / yaml.safe_load(f.read_text())["base"]).exists()]
    if missing:
        pytest.skip(f"base configs not written yet for {[str(f.name) for f in missing]}")
    names = set()
    for f in files:
        grid = G.load_grid(f)
        names.add(grid.name)
        assert grid.preset == ("voc" if f.parent.name == "voc" else "synthetic")
        assert {p.table for p in grid.points} & {1, 2, 3, 4}
    assert len(names) == 8  # grid.json files never collide


def test_cli_grid_with_failed_points_exits_non_zero_and_names_them(
    tmp_path: Path, tiny_synth: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: a grid whose points fail must not exit 0 (the real engine; the start weights
    of one point do not exist, so it fails before training)."""
    from conftest import REPO, tiny_overrides

    from aakit import cli

    sets = {k: v for k, v in tiny_overrides(tiny_synth).items() if k != "model.pretrained"}
    spec = {"name": "failing", "base": str(REPO / "experiments/synthetic/baseline.yaml"), "seeds": [0],
            "table": 1, "set": sets | {"train.epochs": 1, "train.cls_warmup_epochs": 0},
            "rows": [{"row": "bad", "set": {"model.pretrained": str(tmp_path / "no-such-weights.pth")}}]}
    grid = tmp_path / "g.yaml"
    grid.write_text(yaml.safe_dump(spec))
    monkeypatch.setattr(sys, "argv", ["aakit", "grid", str(grid), "--results", str(tmp_path / "r")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    out, err = capsys.readouterr()
    assert e.value.code == 1, (out, err)
    assert "failed t1-bad-s0" in out and "no-such-weights.pth" in out


def test_status_writes_grid_json_without_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """aakit grid FILE --status records the points, their hashes and states in grid.json and
    trains nothing; with --dry-run as well it is refused in one line, exit 2, nothing written."""
    from conftest import run_cli

    path = write_grid(tmp_path)
    results = tmp_path / "results"
    code, _, err = run_cli(["grid", str(path), "--status", "--dry-run", "--results", str(results)], monkeypatch, capsys)
    assert code == 2 and "give one of them" in err and len(err.strip().splitlines()) == 1
    assert not (results / "grids").exists()
    code, out, _ = run_cli(["grid", str(path), "--status", "--results", str(results)], monkeypatch, capsys)
    state = json.loads((results / "grids" / "t1" / "grid.json").read_text())
    grid = G.load_grid(path)
    assert code == 0 and "wrote" in out and calls(results) == []
    assert [p["hash"] for p in state["points"]] == [p.hash for p in grid.points]
    assert {p["state"] for p in state["points"]} == {"missing"}
    G.run_grid(path, results=results, train=fake_train, progress=False, log=lambda m: None)
    n = len(calls(results))
    run_cli(["grid", str(path), "--status", "--results", str(results)], monkeypatch, capsys)
    state = json.loads((results / "grids" / "t1" / "grid.json").read_text())
    assert {p["state"] for p in state["points"]} == {"done"} and len(calls(results)) == n
