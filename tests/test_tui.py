"""The TUI: its data layer without Textual, then the app driven by Textual's pilot.

Run directories are written by hand (config.yaml, status.json, metrics.jsonl) in the format of
``aakit.runs``. App tests use ``asyncio.run`` in plain test functions; their waits are bounds
on polling loops, never timing assertions.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

import pytest

from aakit.config import load_config, save_config
from aakit.tui import data as tui_data
from aakit.tui.data import (
    ResultsDirError,
    ResultsModel,
    RunTracker,
    config_diff,
    downsample,
    estimate_eta,
    filter_rows,
    fmt_duration,
    read_grids,
    read_system_load,
    sort_rows,
)

HOST = socket.gethostname()


# ----------------------------------------------------------------------------- fixtures
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def step_line(s: int, total: int = 100, epochs: int = 4, t0: float | None = None, lr_key: str = "learning_rate") -> str:
    """A step record as the engine writes it (``lr_key="lr"``: as it wrote it before issue 29)."""
    t0 = time.time() - 1000 if t0 is None else t0
    rec = {
        "kind": "step", "epoch": 1 + (s - 1) * epochs // total, "epochs": epochs, "step": s,
        "steps_total": total,
        "losses": {"cls": 1.0 / s, "ce": 0.5 + 0.1 / s, "aa": 0.2, "lr": 0.05, "total": 1.5 / s},
        lr_key: 1e-4 * (1 - s / total) ** 0.9, "images_per_s": 10.0, "time": t0 + s,
    }
    return json.dumps(rec) + "\n"


def epoch_line(e: int, miou: float, pseudo: float, epochs: int = 4) -> str:
    rec = {"kind": "epoch", "epoch": e, "epochs": epochs, "miou": miou, "pseudo_miou": pseudo,
           "time": time.time()}
    return json.dumps(rec) + "\n"


def make_run(
    root: Path,
    name: str,
    status: str = "running",
    pid: int | None = None,
    steps: int = 10,
    epochs_done: int = 0,
    broken: bool = False,
    overrides: list[str] | None = None,
) -> Path:
    """A run directory under ``root/runs`` with ``steps`` step lines."""
    d = root / "runs" / name
    d.mkdir(parents=True)
    save_config(load_config(None, overrides=[f"name={name}", *(overrides or [])]), d / "config.yaml")
    info = {"status": status, "pid": pid if pid is not None else os.getpid(), "host": HOST,
            "started": time.time() - 100, "updated": time.time()}
    (d / "status.json").write_text(json.dumps(info))
    with open(d / "metrics.jsonl", "w") as f:
        for s in range(1, steps + 1):
            f.write(step_line(s))
        for e in range(1, epochs_done + 1):
            f.write(epoch_line(e, 0.3 + 0.05 * e, 0.35 + 0.05 * e))
        f.write(json.dumps({"kind": "log", "message": "hello from the engine", "time": time.time()}) + "\n")
        if broken:
            f.write("{this line is broken\n")
    return d


def append(run: Path, text: str) -> None:
    with open(run / "metrics.jsonl", "a") as f:
        f.write(text)


# ----------------------------------------------------------------------------- data layer
def test_tail_holds_back_a_partial_line_and_reads_increments(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r1", steps=2)
    tracker = RunTracker(run)
    tracker.update()
    assert tracker.row().step == 2
    line = step_line(3)
    append(run, line[:25])  # a record being written: no newline yet
    assert tracker.update() == []
    assert tracker.row().step == 2
    append(run, line[25:])
    tracker.update()
    row = tracker.row()
    assert row.step == 3 and row.errors == 0
    assert len(tracker.loss_x["cls"]) == 3  # each record read once


def test_malformed_line_becomes_an_error_once(tmp_path: Path) -> None:
    make_run(tmp_path, "bad", steps=3, broken=True)
    model = ResultsModel(tmp_path, with_load=False)
    snap = model.poll(["bad"])
    assert snap.row("bad").errors == 1
    assert len(snap.new_errors) == 1 and "not JSON" in snap.new_errors[0]
    assert "bad" in snap.new_errors[0] and "line 5" in snap.new_errors[0]
    assert snap.details["bad"].row.step == 3  # the good lines are still read
    again = model.poll(["bad"])
    assert again.new_errors == () and again.row("bad").errors == 1
    # A flood of bad lines is counted in full but only the latest messages are kept.
    append(tmp_path / "runs" / "bad", "garbage\n" * 300)
    flood = model.poll(["bad"])
    assert flood.row("bad").errors == 301 and len(flood.new_errors) == 300
    assert len(flood.details["bad"].errors) == 200
    assert flood.details["bad"].errors[-1].startswith("metrics.jsonl line 305:")


def test_statuses_finished_failed_stale_running(tmp_path: Path) -> None:
    make_run(tmp_path, "fin", status="finished", steps=5)
    make_run(tmp_path, "bad", status="failed", steps=5)
    make_run(tmp_path, "ghost", status="running", pid=dead_pid(), steps=5)
    make_run(tmp_path, "live", status="running", steps=5)
    old = make_run(tmp_path, "old", status="running", steps=5)
    then = time.time() - 3600
    os.utime(old / "metrics.jsonl", (then, then))
    info = json.loads((old / "status.json").read_text())
    (old / "status.json").write_text(json.dumps({**info, "updated": then}))
    snap = ResultsModel(tmp_path, stale_after=60.0, with_load=False).poll()
    status = {r.name: r.status for r in snap.rows}
    assert status == {"fin": "finished", "bad": "failed", "ghost": "stale", "live": "running",
                      "old": "stale"}
    # With a long enough stale_after the quiet run is running again.
    snap = ResultsModel(tmp_path, stale_after=7200.0, with_load=False).poll()
    assert snap.row("old").status == "running"
    assert snap.row("fin").progress == 1.0


def test_row_progress_eta_losses_best_and_hyperparameters(tmp_path: Path) -> None:
    make_run(tmp_path, "r", steps=40, epochs_done=2, overrides=["loss.gamma=1.0", "loss.dilations=[2,4]"])
    snap = ResultsModel(tmp_path, with_load=False).poll(["r"])
    row = snap.row("r")
    assert (row.step, row.steps_total, row.epochs) == (40, 100, 4)
    assert row.progress == pytest.approx(0.4)
    assert row.losses["cls"] == pytest.approx(1 / 40)
    assert row.best_miou == pytest.approx(0.4)
    assert row.hparams["gamma"] == 1.0 and row.hparams["dilations"] == "2-4"
    assert row.eta is not None and row.eta >= 0
    d = snap.details["r"]
    assert set(d.loss_series) == {"cls", "ce", "aa", "lr", "total"}
    assert d.loss_series["cls"][0] == tuple(float(s) for s in range(1, 41))
    assert d.miou_series["mIoU"] == ((1.0, 2.0), (pytest.approx(35.0), pytest.approx(40.0)))
    assert d.miou_series["pseudo mIoU"][1] == (pytest.approx(40.0), pytest.approx(45.0))
    assert d.logs[-1].endswith("hello from the engine")
    assert d.config["loss"]["gamma"] == 1.0


def test_the_learning_rate_is_read_under_its_name_and_under_the_old_lr(tmp_path: Path) -> None:
    """Issue 29: a step record's learning rate is ``learning_rate``; runs written before say ``lr``
    (beside ``losses["lr"]``, the label reassign loss, which stays)."""
    for key in ("learning_rate", "lr"):
        run = make_run(tmp_path / key, "r", steps=0)
        append(run, "".join(step_line(s, lr_key=key) for s in range(1, 21)))
        snap = ResultsModel(tmp_path / key, with_load=False).poll(["r"])
        assert snap.row("r").lr == pytest.approx(1e-4 * (1 - 20 / 100) ** 0.9), key
        xs, ys = snap.details["r"].lr_series
        assert len(xs) == 20 and ys[0] == pytest.approx(1e-4 * 0.99 ** 0.9), key
        assert snap.details["r"].loss_series["lr"][1][0] == pytest.approx(0.05)  # the loss keeps its name


def test_truncated_metrics_file_is_read_again(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r", steps=30)
    tracker = RunTracker(run)
    tracker.update()
    (run / "metrics.jsonl").write_text(step_line(1) + step_line(2))
    tracker.update()
    assert tracker.row().step == 2 and len(tracker.loss_x["cls"]) == 2


def test_eta_downsample_duration() -> None:
    # 10 steps in 20 s -> 0.5 step/s; 90 steps left -> 180 s.
    pts = [(float(s), 100.0 + 2 * s) for s in range(1, 11)]
    assert estimate_eta(pts, 100) == pytest.approx(180.0)
    assert estimate_eta(pts, 100, now=pts[-1][1] + 30) == pytest.approx(150.0)
    assert estimate_eta(pts[:1], 100) is None and estimate_eta(pts, None) is None
    xs, ys = downsample(list(range(10)), [float(i % 2) for i in range(10)], 5)
    assert xs == (0.5, 2.5, 4.5, 6.5, 8.5) and ys == (0.5,) * 5
    assert downsample([1, 2], [3, 4], 5) == ((1.0, 2.0), (3.0, 4.0))
    assert fmt_duration(3725) == "1h02m" and fmt_duration(200) == "3m20s" and fmt_duration(None) == "-"


def test_filter_sort_and_config_diff(tmp_path: Path) -> None:
    make_run(tmp_path, "alpha", steps=10, overrides=["loss.gamma=1.0"])
    make_run(tmp_path, "beta", steps=50, status="finished")
    make_run(tmp_path, "gamma-run", steps=30, overrides=["loss.lambda_aa=0.3"])
    snap = ResultsModel(tmp_path, with_load=False).poll(["alpha", "gamma-run"])
    assert [r.name for r in filter_rows(snap.rows, "finished")] == ["beta"]
    assert [r.name for r in filter_rows(snap.rows, "gamma=1.0")] == ["alpha"]
    assert [r.name for r in filter_rows(snap.rows, "-RUN running")] == ["gamma-run"]
    assert [r.name for r in sort_rows(snap.rows, "progress", reverse=True)] == ["beta", "gamma-run", "alpha"]
    assert [r.name for r in sort_rows(snap.rows, "lambda_aa")] == ["alpha", "beta", "gamma-run"]
    diff = dict(config_diff({n: snap.details[n].config for n in ("alpha", "gamma-run")}))
    assert diff["loss.gamma"] == [1.0, 2.0]
    assert diff["loss.lambda_aa"] == [0.1, 0.3]
    assert "loss.margin_aa" not in diff
    assert dict(config_diff({"a": {"x": {"y": 1}}, "b": {}})) == {"x.y": [1, None]}


def test_grids_counts_follow_live_run_status(tmp_path: Path) -> None:
    make_run(tmp_path, "g-p0", status="finished")
    make_run(tmp_path, "g-p1", status="running", pid=dead_pid())
    gdir = tmp_path / "grids" / "sweep"
    gdir.mkdir(parents=True)
    points = [
        {"id": "p0", "params": {"loss.gamma": 1.0}, "run": "g-p0", "state": "running"},
        {"id": "p1", "params": {"loss.gamma": 2.0}, "run": "g-p1", "state": "running"},
        {"id": "p2", "params": {"loss.gamma": 3.0}, "run": None, "state": "missing"},
        {"id": "p3", "params": {"loss.gamma": 4.0}, "run": "gone", "state": "done"},
    ]
    (gdir / "grid.json").write_text(json.dumps({"name": "sweep", "points": points}))
    (tmp_path / "grids" / "broken").mkdir()
    (tmp_path / "grids" / "broken" / "grid.json").write_text("{not json")
    snap = ResultsModel(tmp_path, with_load=False).poll()
    grids = {g.name: g for g in snap.grids}
    sweep = grids["sweep"]
    assert [p.state for p in sweep.points] == ["done", "stale", "missing", "done"]
    assert sweep.counts["done"] == 2 and sweep.counts["missing"] == 1 and sweep.counts["stale"] == 1
    assert grids["broken"].error and "grid.json" in grids["broken"].error
    assert read_grids(tmp_path / "nowhere") == []


def test_optuna_journal_studies(tmp_path: Path) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    (tmp_path / "studies").mkdir()
    path = tmp_path / "studies" / "search.log"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    study = optuna.create_study(study_name="lam", storage=storage, direction="maximize")
    for value in (0.2, 0.7, 0.5):
        study.enqueue_trial({"lambda_aa": value})

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("lambda_aa", 0.0, 1.0)
        return -((x - 0.6) ** 2)

    study.optimize(objective, n_trials=3)
    failed = study.ask({"lambda_aa": optuna.distributions.FloatDistribution(0.0, 1.0)})
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    (tmp_path / "studies" / "junk.log").write_text('{"op_code": 99}\nnot json at all\n{"x": 1}\n')

    model = ResultsModel(tmp_path, with_load=False)
    studies = {s.name: s for s in model.poll().studies}
    lam = studies["lam"]
    assert lam.directions == ("maximize",)
    assert [t.state for t in lam.trials] == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]
    assert lam.best_number == 1 and lam.best_params == {"lambda_aa": 0.7}
    assert lam.best_values == (pytest.approx(-0.01),)
    assert lam.state_counts == {"COMPLETE": 3, "FAIL": 1}
    assert studies["junk"].error and "junk.log" in studies["junk"].error
    # A new trial appended by another process is picked up.
    study.optimize(objective, n_trials=1)
    assert len({s.name: s for s in model.poll().studies}["lam"].trials) == 5


def test_system_load_cpu_then_fake_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    tui_data._reset_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails: CPU and RAM
    load = read_system_load()
    assert load.kind == "cpu" and load.devices[0].mem_total > 0
    assert "not installed" in load.note

    fake = types.ModuleType("pynvml")
    fake.__dict__.update(
        nvmlInit=lambda: None,
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: b"Fake A100",
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=40 + h),
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=2**30, total=2**32),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    tui_data._reset_nvml()
    try:
        load = read_system_load()
        assert load.kind == "gpu"
        assert [d.util for d in load.devices] == [40.0, 41.0]
        assert load.devices[1].name == "GPU1 Fake A100" and load.devices[0].mem_total == 2**32
    finally:
        tui_data._reset_nvml()


def test_odd_run_directories_do_not_hide_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_run(tmp_path, "good", steps=3)
    odd = make_run(tmp_path, "odd-config", steps=3)
    (odd / "config.yaml").write_text("loss: 5\n")  # valid YAML, wrong shape
    make_run(tmp_path, "explodes", steps=3)
    original = RunTracker.row

    def row(self: RunTracker, *args: Any, **kwargs: Any) -> Any:
        if self.name == "explodes":
            raise RuntimeError("boom")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RunTracker, "row", row)
    model = ResultsModel(tmp_path, with_load=False)
    snap = model.poll(["good", "odd-config", "explodes"])
    status = {r.name: r.status for r in snap.rows}
    assert status == {"good": "running", "odd-config": "running", "explodes": "unreadable"}
    assert snap.row("odd-config").hparams == {} and snap.row("odd-config").step == 3
    assert set(snap.details) == {"good", "odd-config"}
    assert snap.new_errors == ("explodes: cannot read: RuntimeError: boom",)
    assert model.poll().new_errors == ()  # reported once


def make_corrupt_runs(root: Path) -> None:
    """A truncated status.json, a missing config.yaml, an empty one; beside a healthy run."""
    make_run(root, "good", steps=3)
    torn = make_run(root, "torn-status", status="finished", steps=3)
    (torn / "status.json").write_text('{"status": "fini')
    make_run(root, "no-config", steps=3)
    (root / "runs" / "no-config" / "config.yaml").unlink()
    empty = make_run(root, "empty-config", steps=3)
    (empty / "config.yaml").write_text("")
    (root / "runs" / ".locks").mkdir()  # not a run: hidden, and holds no run file
    (root / "runs" / "just-a-dir").mkdir()  # not a run: holds no run file


def test_corrupt_run_directories_are_shown_as_corrupt_with_a_reason(tmp_path: Path) -> None:
    make_corrupt_runs(tmp_path)
    snap = ResultsModel(tmp_path, with_load=False).poll(["torn-status", "no-config"])
    status = {r.name: r.status for r in snap.rows}
    assert status == {"good": "running", "torn-status": "corrupt", "no-config": "corrupt",
                      "empty-config": "corrupt"}
    assert snap.row("torn-status").problem == "status.json: not valid JSON"
    assert snap.row("no-config").problem == "no config.yaml"
    assert snap.row("empty-config").problem == "config.yaml: empty"
    assert snap.row("good").problem is None
    # never counted as running, no ETA; its records are still read and drawn
    assert snap.row("no-config").eta is None and snap.row("no-config").step == 3
    assert "no-config" in snap.details and snap.details["no-config"].row.status == "corrupt"
    assert [r.name for r in filter_rows(snap.rows, "corrupt")] == ["empty-config", "no-config", "torn-status"]
    # the same verdict from aakit.runs, which the report and the figures read
    from aakit.runs import list_runs

    assert {r.name: (r.status, r.problem) for r in list_runs(tmp_path)} == {
        "good": ("running", None), "torn-status": ("corrupt", "status.json: not valid JSON"),
        "no-config": ("corrupt", "no config.yaml"), "empty-config": ("corrupt", "config.yaml: empty")}
    # repaired: the next poll sees it
    (tmp_path / "runs" / "torn-status" / "status.json").write_text('{"status": "finished"}')
    model = ResultsModel(tmp_path, with_load=False)
    assert model.poll().row("torn-status").status == "finished"


def test_missing_results_dir_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsDirError, match="results directory not found"):
        ResultsModel(tmp_path / "nope")


# ----------------------------------------------------------------------------- the app
from aakit.tui.app import AakitTui  # noqa: E402
from aakit.tui.export import export_svg  # noqa: E402
from aakit.tui.screens import CompareScreen, HelpScreen, RunScreen  # noqa: E402
from aakit.tui.widgets import CurvePlot, KeyedTable, PlotRow, RunsTable, TextPanel  # noqa: E402


async def wait_for(pilot: Any, cond: Callable[[], bool], what: str, bound: float = 15.0) -> None:
    """Let the app run until ``cond()`` holds (``bound`` only guards against a hang)."""
    end = time.monotonic() + bound
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"never happened: {what}")
        await pilot.pause(0.02)


def run_app(results: Path, body: Callable[[AakitTui, Any], Any], **kwargs: Any) -> AakitTui:
    """Run the app headless with a fast poller and drive it with ``body(app, pilot)``."""
    app = AakitTui(results, refresh=kwargs.pop("refresh", 0.05), **kwargs)

    async def main() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            await app.wait_loaded(timeout=15)
            await body(app, pilot)

    asyncio.run(main())
    return app


def table(app: AakitTui) -> RunsTable:
    return app.main.query_one(RunsTable)


def test_app_growing_metrics_update_progress_live(tmp_path: Path) -> None:
    run = make_run(tmp_path, "live-run", steps=10)

    async def body(app: AakitTui, pilot: Any) -> None:
        t = table(app)
        await wait_for(pilot, lambda: t.row_names == ["live-run"], "run listed")
        assert t.cell_text("live-run", "step") == "e1/4 10/100"
        assert t.cell_text("live-run", "progress").endswith("10%")
        # The engine writes more steps, the last one in two pieces.
        append(run, "".join(step_line(s) for s in range(11, 60)))
        line = step_line(60)
        append(run, line[:30])
        await wait_for(pilot, lambda: "59/100" in t.cell_text("live-run", "step"), "59 steps shown")
        append(run, line[30:])
        await wait_for(pilot, lambda: "60/100" in t.cell_text("live-run", "step"), "60 steps shown")
        assert t.cell_text("live-run", "progress").endswith("60%")
        assert t.cell_text("live-run", "status") == "running"
        assert t.cell_text("live-run", "cls") == f"{1 / 60:.4g}"
        # A second run appears while the app runs.
        make_run(tmp_path, "new-run", steps=3, status="finished")
        await wait_for(pilot, lambda: t.row_names == ["live-run", "new-run"], "new run listed")

    run_app(tmp_path, body)


def test_app_selecting_a_run_shows_its_curves(tmp_path: Path) -> None:
    make_run(tmp_path, "a-run", steps=5)
    make_run(tmp_path, "b-run", steps=20, epochs_done=3)

    async def body(app: AakitTui, pilot: Any) -> None:
        t = table(app)
        await wait_for(pilot, lambda: len(t.row_names) == 2, "runs listed")
        await pilot.press("down", "enter")
        assert isinstance(app.screen, RunScreen) and app.screen.run_name == "b-run"
        loss = app.screen.query_one("#loss-plot", CurvePlot)
        miou = app.screen.query_one("#miou-plot", CurvePlot)
        await wait_for(pilot, lambda: "CLS" in loss.series, "loss curves drawn")
        assert set(loss.series) == {"CLS", "CE", "AA", "LR"}
        xs, ys = loss.series["CLS"]
        assert xs == tuple(float(s) for s in range(1, 21))
        assert ys[-1] == pytest.approx(1 / 20)
        assert miou.series["mIoU"][1] == (pytest.approx(35.0), pytest.approx(40.0), pytest.approx(45.0))
        assert "pseudo mIoU" in miou.series
        logs = app.screen.query_one("#logs", TextPanel)
        assert logs.lines[-1].endswith("hello from the engine")
        assert app.watched == frozenset({"b-run"})
        # New points reach the open plot.
        append(tmp_path / "runs" / "b-run", step_line(21))
        await wait_for(pilot, lambda: len(loss.series["CLS"][0]) == 21, "curve grew")
        assert app.screen.query_one("#load").load is not None
        await pilot.press("escape")
        assert not isinstance(app.screen, RunScreen)
        await wait_for(pilot, lambda: app.watched == frozenset(), "details no longer read")

    run_app(tmp_path, body)


def test_app_survives_broken_metrics_lines(tmp_path: Path) -> None:
    run = make_run(tmp_path, "broken-run", steps=4, broken=True)

    async def body(app: AakitTui, pilot: Any) -> None:
        t = table(app)
        await wait_for(pilot, lambda: t.row_names == ["broken-run"], "run listed")
        assert t.cell_text("broken-run", "errors") == "⚠ 1"
        assert len(app.errors) == 1 and "not JSON" in app.errors[0]
        summary = str(app.main.query_one("#summary").render())
        assert "malformed" in summary and "broken-run" in summary
        append(run, "[1, 2, 3]\n" + step_line(5) + "\x00\xff garbage\n")
        await wait_for(pilot, lambda: t.cell_text("broken-run", "errors") == "⚠ 3", "3 errors")
        assert "4/100" not in t.cell_text("broken-run", "step")  # step 5 was read
        assert "5/100" in t.cell_text("broken-run", "step")
        await pilot.press("enter")
        errors = app.screen.query_one("#errors", TextPanel)
        await wait_for(pilot, lambda: len(errors.lines) == 3, "errors listed in the run view")
        assert "not JSON" in errors.lines[0] and "not a JSON object" in errors.lines[1]
        assert app.is_running

    run_app(tmp_path, body)


def test_app_shows_finished_failed_stale_statuses(tmp_path: Path) -> None:
    make_run(tmp_path, "done-run", status="finished", steps=100)
    make_run(tmp_path, "crashed-run", status="failed", steps=30)
    make_run(tmp_path, "ghost-run", status="running", pid=dead_pid(), steps=20)
    make_run(tmp_path, "live-run", status="running", steps=20)

    async def body(app: AakitTui, pilot: Any) -> None:
        t = table(app)
        await wait_for(pilot, lambda: len(t.row_names) == 4, "runs listed")
        status = {n: t.cell_text(n, "status") for n in t.row_names}
        assert status == {"done-run": "finished", "crashed-run": "failed", "ghost-run": "stale",
                          "live-run": "running"}
        assert t.cell_text("done-run", "progress").endswith("100%")
        assert t.cell_text("ghost-run", "eta") == "-"  # no ETA for a dead run

    run_app(tmp_path, body)


def test_app_shows_corrupt_runs_and_why(tmp_path: Path) -> None:
    make_corrupt_runs(tmp_path)

    async def body(app: AakitTui, pilot: Any) -> None:
        t = table(app)
        await wait_for(pilot, lambda: len(t.row_names) == 4, "runs listed")
        status = {n: t.cell_text(n, "status") for n in t.row_names}
        assert status == {"good": "running", "torn-status": "corrupt", "no-config": "corrupt",
                          "empty-config": "corrupt"}
        summary = str(app.main.query_one("#summary").render())
        assert "3 corrupt" in summary and "torn-status: status.json: not valid JSON" in summary
        assert "no-config: no config.yaml" in summary

    run_app(tmp_path, body)


def test_app_filter_sort_mark_compare(tmp_path: Path) -> None:
    make_run(tmp_path, "aa-one", steps=10, epochs_done=1, overrides=["loss.gamma=1.0"])
    make_run(tmp_path, "aa-two", steps=50, epochs_done=2, overrides=["loss.lambda_aa=0.3"])
    make_run(tmp_path, "other", steps=30, status="finished")

    async def body(app: AakitTui, pilot: Any) -> None:
        t = table(app)
        await wait_for(pilot, lambda: len(t.row_names) == 3, "runs listed")
        await pilot.press("slash", *"aa- q")  # "q" is typed into the filter, it does not quit
        assert app.main.filter_text == "aa- q" and t.row_names == []
        await pilot.press("backspace", "backspace", "enter")
        assert t.row_names == ["aa-one", "aa-two"]
        assert t.has_focus
        await pilot.press("escape")  # clear the filter
        assert t.row_names == ["aa-one", "aa-two", "other"]
        await pilot.press("s", "j", "j", "enter")  # the sort menu: run, status, progress
        assert app.screen is app.main
        assert app.main.sort_key == "progress" and app.main.sort_reverse  # the most done first
        assert t.row_names == ["other", "aa-two", "aa-one"]
        assert t.cursor_name == "aa-one"  # the cursor follows its run through a re-sort
        await pilot.press("S")
        assert t.row_names == ["aa-one", "aa-two", "other"]
        await pilot.press("S")
        assert t.row_names == ["other", "aa-two", "aa-one"]
        await pilot.press("up", "space", "down", "space")  # mark aa-two and aa-one
        assert app.main.marked == {"aa-one", "aa-two"}
        assert t.cell_text("aa-two", "mark") == "●"
        await pilot.press("c")
        assert isinstance(app.screen, CompareScreen)
        screen = app.screen
        loss = screen.query_one("#cmp-loss", CurvePlot)
        await wait_for(pilot, lambda: set(loss.series) == {"aa-one", "aa-two"}, "curves overlaid")
        assert len(loss.series["aa-two"][0]) == 50 and len(loss.series["aa-one"][0]) == 10
        assert screen.query_one("#cmp-miou", CurvePlot).series["aa-two"][1] == (
            pytest.approx(35.0), pytest.approx(40.0)
        )
        diff = screen.query_one("#diff-table", KeyedTable)
        await wait_for(pilot, lambda: bool(diff.rows_shown), "config differences")
        keys = diff.column_texts(0)
        assert "loss.gamma" in keys and "loss.lambda_aa" in keys and "loss.margin_aa" not in keys
        await pilot.press("l")
        assert screen.loss_key == "cls" and loss.plot_title.startswith("CLS")

    run_app(tmp_path, body)


def test_app_grids_and_studies_tab_help_and_quit(tmp_path: Path) -> None:
    import optuna

    make_run(tmp_path, "p0-run", status="finished")
    gdir = tmp_path / "grids" / "sweep"
    gdir.mkdir(parents=True)
    points = [{"id": "p0", "params": {"loss.gamma": 1.0}, "run": "p0-run", "state": "running"},
              {"id": "p1", "params": {"loss.gamma": 2.0}, "run": None, "state": "missing"},
              {"id": "p1", "params": {"loss.gamma": 3.0}, "run": None, "state": "missing"}]  # id repeated
    (gdir / "grid.json").write_text(json.dumps({"name": "sweep", "points": points}))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    (tmp_path / "studies").mkdir()
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "studies" / "s.log"))
    )
    study = optuna.create_study(study_name="search", storage=storage, direction="maximize")
    study.enqueue_trial({"gamma": 0.5})
    study.optimize(lambda tr: tr.suggest_float("gamma", 0.0, 4.0), n_trials=1)

    async def body(app: AakitTui, pilot: Any) -> None:
        await pilot.press("2")
        grids = app.main.query_one("#grids-table", KeyedTable)
        points = app.main.query_one("#points-table", KeyedTable)
        studies = app.main.query_one("#studies-table", KeyedTable)
        trials = app.main.query_one("#trials-table", KeyedTable)
        await wait_for(pilot, lambda: bool(studies.rows_shown), "studies listed")
        assert grids.rows_shown[0][1][:4] == ("sweep", "1", "0", "2")  # done, running, missing
        assert points.column_texts(1) == ["done", "missing", "missing"]
        assert studies.column_texts(0) == ["search"] and "gamma=0.5" in studies.column_texts(6)[0]
        assert trials.column_texts(1) == ["complete"]
        # a study's values are mIoU (0..1): shown in percent, as every mIoU
        assert studies.column_texts(5) == ["#0: 50.0"] and trials.column_texts(2) == ["50.0"]
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "app quit")

    run_app(tmp_path, body)


def test_export_svg_shows_runs_and_statuses(tmp_path: Path) -> None:
    results = tmp_path / "results"
    make_run(results, "finished-run", status="finished", steps=100)
    make_run(results, "failed-run", status="failed", steps=30)
    make_run(results, "stale-run", status="running", pid=dead_pid(), steps=20)
    out = export_svg(results, tmp_path / "shots" / "dash.svg", size=(160, 40))
    svg = out.read_text(encoding="utf-8")
    assert out == tmp_path / "shots" / "dash.svg" and svg.lstrip().startswith("<svg")
    for text in ("finished-run", "failed-run", "stale-run", "finished", "failed", "stale"):
        assert text in svg
    assert not list((tmp_path / "shots").glob("*.tmp"))
    with pytest.raises(ResultsDirError):
        export_svg(tmp_path / "missing", tmp_path / "x.svg")


def test_app_survives_a_failing_poll(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: ResultsModel, watched: Any = ()) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(ResultsModel, "poll", boom)

    async def body(app: AakitTui, pilot: Any) -> None:
        summary = app.main.query_one("#summary")
        await wait_for(pilot, lambda: "disk on fire" in str(summary.render()), "poll error shown")
        assert app.is_running and app.snapshot is None

    run_app(tmp_path, body)
    with pytest.raises(ResultsDirError, match="disk on fire"):
        export_svg(tmp_path, tmp_path / "x.svg")
    assert not (tmp_path / "x.svg").exists()


def test_tables_are_sized_to_their_cells_when_filled(tmp_path: Path) -> None:
    """Column widths are set by ``show`` itself, not left to the next idle moment.

    (A frame drawn before that moment was cached with cells cut to the header's width, and a
    busy machine kept it: the dashboard SVG then lacked the run names.)
    """
    from textual.app import App

    results = tmp_path / "results"
    make_run(results, "a-rather-long-run-name", status="finished", steps=100)
    row = tui_data.ResultsModel(results).poll(()).rows[0]

    class Host(App):
        def compose(self):  # noqa: ANN202
            yield RunsTable()
            yield KeyedTable(("k", "v"))

    async def body() -> None:
        app = Host()
        async with app.run_test(size=(200, 20)):
            runs, keyed = app.query_one(RunsTable), app.query_one(KeyedTable)
            runs.show([row])
            keyed.show([("x", ("[b]bold[/b]", "a longer value"))])
            widths = {str(c.label): c.width for c in runs.ordered_columns}
            assert widths["run"] == len("a-rather-long-run-name")
            assert [c.width for c in keyed.ordered_columns] == [len("bold"), len("a longer value")]

    asyncio.run(body())


# ----------------------------------------------------------------------------- any terminal
from aakit.tui import layout  # noqa: E402
from aakit.tui.export import screen_text  # noqa: E402
from aakit.tui.screens.sort_menu import SORT_LABELS, SortMenu  # noqa: E402
from aakit.tui.widgets import FittedTable, PlotStack  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from experiment_fakes import write_run  # noqa: E402

#: (name, overrides, val mIoU, status) of the fake runs, named like the v2 pilot's
FIT_RUNS = (
    ("v2-pilot-bon-CLS+CE-s0", ["loss.affinity=none"], 0.3651, "finished"),
    ("v2-pilot-bon-CLS+CE+AA+LR-s1", ["loss.affinity=aa", "loss.label_reassign=true", "train.seed=1"], 0.4123, "finished"),
    ("v2-pilot-bon-SA-s2", ["loss.affinity=sa", "train.seed=2"], 0.3870, "failed"),
)


def fit_world(results: Path) -> dict[str, str]:
    """The fake runs of :data:`FIT_RUNS` (no log line) and a running one with a log line;
    returns each run directory's name -> its best mIoU as the dashboard should print it."""
    best = {}
    for name, overrides, val, status in FIT_RUNS:
        cfg = load_config(None, overrides=[f"name={name}", "train.epochs=3", *overrides])
        best[write_run(results, cfg, name, val=val, status=status).name] = f"{100 * val:.1f}"
    make_run(results, "live-with-logs", steps=10, epochs_done=2)  # best epoch mIoU 0.40
    best["live-with-logs"] = "40.0"
    return best


