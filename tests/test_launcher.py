"""--launcher local|slurm (issue 16 part 2): grids and searches whose workers are submitit jobs.

submitit's LocalExecutor runs each worker in a subprocess of its own, so the fake trainer
cannot be monkeypatched into it: ``train=fake_train`` travels pickled in the worker's spec (as
for ``--workers``), and ``PYTHONPATH`` lets the job import ``experiment_fakes``. SLURM is not
here: a fake ``sbatch`` on ``PATH`` records the submission file submitit writes.
"""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from optuna.trial import TrialState

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))
import conftest  # noqa: E402
from experiment_fakes import calls, fake_train  # noqa: E402
from test_grid import TABLE1, trials_of, write_grid  # noqa: E402
from test_search import study_trials, write_search  # noqa: E402

from aakit.experiment import grid as G  # noqa: E402
from aakit.experiment import launch as L  # noqa: E402
from aakit.experiment import search as S  # noqa: E402

pytest.importorskip("submitit")


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``aakit ARGS`` in this process: (exit code, stdout, stderr)."""
    return conftest.run_cli(list(args), monkeypatch, capsys)


@pytest.fixture()
def fake_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's grids and searches train with the fake trainer, also inside submitit's jobs."""
    monkeypatch.setattr(G, "run_grid", functools.partial(G.run_grid, train=fake_train))
    monkeypatch.setattr(S, "run_search", functools.partial(S.run_search, train=fake_train))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))


# ----------------------------------------------------------------------------- local executor
def test_grid_through_the_local_executor_runs_every_point_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fake_jobs: None
) -> None:
    path = write_grid(tmp_path)
    results = tmp_path / "r"
    code, out, err = run_cli(monkeypatch, capsys, "grid", str(path), "--launcher", "local", "--workers", "2",
                             "--results", str(results))
    assert code == 0, (out, err)
    units = G.load_grid(path).units()
    assert Counter(c[0] for c in calls(results)) == Counter(u.hash for u in units)  # each unit exactly once
    assert str(os.getpid()) not in {c[2] for c in calls(results)}  # trained in the jobs, not here
    assert "ran 2 worker job(s) through submitit's LocalExecutor" in out
    assert "ran 6 run(s) now; points done 8, running elsewhere 0, missing 0, failed 0" in out
    assert all(p["state"] == "done" for p in G.grid_status(path, results=results))
    logs = sorted((results / "jobs" / "grid-t1").glob("*/*_log.out"))
    assert len(logs) == 2  # one log per worker job

    code, out, _ = run_cli(monkeypatch, capsys, "grid", str(path), "--launcher", "local", "--results", str(results))
    assert code == 0 and "ran 0 run(s) now; points done 8" in out
    assert len(calls(results)) == len(units)  # the second invocation trained nothing


def test_search_through_the_local_executor_fills_the_budget_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fake_jobs: None
) -> None:
    path = write_search(tmp_path)
    results = tmp_path / "r"
    args = ("search", str(path), "--trials", "3", "--launcher", "local", "--workers", "2", "--results", str(results))
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, (out, err)
    assert "ran 2 worker job(s) through submitit's LocalExecutor" in out and "best: trial" in out
    done = [t for t in study_trials(results) if t.state == TrialState.COMPLETE]
    assert len(done) == 3 and len(calls(results)) == 3
    code, out, _ = run_cli(monkeypatch, capsys, *args)
    assert code == 0 and "ran trials none" in out and len(calls(results)) == 3


def test_a_worker_error_in_a_job_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fake_jobs: None
) -> None:
    """A worker that stops on a user error inside its job (here: a grid file gone after the
    check) is reported as such, not as a traceback."""
    path = write_grid(tmp_path)
    real = L.launch

    def remove_then_launch(*a, **k):  # noqa: ANN002, ANN003, ANN202
        path.unlink()
        return real(*a, **k)

    monkeypatch.setattr("aakit.experiment.workers.launch", remove_then_launch)
    code, out, err = run_cli(monkeypatch, capsys, "grid", str(path), "--launcher", "local",
                             "--results", str(tmp_path / "r"))
    assert code == 2 and err.startswith("aakit: error: worker 0: ") and str(path) in err
    assert len(err.strip().splitlines()) == 1
    log = next((tmp_path / "r" / "jobs" / "grid-t1").glob("*/*_log.err")).read_text()
    assert f"aakit: error: {err.split('worker 0: ', 1)[1].strip()}" in log  # the job's log says it too


