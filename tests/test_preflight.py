"""aakit grid FILE --preflight (issue 28): per comparison, the share of the gradient by which the two
rows' objectives differ at their starting point, "not engaged" below 1 %, the seeds a noise floor
asks for; it trains nothing and creates no run. aakit grid asks before starting a not-engaged
comparison (--yes, or no terminal: it goes on, saying so)."""
from __future__ import annotations

import functools
import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import REPO, run_cli, tiny_overrides  # noqa: E402
from experiment_fakes import calls, fake_train  # noqa: E402

from aakit.experiment import grid as G  # noqa: E402
from aakit.experiment import preflight as P  # noqa: E402
from aakit.experiment.comparisons import comparisons_json  # noqa: E402
from aakit.experiment.mechanisms import NOT_ENGAGED, mechanism_path  # noqa: E402

ROWS = """\
rows:
  - {table: 0, row: SA, set: {loss.affinity: sa}}
  - {table: 0, row: AA-crf, set: {loss.affinity: aa, loss.aa_confidence: crf}}
  - {table: 0, row: AA-oracle-min, set: {loss.affinity: aa, loss.aa_confidence: oracle, loss.weighting: min}}
"""
COMPARE = """\
compare:
  - {winner: AA-crf, other: SA, text: AA with V from the CRF beats SA}
  - {winner: AA-oracle-min, other: SA, text: AA with the oracle V and min beats SA}
"""