def test_layout_rules() -> None:
    cols = (
        layout.Column("name", "run", 0, keep=True, min_width=6),
        layout.Column("best", "best mIoU", 1, keep=True),
        layout.Column("status", "status", 2),
        layout.Column("wide", "wide", 3),
        layout.Column("small", "s", 4),
    )
    natural = {"name": 20, "best": 9, "status": 8, "wide": 30, "small": 1}
    assert layout.fit_columns(cols, natural, 200) == natural  # all fit, nothing cut
    # 22 + 11 + 10 = 43 cells: "wide" does not fit in 50, the narrower "small" (3) does
    assert layout.fit_columns(cols, natural, 50) == {"name": 20, "best": 9, "status": 8, "small": 1}
    assert layout.fit_columns(cols, natural, 36) == {"name": 20, "best": 9, "small": 1}
    assert layout.fit_columns(cols, natural, 35) == {"name": 20, "best": 9}
    # the kept columns alone are too wide: the cuttable one gives way, down to its min_width
    assert layout.fit_columns(cols, natural, 30) == {"name": 17, "best": 9}
    assert layout.fit_columns(cols, natural, 5) == {"name": 6, "best": 9}
    assert layout.fit_columns(cols, {"best": 9}, 50) == {"best": 9}  # a column without width: not shown
    assert layout.ellipsize("v2-pilot-bon", 6) == "v2-pi…" and layout.ellipsize("abc", 3) == "abc"
    # plots: hidden rather than squashed
    assert layout.fit_plots(7, ["loss", "miou"]) == {}
    assert layout.fit_plots(13, ["loss", "miou"]) == {"loss": 13}
    assert layout.fit_plots(17, ["loss", "miou"]) == {"loss": 9, "miou": 8}
    assert layout.parse_size("80x24") == (80, 24) and layout.parse_size(" 120X32 ") == (120, 32)
    for bad in ("80", "80x", "x24", "eightyxtwenty", "80x24x3", "0x24", "80x0", "39x24", "80x-4", ""):
        with pytest.raises(layout.SizeError, match="--size"):
            layout.parse_size(bad)
    assert tui_data.ema([1.0, 1.0, 1.0]) == pytest.approx((1.0, 1.0, 1.0))  # debiased: no pull to 0
    smooth = tui_data.ema([0.0, 10.0, 0.0, 10.0], weight=0.5)
    assert smooth[0] == 0.0 and 0.0 < smooth[-1] < 10.0 and max(smooth) < 10.0


