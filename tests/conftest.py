"""Shared fixtures: a tiny embedded benchmark, a tiny training config built on it, a PostgreSQL server."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- one Ctrl-C stops the suite
# A training run in the test process turns Ctrl-C into "stop after this step" (SignalHook), so
# the test saw a stopped run, failed, and pytest went on to the next test (issue 33). Remember a
# Ctrl-C that reached the hook, and stop the session as pytest's own Ctrl-C does once the test ends.
_CTRL_C: list[int] = []


def pytest_configure(config: pytest.Config) -> None:
    from aakit.engine import hooks

    on_signal = hooks.SignalHook._on_signal

    def remember(self: hooks.SignalHook, signum: int, frame: object) -> None:
        if signum == signal.SIGINT:
            _CTRL_C.append(signum)
        on_signal(self, signum, frame)

    hooks.SignalHook._on_signal = remember  # type: ignore[method-assign]


# ----------------------------------------------------------------------------- slow tests (make check skips them)
# `make test` runs everything; `make check` (-m "not slow") the rest, in about a minute. Slow: every
# test of a module that trains networks or starts aakit processes, and the single tests that took
# over 2 s in a full run on a 2-core machine (issue 33). A new slow test goes here or gets
# @pytest.mark.slow.
SLOW_MODULES = {
    "test_bad_input", "test_bench", "test_confidence", "test_console", "test_ctrl_c", "test_engine",
    "test_fidelity", "test_first_hour", "test_golden", "test_grid", "test_grid_kill", "test_journal",
    "test_launcher", "test_layering", "test_mechanism", "test_mlflow", "test_mobilenet", "test_overlap",
    "test_probing", "test_profile", "test_reliability", "test_reproduction", "test_search", "test_signals",
    "test_tracking", "test_trainer", "test_umask", "test_wandb", "test_wheel", "test_confusions",
    "test_redact", "test_results", "test_runs_cli", "test_crf_torch", "test_models", "test_figures", "test_tui",
    "test_preflight",
}
SLOW_TESTS = {
    "test_comparisons.py::test_a_grid_files_description_titles_its_comparisons",
    "test_comparisons.py::test_cli_compare_md_and_json_and_one_line_errors",
    "test_comparisons.py::test_report_figures_draw_each_grids_comparisons_as_a_forest",
    "test_losses.py::test_affinity_gradcheck",
    "test_losses.py::test_label_reassign_gradcheck",
    "test_losses.py::test_label_reassign_matches_loop_reference",
    "test_presets.py::test_cli_version_ls_copy_and_bad_names",
    "test_presets.py::test_report_and_demo_read_the_presets_root",
    "test_cli_niceties.py::test_figures_warn_once_where_images_were_looked_for",
    "test_cli_niceties.py::test_figures_data_draws_the_images",
    "test_comparisons.py::test_the_full_report_adds_the_comparisons_of_its_suites_own_grids",
    "test_comparisons.py::test_the_report_reads_one_suite_at_a_time",
    "test_claims.py::test_into_replaces_only_the_marked_block",
    "test_claims.py::test_the_report_shows_the_claims_after_the_tables",
    "test_claims.py::test_the_demo_ends_with_the_stored_multi_seed_answer_not_a_typed_one",
    "test_claims.py::test_each_verdict_from_the_paired_interval",
    "test_claims.py::test_claims_json_lists_pairs_whose_differences_give_the_interval",
    "test_claims.py::test_a_comparison_whose_stored_mechanism_is_below_one_percent_is_not_engaged_here",
    "test_report.py::test_the_default_report_is_the_verdicts_then_how_to_see_the_tables",
    "test_report.py::test_stderr_counts_the_runs_left_out_in_one_line_and_verbose_lists_them",
    "test_synth_v2.py::test_v2_class_is_read_from_the_body_colour_alone",
    "test_models.py::test_resnet38_output_stride_8_and_heads",
    "test_report.py::test_cli_run_writes_files_and_figures",
    "test_report.py::test_figures_again_redraw_only_the_curves_of_runs_that_changed",
    "test_report.py::test_report_on_a_results_dir_without_runs_says_so_and_writes_nothing",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.stem
        if module in SLOW_MODULES or f"{item.path.name}::{item.originalname}" in SLOW_TESTS:  # type: ignore[attr-defined]
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    result = yield
    if not _CTRL_C:
        return result
    raise KeyboardInterrupt("Ctrl-C during a training in the test process")


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 train + 8 val images of 64 px, 4 object classes (generated once per session)."""
    from aakit.data import synth

    root = tmp_path_factory.mktemp("synth") / "set"
    synth.generate(root, n_train=16, n_val=8, num_classes=4, size=64, seed=3)
    return root


