"""The results model (aakit.experiment.results) and the one reader of grid.json (gridstate).

The report, claims, costs and figures read one :class:`ResultsIndex`; the report and the TUI
read grid.json through one function; none of the modules the report is made of imports the
report (no import circle), and the reader stays free of optuna and torch.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from experiment_fakes import write_run  # noqa: E402

from aakit.config import from_dict  # noqa: E402
from aakit.experiment import gridstate, report as R, results as M  # noqa: E402
from aakit.tui.data import read_grids  # noqa: E402

PKG = Path(M.__file__).resolve().parent


def _grid_json(results: Path, name: str, points: list, preset: str = "synthetic") -> Path:
    path = results / "grids" / name / "grid.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"name": name, "preset": preset, "points": points}))
    return path


def test_one_reader_for_the_report_and_the_tui(tmp_path: Path) -> None:
    cfg = from_dict({"preset": "synthetic", "train": {"epochs": 1}})
    run = write_run(tmp_path, cfg, "g-CLS+CE-s0")
    h = run.name.rsplit("-", 1)[1]
    path = _grid_json(tmp_path, "g", [
        {"id": "p0", "table": 1, "row": "CLS+CE", "params": {"x": 1}, "seed": 0, "hash": h, "metric": "val",
         "run": run.name, "state": "running"},
        {"id": "p1", "table": 1, "row": "CLS+CE", "params": {}, "seed": "one", "hash": "feed", "state": "missing"},
        "not a point",
    ])
    state = gridstate.read_grid_state(path)
    assert [p.complete for p in state.points] == [True, False] and state.malformed == 1
    assert (state.points[0].table, state.points[0].seed, state.points[1].seed) == (1, 0, None)

    tui = {g.name: g for g in read_grids(tmp_path, {run.name: "finished"})}["g"]
    assert type(tui) is gridstate.GridState and [p.state for p in tui.points] == ["done", "missing"]

    index = M.load_results(tmp_path, "synthetic", grids_dir=tmp_path / "no-grid-files")
    assert index.points == [M.TablePoint(1, "CLS+CE", 0, h, "val", "g", ran=True)]
    assert index.notes == [f"{path}: a point without table/row/seed/hash was skipped"] * 2
    row = index.rows(1)["CLS+CE"]
    assert (row.expected, [r.name for r, _ in row.runs]) == (1, [run.name])
    assert row.column() == ([pytest.approx(100 * row.runs[0][0].summary["metrics"]["val"]["miou"])], ["ss"])


def test_an_unreadable_grid_json_is_a_state_with_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "grids" / "bad" / "grid.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    (tmp_path / "grids" / "flat").mkdir()
    (tmp_path / "grids" / "flat" / "grid.json").write_text(json.dumps({"name": "flat", "points": {}}))
    states = {g.name: g for g in gridstate.read_grid_states(tmp_path)}
    assert states["bad"].error == "grid.json: unreadable JSON" and states["bad"].points == ()
    assert states["flat"].error == "grid.json: no 'points' list"
    assert M.load_results(tmp_path, "synthetic", grids_dir=tmp_path / "none").points == []


def test_the_report_reads_the_runs_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = from_dict({"preset": "synthetic", "train": {"epochs": 1}})
    write_run(tmp_path, cfg, "solo")
    calls = []
    real = M.read_runs
    monkeypatch.setattr(M, "read_runs", lambda results, *a, **k: calls.append(results) or real(results, *a, **k))
    R.cli_run(table=None, fmt="md", out=tmp_path / "out", preset="synthetic", figures=True, results=tmp_path,
              echo=lambda s: None, grids_dir=tmp_path / "none", warn=lambda s: None)
    assert calls == [tmp_path]  # tables, claims, costs and figures share one index


def _imports(path: Path) -> set[str]:
    """Every aakit module a file imports, at module level or inside functions."""
    out = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.ImportFrom) and n.module:
            out |= {n.module} | {f"{n.module}.{a.name}" for a in n.names}
        elif isinstance(n, ast.Import):
            out |= {a.name for a in n.names}
    return {m for m in out if m.startswith("aakit.")}


@pytest.mark.parametrize("module", ["results", "tables", "gridstate", "claims", "costs", "figures"])
def test_the_report_is_no_import_circle(module: str) -> None:
    """The report puts the tables, claims, costs and figures together; none of them imports it."""
    assert "aakit.experiment.report" not in _imports(PKG / f"{module}.py")
    if module in ("results", "tables", "gridstate"):  # the model and the cells import none of the parts
        parts = {f"aakit.experiment.{m}" for m in ("report", "claims", "costs", "figures")}
        assert not _imports(PKG / f"{module}.py") & parts


def test_the_grid_reader_imports_neither_optuna_nor_torch() -> None:
    code = ("import sys, aakit.experiment.gridstate, aakit.experiment.results\n"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('optuna', 'torch'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