def test_layout_module_is_free_of_textual() -> None:
    code = "import sys, aakit.tui.layout, aakit.tui.data; print(any(m.startswith('textual') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def assert_columns_fit(t: FittedTable, text: str) -> None:
    """Every column shown is inside the table's width; each header is whole or ends with "…";
    each drawn cell fits its column, a cut one ends with "…"."""
    assert t.widths, "no column shown"
    assert sum(w + 2 * t.cell_padding for w in t.widths.values()) <= t.available_width()
    labels = {c.key: c.label for c in t.spec}
    drawn_labels = [c.label.plain for c in t.ordered_columns]
    header = max(text.splitlines(), key=lambda line: sum(label in line for label in drawn_labels))
    for column in t.ordered_columns:
        full, drawn = labels[str(column.key.value)], column.label.plain
        assert drawn == full or (drawn.endswith("…") and full.startswith(drawn[:-1])), (full, drawn)
        assert drawn in header
    for key in t.row_keys:
        for (column, width), cell in zip(t.widths.items(), t.get_row(key)):
            full = t._full[key][[c.key for c in t.spec].index(column)]
            full = full.plain if hasattr(full, "plain") else str(full)
            assert cell.cell_len <= width
            if cell.plain != full:
                assert cell.plain.endswith("…") and full.startswith(cell.plain[:-1])