def tiny_overrides(root: Path) -> dict[str, object]:
    """A 2-epoch schedule on the tiny benchmark: 1 warm-up epoch, then every loss."""
    return {
        "data.root": str(root),
        "model.pretrained": None,
        "model.num_classes": 5,
        "model.embed_dim": 16,
        "model.small_width": 8,
        "model.cam_scales": [1.0, 0.5],
        "data.crop": 64,
        "loss.dilations": [2, 4],
        "train.epochs": 2,
        "train.cls_warmup_epochs": 1,
        "train.batch_size": 4,
        "pseudo.workers": 0,
        "eval.pseudo_images": 4,
        "eval.max_images": 4,
        "optim.lr": 0.01,
    }


@pytest.fixture()
def tiny_config(tiny_synth: Path):
    from aakit.config import load_config

    return load_config(REPO / "experiments" / "synthetic" / "full.yaml", tiny_overrides(tiny_synth))


# ----------------------------------------------------------------------------- PostgreSQL
def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return cands[-1] if cands else None


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port (skips, saying why, if impossible)."""
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.skip("psycopg2 is not installed: pip install 'aakit[postgres]'")
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:  # initdb refuses to run as root: use the postgres account
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to own the server")
        run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        # pytest's tmp_path lives under a root-only directory: give the server its own.
        base = Path(tempfile.mkdtemp(prefix="aakit-pg-"))
        os.chown(base, pw.pw_uid, pw.pw_gid)
    else:
        base = tmp_path / "pg"
        base.mkdir()
    data = base / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LC_ALL": "C"}
    try:
        subprocess.run([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, cwd=base, env=env, timeout=60, **run_as)
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
        subprocess.run([pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "-t", "30", "start"],
                       check=True, capture_output=True, cwd=base, env=env, timeout=60, **run_as)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        shutil.rmtree(base, ignore_errors=True)
        detail = getattr(e, "stderr", b"") or b""
        pytest.skip(f"could not start a PostgreSQL server: {e} {detail.decode(errors='replace')[:200]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, cwd=base,
                       env=env, timeout=60, **run_as)
        shutil.rmtree(base, ignore_errors=True)


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run aakit's real entry point in process: (exit code, stdout, stderr)."""
    import sys

    from aakit import cli

    monkeypatch.setattr(sys, "argv", ["aakit", *argv])
    try:
        cli.main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def expected_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl's numbers under the tags every tracking back-end (TensorBoard, W&B, MLflow)
    uses, spelled out here rather than taken from aakit.engine.tracking: tag -> [(step, value)]."""
    from aakit.runs import read_metrics

    out: dict[str, list[tuple[int, float]]] = {}
    for r in read_metrics(run / "metrics.jsonl")[0]:
        if r["kind"] == "step":
            pairs = {f"loss/{k}": v for k, v in r["losses"].items()}
            pairs |= {"train/learning_rate": r["learning_rate"], "train/images_per_s": r["images_per_s"]}
        elif r["kind"] == "epoch":
            pairs = {tag: r[k] for k, tag in (("miou", "val/miou"), ("miou_rfpc", "val/miou_rfpc"),
                                               ("pseudo_miou", "pseudo/miou")) if k in r}
        else:
            continue
        for tag, v in pairs.items():
            out.setdefault(tag, []).append((r["step"], v))
    return out