def write_grid(where: Path, root: Path, *, compare: bool = True) -> Path:
    settings = tiny_overrides(root) | {"loss.label_reassign": False}
    text = (f"name: pre\nbase: {REPO / 'experiments' / 'synthetic' / 'full.yaml'}\npreset: synthetic\n"
            f"seeds: [0, 1]\nset: {json.dumps(settings)}\n" + ROWS + (COMPARE if compare else ""))
    path = where / "pre.yaml"
    path.write_text(text)
    return path


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.fixture(scope="module")
def stored(tiny_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """The tiny grid preflighted once with --store: (grid file, results, the stored document)."""
    where = tmp_path_factory.mktemp("preflight")
    path, results = write_grid(where, tiny_synth), where / "results"
    doc = P.cli_preflight(path, overrides=[], results=results, batches=2, pretrain=False, store=True,
                          echo=lambda line: None)
    return path, results, doc


def test_preflight_calls_aa_crf_not_engaged_and_the_oracle_with_min_engaged_and_creates_no_run(
        tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path, results = write_grid(tmp_path, tiny_synth), tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    before = tree(results)
    code, out, err = run_cli(["grid", str(path), "--preflight", "--results", str(results)], monkeypatch, capsys)
    assert code == 0, err
    lines = {line.split(":")[0].strip(): line for line in out.splitlines() if " vs " in line}
    crf, oracle = lines["AA-crf vs SA"], lines["AA-oracle-min vs SA"]
    assert "not engaged" in crf and "gradient share" in crf
    assert "not engaged" not in oracle and ": engaged" in oracle
    assert "seeds for ±0.5" in crf and "±1.0" in crf
    assert "nothing trained" in out and "random initialisation" in out
    assert tree(results) == before, "the preflight wrote into the results directory"
    assert not (tmp_path / "results" / "local").exists()


def test_the_shares_and_the_rows_own_mechanism_records(stored: tuple[Path, Path, dict]) -> None:
    _, results, doc = stored
    by = {(c["winner"], c["other"]): c for c in doc["comparisons"]}
    crf, oracle = by[("AA-crf", "SA")], by[("AA-oracle-min", "SA")]
    assert crf["grad_share"] < 0.01 and oracle["grad_share"] > 10 * crf["grad_share"] and oracle["grad_share"] >= 0.01
    assert crf["differs_in"] == ["loss.affinity"]
    assert set(oracle["differs_in"]) == {"loss.affinity", "loss.aa_confidence", "loss.weighting"}
    assert crf["reason"] is None and len(crf["per_batch"]) == doc["probe"]["batches"] == 2
    # the rows' own records (aakit.mechanism.measure_mechanism) say the same of AA against SA
    assert crf["winner_record"]["aa_vs_sa_grad_share"] < 0.01 < oracle["winner_record"]["aa_vs_sa_grad_share"]
    assert crf["winner_record"]["aa_vs_sa_grad_share"] == pytest.approx(crf["grad_share"], rel=1.0)
    assert oracle["winner_record"]["omega_wrong"] == 0.0  # the oracle's V is 0 on wrong labels, min keeps it
    assert doc["start"]["untrained"] and doc["start"]["own"]  # model.pretrained: none is the rows' own start
    assert json.loads(mechanism_path(results, "pre").read_text())["comparisons"][0]["winner"] == "AA-crf"
    # no stored runs of the tiny grid: no noise floor, no seed count
    assert crf["noise_sd"] is None and crf["seeds_for_1.0"] is None


def test_preflight_of_a_grid_without_compare_is_one_line_exit_2(
        tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_grid(tmp_path, tiny_synth, compare=False)
    code, out, err = run_cli(["grid", str(path), "--preflight", "--results", str(tmp_path / "r")], monkeypatch, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "declares no compare:" in err, err
    assert not (tmp_path / "r").exists()
    code, _, err = run_cli(["grid", str(path), "--store", "--results", str(tmp_path / "r")], monkeypatch, capsys)
    assert code == 2 and "--store: only with --preflight" in err


def test_which_comparisons_the_gradient_cannot_judge(tmp_path: Path) -> None:
    """rfpc is one training evaluated twice; rows that also differ in the schedule are beyond
    what the objective's gradient at the start shows: no verdict for either."""
    (tmp_path / "g.yaml").write_text(
        f"name: j\nbase: {REPO / 'experiments' / 'synthetic' / 'full.yaml'}\npreset: synthetic\nseeds: [0]\n"
        "rows:\n  - {table: 1, row: CLS+CE+AA+LR, set: {}}\n"
        "  - {table: 1, row: CLS+CE+AA+LR+rfpc, set: {}, metric: val_rfpc}\n"
        "  - {table: 0, row: long, set: {train.epochs: 9}}\n"
        "compare:\n  - {winner: long, other: CLS+CE+AA+LR, text: longer}\n")
    grid = G.load_grid(tmp_path / "g.yaml")
    items = {(i.winner, i.other): i for i in P.grid_items(grid)}
    rfpc = items[("CLS+CE+AA+LR+rfpc", "CLS+CE+AA+LR")]
    assert rfpc.claim == "T1-rfpc" and rfpc.table == 1  # a paper claim the grid fills
    wp, op = rfpc.pair()
    assert "one training" in P.unjudged(wp, op, P.differs_in(wp.config, op.config))
    wp, op = items[("long", "CLS+CE+AA+LR")].pair()
    keys = P.differs_in(wp.config, op.config)
    assert keys == ["train.epochs"] and "outside the objective (train.epochs)" in P.unjudged(wp, op, keys)
    assert [(i.winner, i.other) for i in P.grid_items(grid, claims=False)] == [("long", "CLS+CE+AA+LR")]


def _copy(stored: tuple[Path, Path, dict], tmp_path: Path) -> tuple[Path, Path]:
    path, results, _ = stored
    shutil.copytree(results, tmp_path / "results")
    return path, tmp_path / "results"


def test_grid_without_a_terminal_goes_on_past_a_not_engaged_comparison_saying_so(
        stored: tuple[Path, Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path, results = _copy(stored, tmp_path)
    monkeypatch.setattr(G, "run_grid", functools.partial(G.run_grid, train=fake_train))
    monkeypatch.setattr(P, "interactive", lambda: False)
    code, out, err = run_cli(["grid", str(path), "--results", str(results)], monkeypatch, capsys)
    assert code == 0, err
    said = [line for line in out.splitlines() if line.startswith("preflight: ")]
    assert said == ["preflight: 1 comparison(s) not engaged (AA-crf vs SA); going on (no terminal to ask on: stdin "
                    "is not interactive, or a cluster job)"]
    assert len(calls(results)) == 6  # the stored measurement was reused: the grid ran
    # the comparisons read the stored mechanism: AA-crf vs SA is not engaged here, its interval kept
    by = {(c["winner_row"], c["other_row"]): c for c in comparisons_json(results, "pre")}
    crf, oracle = by[("AA-crf", "SA")], by[("AA-oracle-min", "SA")]
    assert crf["verdict"] == NOT_ENGAGED and crf["interval_verdict"] == "supported"  # the fakes' +3 every seed
    assert crf["mechanism"]["grad_share"] == stored[2]["comparisons"][0]["grad_share"] and not crf["mechanism"]["engaged"]
    assert oracle["verdict"] == oracle["interval_verdict"] == "supported" and oracle["mechanism"]["engaged"]
    for c in (crf, oracle):
        diffs = [p["winner"] - p["loser"] for p in c["pairs"]]
        assert c["n"] == len(diffs) == 2 and c["mean_diff"] == pytest.approx(sum(diffs) / 2)
        assert c["ci_low"] == pytest.approx(c["mean_diff"]) == c["ci_high"]  # no spread: a zero-width interval


def test_grid_asks_before_a_not_engaged_comparison_and_yes_goes_on(
        stored: tuple[Path, Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    path, results = _copy(stored, tmp_path)
    monkeypatch.setattr(G, "run_grid", functools.partial(G.run_grid, train=fake_train))
    monkeypatch.setattr(P, "interactive", lambda: True)
    asked: list[str] = []
    monkeypatch.setattr(typer, "confirm", lambda q: asked.append(q) or False)
    code, out, _ = run_cli(["grid", str(path), "--results", str(results)], monkeypatch, capsys)
    assert code == 1 and "nothing started" in out and not calls(results)
    assert len(asked) == 1 and "AA-crf vs SA" in asked[0] and "AA-oracle-min" not in asked[0]
    code, out, _ = run_cli(["grid", str(path), "--yes", "--results", str(results)], monkeypatch, capsys)
    assert code == 0 and "going on (--yes)" in out and len(calls(results)) == 6 and len(asked) == 1
    # everything done: nothing left to start, nothing preflighted
    code, out, _ = run_cli(["grid", str(path), "--results", str(results)], monkeypatch, capsys)
    assert code == 0 and "preflight" not in out and len(asked) == 1


def test_preflight_at_a_trained_run_measures_every_row_at_its_weights_and_stores_beside(
        stored: tuple[Path, Path, dict], tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from aakit.config import load_config
    from aakit.engine.train import train

    path, results = _copy(stored, tmp_path)
    at_start = json.loads(mechanism_path(results, "pre").read_text())
    cfg = load_config(REPO / "experiments" / "synthetic" / "full.yaml",
                      tiny_overrides(tiny_synth) | {"loss.label_reassign": False, "loss.affinity": "sa"})
    run = train(cfg, results=tmp_path / "trained", progress=False)
    code, out, err = run_cli(["grid", str(path), "--preflight", "--at", str(run), "--store", "--results", str(results)],
                             monkeypatch, capsys)
    assert code == 0, err
    assert "(--at)" in out and str(run / "checkpoints" / "last.pt") in out
    doc = json.loads(mechanism_path(results, "pre", str(run)).read_text())
    assert doc["at"] == str(run) and "--at" in doc["command"]
    assert not doc["start"]["untrained"] and not doc["start"]["own"]
    assert doc["start"]["record"]["run"] == run.name  # the checkpoint it loaded
    assert json.loads(mechanism_path(results, "pre").read_text()) == at_start  # the start's record stays
    share = {(c["winner"], c["other"]): c["grad_share"] for c in doc["comparisons"]}
    start = {(c["winner"], c["other"]): c["grad_share"] for c in at_start["comparisons"]}
    assert share.keys() == start.keys() and share != start  # another network: other gradients

    before = tree(results)
    for argv, says in ((["--preflight", "--at", str(tmp_path / "nowhere")], "no checkpoint there"),
                       (["--at", str(run)], "--at: only with --preflight")):
        code, out, err = run_cli(["grid", str(path), *argv, "--results", str(results)], monkeypatch, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err
    assert tree(results) == before


def test_a_comparison_engaged_at_a_trained_point_is_no_longer_not_engaged(
        stored: tuple[Path, Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aakit.experiment.mechanisms import share_text

    path, results = _copy(stored, tmp_path)
    G.run_grid(path, results=results, train=fake_train, progress=False)
    crf_start = next(c for c in stored[2]["comparisons"] if c["winner"] == "AA-crf")
    at_doc = {"at": "results/runs/r-1", "comparisons": [
        {k: crf_start[k] for k in ("winner", "other", "winner_hash", "other_hash")} | {"grad_share": 0.2, "reason": None},
        {"winner": "AA-crf", "other": "SA", "winner_hash": "other", "other_hash": "configs", "grad_share": 0.5,
         "reason": None}]}  # another pair of configs: not carried
    (results / "grids" / "pre" / "mechanism-at-r-1.json").write_text(json.dumps(at_doc))
    by = {(c["winner_row"], c["other_row"]): c for c in comparisons_json(results, "pre")}
    crf = by[("AA-crf", "SA")]
    assert crf["verdict"] == crf["interval_verdict"] == "supported" and crf["mechanism"]["engaged"]
    assert [t["grad_share"] for t in crf["mechanism"]["trained"]] == [0.2]
    assert share_text(crf["mechanism"]).endswith(" / 20 % trained")
    at_doc["comparisons"][0]["grad_share"] = 0.001  # below 1 % at the trained point too: still not engaged
    (results / "grids" / "pre" / "mechanism-at-r-1.json").write_text(json.dumps(at_doc))
    crf = {(c["winner_row"], c["other_row"]): c for c in comparisons_json(results, "pre")}[("AA-crf", "SA")]
    assert crf["verdict"] == NOT_ENGAGED and not crf["mechanism"]["engaged"]