def run_at(results: Path, size: tuple[int, int], body: Callable[[AakitTui, Any], Any]) -> None:
    app = AakitTui(results, refresh=0.05)

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await app.wait_loaded(timeout=15)
            await body(app, pilot)

    asyncio.run(main())


@pytest.mark.parametrize("size", [(80, 24), (120, 32)], ids=["80x24", "120x32"])
def test_runs_table_fits_the_terminal(tmp_path: Path, size: tuple[int, int]) -> None:
    best = fit_world(tmp_path)

    async def body(app: AakitTui, pilot: Any) -> None:
        t = table(app)
        await wait_for(pilot, lambda: len(t.row_names) == 4, "runs listed")
        await pilot.pause()
        text = screen_text(app)
        assert len(text.splitlines()) == size[1] and max(len(line) for line in text.splitlines()) <= size[0]
        for name, miou in best.items():  # every run and its best mIoU, in percent
            row = next(line for line in text.splitlines() if name in line)
            assert miou in row.split(), row
        assert "0.3651" not in text and "0.4123" not in text
        assert "best mIoU 41.2" in text  # the best of all, in the summary line
        assert_columns_fit(t, text)
        assert "best_miou" in t.widths and "name" in t.widths
        if size[0] == 80:  # the low-priority columns went first
            assert "dilations" not in t.widths and "lambda_aa" not in t.widths
        else:
            assert "step" in t.widths
        assert "filter:" not in text  # the filter box appears with "/" only
        await pilot.press("slash")
        assert "filter:" in screen_text(app)

    run_at(tmp_path, size, body)