def test_a_job_at_its_time_limit_is_requeued_and_its_point_finished_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_jobs: None
) -> None:
    """SLURM's warning before the time limit (SIGUSR2) to a job mid-training: submitit requeues
    it only because WorkerTask has ``checkpoint``; the worker runs again, and the point it was
    training ends FAIL "interrupted", is claimed again and completes. (A 2-minute limit counts
    as reached at once for submitit: it keeps 10 minutes' margin.)"""
    two_rows = TABLE1.replace("seeds: [0, 1]", "seeds: [0]").split("  - {table: 1, row: CLS+CE+AA+LR,")[0]
    path = write_grid(tmp_path, two_rows)
    results = tmp_path / "r"
    monkeypatch.setenv("AAKIT_FAKE_SLEEP", "1")  # per epoch: the job is mid-training for ~2 s
    monkeypatch.setattr(L, "LOCAL_TIMEOUT_MIN", 2)
    cluster = L.Cluster("local")
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(G.run_grid, path, results=results, workers=1, launcher=cluster, progress=False)
        while not calls(results) and not run.done():
            time.sleep(0.05)
        first = calls(results)[0]
        os.kill(int(first[2]), signal.SIGUSR2)
        out = run.result(timeout=120)
    units = G.load_grid(path).units()
    assert out.counts() == {"done": 2, "running": 0, "missing": 0, "failed": 0} and not out.failed
    trials = trials_of(results, "t1")
    complete = Counter(t.user_attrs["point"] for t in trials if t.state == TrialState.COMPLETE)
    assert complete == Counter(u.hash for u in units)  # every unit completed exactly once
    interrupted = [t for t in trials if t.user_attrs.get("outcome") == "interrupted"]
    assert [t.user_attrs["point"] for t in interrupted] == [first[0]]
    redo = [c for c in calls(results) if c[0] == first[0]]
    assert len(redo) == 2 and redo[1][2] != first[2]  # trained again by the requeued job


def test_worker_task_is_requeued_as_it_is() -> None:
    """submitit requeues a job on a SLURM time-out or pre-emption only if its callable has a
    ``checkpoint`` method; ours resubmits the same worker (which claims afresh)."""
    spec = G.WorkerSpec(Path("r"), None, "s", None, 30.0, 600.0, False)
    task = L.WorkerTask(G._grid_worker, spec, ("g.yaml", []), 3, {})
    again = task.checkpoint()
    assert again.function is task and again.args == () and again.kwargs == {}


# ----------------------------------------------------------------------------- SLURM
@pytest.mark.parametrize("text, minutes", [
    ("240", 240), ("90:30", 91), ("4:00:00", 240), ("1-12", 2160), ("1-12:30", 2190), ("2-00:00:01", 2881),
])
def test_slurm_time_forms(text: str, minutes: int) -> None:
    assert L.parse_time(text) == minutes


def test_slurm_parameters_from_the_options() -> None:
    cluster = L.cluster_options("slurm", partition="gpu", time="1-00:00:00", gpus_per_task=1, cpus_per_task=8)
    assert cluster == L.Cluster("slurm", "gpu", 1440, 1, 8)
    assert L.slurm_parameters(cluster, "grid-t1", 4) == {
        "job_name": "grid-t1", "nodes": 1, "ntasks_per_node": 1, "time": 1440, "array_parallelism": 4,
        "partition": "gpu", "gpus_per_task": 1, "cpus_per_task": 8,
    }
    bare = L.slurm_parameters(L.cluster_options("slurm", time="30"), "s", 1)
    assert "partition" not in bare and "gpus_per_task" not in bare and "cpus_per_task" not in bare
    assert L.cluster_options(None) is None and L.cluster_options("local") == L.Cluster("local")


