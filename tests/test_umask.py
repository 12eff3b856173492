"""Files and directories aakit writes take the user's umask (0644 / 0755 under 022), not 0600."""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Iterator

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from aakit.config import Config  # noqa: E402
from aakit.experiment import grid as G  # noqa: E402
from aakit.experiment import report as R  # noqa: E402
from aakit.runs import append_jsonl, atomic_write_bytes, atomic_write_json, atomic_write_text  # noqa: E402


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under ``request.param`` as the process umask; the old one comes back after."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """Permission bits of every file and directory under ``root`` (root excluded)."""
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in sorted(root.rglob("*"))}


def wrong_modes(root: Path, mask: int) -> dict[str, str]:
    want_file, want_dir = 0o666 & ~mask, 0o777 & ~mask
    bad = {}
    for rel, mode in modes(root).items():
        want = want_dir if (root / rel).is_dir() else want_file
        if mode != want:
            bad[rel] = f"{mode:o} (want {want:o})"
    return bad


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002], indirect=True, ids=["022", "077", "002"])
def test_atomic_writers_follow_the_umask(tmp_path: Path, umask: int) -> None:
    atomic_write_bytes(tmp_path / "a" / "b.bin", b"x")
    atomic_write_text(tmp_path / "a" / "c.txt", "x")
    atomic_write_json(tmp_path / "d.json", {"x": 1})
    atomic_write_json(tmp_path / "d.json", {"x": 2})  # replacing keeps the umask mode too
    append_jsonl(tmp_path / "a" / "m.jsonl", {"x": 1})
    assert wrong_modes(tmp_path, umask) == {}
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("umask", [0o022, 0o077], indirect=True, ids=["022", "077"])
def test_run_dir_grid_state_journal_and_report_follow_the_umask(tmp_path: Path, tiny_config: Config, umask: int) -> None:
    """A real (tiny) training run through a grid, its journal and grid.json, then the report and figures."""
    grids = tmp_path / "grids"
    grids.mkdir()
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_config.to_dict(), sort_keys=False))
    (grids / "g.yaml").write_text(
        "name: g\nbase: ../base.yaml\npreset: synthetic\nseeds: [0]\ntable: 4\n"
        "row: 'gamma={loss.gamma}'\naxes: {loss.gamma: [2]}\n")
    results, out = tmp_path / "results", tmp_path / "report"
    g = G.run_grid(grids / "g.yaml", results=results, progress=False, log=lambda m: None)
    assert len(g.ran) == 1 and not g.failed
    run = results / "runs" / g.ran[0]
    for name in ("config.yaml", "provenance.json", "status.json", "metrics.jsonl", "summary.json",
                 "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    assert (results / "grids" / "g" / "grid.json").is_file()
    assert (results / "studies" / "grid-g.log").is_file()
    R.cli_run(table=None, fmt="md", out=out, preset="synthetic", figures=True, results=results,
              echo=lambda s: None, grids_dir=grids)
    assert (out / "table4.md").is_file() and list(out.rglob("*.png"))
    for root in (results, out):
        assert wrong_modes(root, umask) == {}, root
    assert stat.S_IMODE((run / "summary.json").stat().st_mode) == (0o644 if umask == 0o022 else 0o600)