def test_tables_refit_when_the_terminal_is_resized(tmp_path: Path) -> None:
    fit_world(tmp_path)

    async def body(app: AakitTui, pilot: Any) -> None:
        t = table(app)
        await wait_for(pilot, lambda: len(t.row_names) == 4, "runs listed")
        await pilot.pause()
        assert "dilations" in t.widths  # room for every column
        for size in ((80, 24), (120, 32)):
            await pilot.resize_terminal(*size)
            await wait_for(pilot, lambda: t.available_width() == size[0] - 2, "table resized")
            await pilot.pause()
            assert_columns_fit(t, screen_text(app))
            assert "dilations" not in t.widths and "best_miou" in t.widths

    run_at(tmp_path, (180, 40), body)


def test_a_name_too_long_for_160_columns_ends_with_an_ellipsis(tmp_path: Path) -> None:
    long_name = "a-very-long-run-name-" * 8  # 168 characters
    cfg = load_config(None, overrides=[f"name={long_name}", "train.epochs=2"])
    write_run(tmp_path, cfg, long_name, val=0.3651)

    async def body(app: AakitTui, pilot: Any) -> None:
        t = table(app)
        await wait_for(pilot, lambda: len(t.row_names) == 1, "run listed")
        await pilot.pause()
        text = screen_text(app)
        assert_columns_fit(t, text)
        row = next(line for line in text.splitlines() if "a-very-long-run-name-a-very" in line)
        assert "…" in row and "36.5" in row.split()  # cut, and the best mIoU still on screen
        assert t.widths["name"] < len(t.row_names[0])

    run_at(tmp_path, (160, 30), body)