def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sbatch: str, srun: bool = True) -> None:
    """``sbatch`` running ``sbatch`` (a shell script's body) first on the PATH, and ``srun``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\n{sbatch}\n")
    if srun:
        (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit checks that srun exists
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_slurm_launcher_submits_one_array_with_the_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fake_jobs: None
) -> None:
    """The submission file submitit hands to sbatch (a fake one, which records it)."""
    fake_slurm(tmp_path, monkeypatch, f'cp "$1" {tmp_path}/submitted.sh\necho "Submitted batch job 4242"')
    path = write_grid(tmp_path)
    results = tmp_path / "r"
    code, out, err = run_cli(monkeypatch, capsys, "grid", str(path), "--launcher", "slurm", "--workers", "3",
                             "--slurm-partition", "gpu", "--slurm-time", "12:00:00", "--slurm-gpus-per-task", "1",
                             "--slurm-cpus-per-task", "6", "--results", str(results))
    assert code == 0, (out, err)
    sbatch = (tmp_path / "submitted.sh").read_text().splitlines()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=720", "#SBATCH --gpus-per-task=1",
                 "#SBATCH --cpus-per-task=6", "#SBATCH --array=0-2%3", "#SBATCH --nodes=1",
                 "#SBATCH --ntasks-per-node=1", "#SBATCH --job-name=grid-t1", "#SBATCH --signal=USR2@90"):
        assert line in sbatch
    assert any(f"--output={results / 'jobs' / 'grid-t1'}" in line for line in sbatch)
    assert "submitted 3 SLURM task(s) as job array 4242" in out
    assert "points done 0, running elsewhere 0, missing 8" in out
    assert calls(results) == []  # submitted, not run here


def test_sbatch_refusing_the_array_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fake_jobs: None
) -> None:
    fake_slurm(tmp_path, monkeypatch, 'echo "sbatch: error: invalid partition specified: nope" >&2\nexit 1')
    path = write_grid(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "grid", str(path), "--launcher", "slurm", "--slurm-time", "60",
                             "--slurm-partition", "nope", "--results", str(tmp_path / "r"))
    assert code == 2 and len(err.strip().splitlines()) == 1, (out, err)
    assert "could not be submitted: sbatch: error: invalid partition specified: nope" in err


def test_slurm_without_sbatch_here_is_one_line_exit_2_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    path = write_grid(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "grid", str(path), "--launcher", "slurm", "--slurm-time", "60",
                             "--results", str(tmp_path / "r"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "sbatch and srun are not on the PATH" in err
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args, words", [
    (["--launcher", "foo"], "--launcher 'foo': choose one of local, slurm"),
    (["--launcher", "slurm", "--slurm-time", "garbage"], "--slurm-time 'garbage'"),
    (["--launcher", "slurm", "--slurm-time", "0"], "above zero"),
    (["--launcher", "slurm"], "needs --slurm-time"),
    (["--slurm-partition", "gpu"], "--slurm-partition needs --launcher slurm"),
    (["--launcher", "local", "--slurm-time", "60"], "--slurm-time needs --launcher slurm"),
    (["--launcher", "slurm", "--slurm-time", "60", "--slurm-cpus-per-task", "0"], "--slurm-cpus-per-task 0"),
    (["--launcher", "slurm", "--slurm-time", "60", "--gpus", "0,1"], "--slurm-gpus-per-task"),
])
@pytest.mark.parametrize("command", ["grid", "search"])
def test_bad_launcher_options_are_one_line_exit_2_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    command: str, args: list[str], words: str,
) -> None:
    path = write_grid(tmp_path) if command == "grid" else write_search(tmp_path)
    results = tmp_path / "r"
    code, out, err = run_cli(monkeypatch, capsys, command, str(path), *args, "--results", str(results))
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, (out, err)
    assert not results.exists()


@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_without_submitit_the_launcher_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], launcher: str
) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    path = write_grid(tmp_path)
    extra = ["--slurm-time", "60"] if launcher == "slurm" else []
    code, _, err = run_cli(monkeypatch, capsys, "grid", str(path), "--launcher", launcher, *extra,
                           "--results", str(tmp_path / "r"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "submitit" in err and "pip install 'aakit[cluster]'" in err
    assert not (tmp_path / "r").exists()


def test_submitit_is_imported_only_when_a_launcher_runs() -> None:
    code = ("import sys, aakit.experiment.grid, aakit.experiment.search, aakit.experiment.launch, aakit.cli\n"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] == 'submitit')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
