"""Installed from a wheel, aakit works from any folder (issue 18).

Builds the wheel (pip, no build isolation: the set-up's setuptools, no download), installs it
into a fresh virtual environment that reuses the dependencies of the running one through a
``.pth`` line (no download), and from an empty folder runs ``aakit --version``,
``aakit configs ls``, a tiny benchmark, a tiny training of a shipped preset (which pre-trains
its classifier, ``model.pretrained: experiments/synthetic/cls.yaml``, found among the shipped
presets), ``aakit report``, ``aakit grid grids/table1 --dry-run``, ``aakit tui --export`` and
``aakit configs copy``.
"""
from __future__ import annotations

import json

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

# The sources a wheel is built from (a copy, so the build leaves nothing in the working tree).
SOURCES = ("aakit", "experiments", "results/published.csv", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
# A 2-epoch schedule of a small network on 64-pixel crops (tests/conftest.py's, on the CLI's benchmark).
TINY = [
    "model.embed_dim=16", "model.small_width=8", "model.cam_scales=[1.0]", "data.crop=64",
    "data.max_images=8", "loss.dilations=[2,4]", "train.epochs=2", "train.cls_warmup_epochs=1",
    "train.batch_size=4", "pseudo.workers=0", "eval.pseudo_images=4", "eval.max_images=4",
    "eval.train_iou=false", "eval.save_examples=0", "optim.lr=0.01",
]


def _build_wheel(out: Path) -> Path:
    src = out / "src"
    for rel in SOURCES:
        a, b = REPO / rel, src / rel
        b.parent.mkdir(parents=True, exist_ok=True)
        if a.is_dir():
            shutil.copytree(a, b, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_shipped", "*.egg-info"))
        else:
            shutil.copy2(a, b)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", str(src), "-w", str(out / "dist")], check=True, capture_output=True, timeout=300)
    (wheel,) = (out / "dist").glob("aakit-*.whl")
    return wheel


def _fresh_env(env: Path, wheel: Path) -> Path:
    """A virtual environment without pip whose site-packages sees the running one's (a .pth
    line: its packages, not its .pth files, so not the editable aakit) and holds the wheel."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    python = env / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    deps = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(purelib, "_aakit_test_deps.pth").write_text("".join(f"{d}\n" for d in deps if Path(d).is_dir()))
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The virtual environment holding the freshly built wheel."""
    base = tmp_path_factory.mktemp("wheel")
    return _fresh_env(base / "env", _build_wheel(base))


def _run(env: Path, cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    environ |= {"PATH": f"{env / 'bin'}{os.pathsep}{environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    p = subprocess.run(list(args), cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(args)} -> {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    return p


def test_the_wheel_carries_the_presets(installed: Path) -> None:
    (wheel,) = installed.parent.glob("dist/aakit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "experiments").rglob("*.yaml"))
    assert shipped and all(f"aakit/_shipped/{rel}" in names for rel in shipped)
    assert "aakit/_shipped/published.csv" in names and "aakit/presets.py" in names


def test_installed_aakit_runs_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "project"
    work.mkdir()
    where = _run(installed, work, "python", "-c",
                 "import aakit, aakit.presets as p; print(aakit.__file__); print(p.presets_root())").stdout.split()
    assert all(Path(w).is_relative_to(installed) for w in where), where  # the wheel's, not the editable one
    assert _run(installed, work, "aakit", "--version").stdout.strip() == "aakit 0.1.0"
    ls = _run(installed, work, "aakit", "configs", "ls").stdout
    assert str(installed) in ls.splitlines()[0] and "synthetic/full " in ls and "grids/voc/table1 " in ls
    _run(installed, work, "aakit", "data", "synth", "--out", "data/synth", "--n-train", "16", "--n-val", "8")
    sets = [a for kv in TINY for a in ("--set", kv)]
    out = _run(installed, work, "aakit", "train", "synthetic/full", *sets, "--no-progress").stdout
    assert "mIoU" in out, out
    runs = sorted(p.name for p in (work / "results" / "runs").iterdir() if not p.name.startswith("."))
    assert [r.rsplit("-", 1)[0] for r in runs] == ["synth-cls", "synth-full"], runs  # its classifier first
    prov = json.loads((work / "results" / "runs" / runs[1] / "provenance.json").read_text())
    assert prov["git_commit"] is None and prov["versions"]["aakit"]  # installed: no checkout's commit claimed
    rep = _run(installed, work, "aakit", "report", "--table", "1", "--format", "md")  # the shipped published.csv
    assert "Table 1" in rep.stdout and "63.7" in rep.stdout
    points = _run(installed, work, "aakit", "grid", "grids/table1", "--dry-run").stdout  # base: ../synthetic/full.yaml
    assert "t1-CLS+CE-s0" in points
    _run(installed, work, "aakit", "tui", "--export", "dash.svg")  # the TUI's stylesheet is package data
    _run(installed, work, "aakit", "configs", "copy", "voc/full.yaml", "mine")
    assert (work / "mine" / "full.yaml").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["dash.svg", "data", "mine", "results"]