@pytest.mark.parametrize("size", [(80, 24), (120, 32)], ids=["80x24", "120x32"])
def test_keys_move_and_the_sort_menu_sorts(tmp_path: Path, size: tuple[int, int]) -> None:
    best = fit_world(tmp_path)

    async def body(app: AakitTui, pilot: Any) -> None:
        t = table(app)
        await wait_for(pilot, lambda: len(t.row_names) == 4, "runs listed")
        assert t.cursor_row == 0
        await pilot.press("j", "j")
        assert t.cursor_row == 2
        await pilot.press("k")
        assert t.cursor_row == 1
        await pilot.press("G")
        assert t.cursor_row == 3
        await pilot.press("g")
        assert t.cursor_row == 0
        before = list(t.row_names)
        await pilot.press("s")
        assert isinstance(app.screen, SortMenu)
        assert "sort by" in screen_text(app)
        await pilot.press("escape")  # nothing chosen: the order stays
        assert app.screen is app.main and t.row_names == before
        await pilot.press("s", *["j"] * list(SORT_LABELS).index("best_miou"), "enter")
        assert app.screen is app.main and app.main.sort_key == "best_miou"
        assert t.row_names == sorted(best, key=lambda n: -float(best[n]))  # the best first
        await pilot.press("s", "enter")  # the current key again: reversed
        assert t.row_names == sorted(best, key=lambda n: float(best[n]))
        assert "sorted by best mIoU" in screen_text(app)

    run_at(tmp_path, size, body)


@pytest.mark.parametrize("size", [(80, 24), (120, 32)], ids=["80x24", "120x32"])
def test_run_view_fits_the_terminal(tmp_path: Path, size: tuple[int, int]) -> None:
    best = fit_world(tmp_path)
    quiet = next(n for n in best if "AA+LR" in n)  # no log line, no malformed line

    async def body(app: AakitTui, pilot: Any) -> None:
        await wait_for(pilot, lambda: len(table(app).row_names) == 4, "runs listed")
        app.open_run(quiet)
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunScreen)
        loss = screen.query_one("#loss-plot", CurvePlot)
        await wait_for(pilot, lambda: bool(loss.series), "curves drawn")
        await pilot.pause()
        text = screen_text(app)
        assert quiet in text and "best mIoU 41.2" in text
        # the empty panels are not shown
        for box in ("#logs-box", "#errors-box", "#run-bottom"):
            assert not screen.query_one(box).display
        assert "last log lines" not in text and "no log lines" not in text
        # plots: drawn with room, or not at all
        stack = screen.query_one(PlotStack)
        assert stack.shown == ("loss-plot", "miou-plot")
        for plot in screen.query(CurvePlot):
            assert plot.display == (plot.id in stack.shown)
            assert not plot.display or plot.size.height >= layout.MIN_PLOT_ROWS
        assert "losses per step" in text and "mIoU per epoch (%)" in text
        # the config: beside the plots when wide, else one key away
        side = screen.query_one("#run-side")
        assert side.display == (size[0] >= RunScreen.WIDE)
        if not side.display:
            assert "config.yaml" not in text
            await pilot.press("c")
            await pilot.pause()
            assert side.display and not screen.query_one(PlotStack).display
        text = screen_text(app)
        assert "config.yaml" in text and "backbone: resnet38d" in text
        # smoothed loss curves
        raw = dict(loss.series)
        await pilot.press("e")
        assert app.smooth and "EMA" in loss.plot_title
        assert loss.series["CLS"] == (raw["CLS"][0], tui_data.ema(raw["CLS"][1]))
        await pilot.press("e")
        assert loss.series == raw
        # a run with log lines shows them, and the plots that still fit
        await pilot.press("escape")
        app.open_run("live-with-logs")
        await pilot.pause()
        screen = app.screen
        logs = screen.query_one("#logs", TextPanel)
        await wait_for(pilot, lambda: bool(logs.lines), "log lines read")
        await pilot.pause()
        assert screen.query_one("#logs-box").display and "hello from the engine" in screen_text(app)
        stack = screen.query_one(PlotStack)
        assert stack.shown and all(p.size.height >= layout.MIN_PLOT_ROWS
                                   for p in screen.query(CurvePlot) if p.display)
        if size == (80, 24):
            assert stack.shown == ("loss-plot",)  # no room for the second: hidden, not squashed
            await pilot.press("c")  # the config instead of the plots, and of the log lines
            await pilot.pause()
            assert screen.query_one("#config-box").display and not screen.query_one("#run-bottom").display
            assert "backbone: resnet38d" in screen_text(app)
            await pilot.press("c")
            assert stack.display and screen.query_one("#run-bottom").display

    run_at(tmp_path, size, body)


def test_compare_view_hides_what_has_nothing_to_show(tmp_path: Path) -> None:
    best = fit_world(tmp_path)
    a, b = [n for n in best if n.startswith("v2-pilot-bon-CLS")]

    async def body(app: AakitTui, pilot: Any) -> None:
        await wait_for(pilot, lambda: len(table(app).row_names) == 4, "runs listed")
        app.open_compare([a, b])
        await pilot.pause()
        screen = app.screen
        diff = screen.query_one("#diff-table", KeyedTable)
        await wait_for(pilot, lambda: bool(diff.rows_shown), "config differences")
        await pilot.pause()
        text = screen_text(app)
        assert f"{best[a]}" in text and f"{best[b]}" in text  # each run's best mIoU in the title
        # the fake runs record no total loss: that plot is hidden, the mIoU one shown
        assert screen.query_one(PlotRow).shown == ("cmp-miou",)
        await pilot.press("l")  # CLS: both runs have it
        await wait_for(pilot, lambda: "cmp-loss" in screen.query_one(PlotRow).shown, "loss plot shown")
        assert_columns_fit(diff, text)

    run_at(tmp_path, (80, 24), body)


def _cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    from aakit import cli

    monkeypatch.setattr(sys, "argv", ["aakit", *argv])
    try:
        cli.main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_cli_export_at_a_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    best = fit_world(tmp_path / "results")
    out = tmp_path / "dash.txt"
    assert _cli(["tui", "--results", str(tmp_path / "results"), "--export", str(out), "--size", "80x24"],
                monkeypatch) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 24 and max(len(line) for line in lines) <= 80
    for name, miou in best.items():
        assert any(name in line and miou in line.split() for line in lines), name
    svg = tmp_path / "dash.svg"
    assert _cli(["tui", "--results", str(tmp_path / "results"), "--export", str(svg), "--size", "120x32"],
                monkeypatch) == 0
    assert svg.read_text(encoding="utf-8").lstrip().startswith("<svg")
    capsys.readouterr()
    for argv in (["--export", str(tmp_path / "x.svg"), "--size", "80by24"],
                 ["--export", str(tmp_path / "x.svg"), "--size", "10x5"],
                 ["--size", "80x24"]):  # a size without --export
        assert _cli(["tui", "--results", str(tmp_path / "results"), *argv], monkeypatch) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and "--size" in err[0], err
    assert not (tmp_path / "x.svg").exists()


# ----------------------------------------------------------------------------- old module paths
def test_the_old_module_paths_give_the_moved_objects() -> None:
    """Issue 29 split tui/data.py, tui/app.py and tui/widgets.py; the old paths stay for one release."""
    from aakit.experiment import studystate
    from aakit.tui import app, messages, screens, widgets
    from aakit.tui.model import curves, listing, load, poll, rows, tracker
    from aakit.tui.widgets import keys, tables

    assert tui_data.ResultsModel is poll.ResultsModel and tui_data.Snapshot is poll.Snapshot
    assert tui_data.RunTracker is tracker.RunTracker and tui_data.RunRow is rows.RunRow
    assert tui_data.StudyReader is studystate.StudyReader and tui_data.ema is curves.ema
    assert tui_data.sort_rows is listing.sort_rows and tui_data._reset_nvml is load._reset_nvml
    assert tui_data._num("3") is None and tui_data._num(2) == 2.0 and tui_data._int(2.7) == 2
    assert app.RunScreen is screens.RunScreen and app.SortMenu is screens.SortMenu
    assert app.SnapshotReady is messages.SnapshotReady and app.HelpScreen is screens.HelpScreen
    assert widgets.RunsTable is tables.RunsTable and widgets.KeyScroll is keys.KeyScroll


def test_the_vim_keys_are_bound_alike_everywhere() -> None:
    """One table of j/k/g/G: each list or box binds the four keys to its own actions."""
    from aakit.tui.widgets.keys import TABLE_KEYS, KeyOptionList, KeyScroll

    def keymap(bindings: Any) -> dict[str, str]:
        return {b.key: b.action for b in bindings}

    assert keymap(TABLE_KEYS) == {"j": "cursor_down", "k": "cursor_up", "g": "scroll_top", "G": "scroll_bottom"}
    assert keymap(KeyOptionList.BINDINGS) == {"j": "cursor_down", "k": "cursor_up", "g": "first", "G": "last"}
    assert keymap(KeyScroll.BINDINGS) == {"j": "scroll_down", "k": "scroll_up", "g": "scroll_home", "G": "scroll_end"}
    assert not any(b.show for b in (*TABLE_KEYS, *KeyOptionList.BINDINGS, *KeyScroll.BINDINGS))
