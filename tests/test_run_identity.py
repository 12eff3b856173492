"""Every committed run keeps its identity (issue 29): ``Config.identity()`` of a run's stored
``config.yaml`` gives the dict it gave when the run was written, whatever the schema became
since (the backbone registry, the config package), so ``Config.hash`` still finds the run.

``run_hashes.json`` holds, per committed run, the hash aakit gave its config.yaml before issue
29 and a digest of its identity without the data set's digest (the data set may be absent
here; the rest of the identity is checked anyway). A run committed later is checked against
its own ``summary.json``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from aakit.config import load_config, load_run_config

REPO = Path(__file__).resolve().parents[1]
RUNS = sorted(p.parent for p in (REPO / "results" / "runs").glob("*/config.yaml"))
KNOWN: dict[str, list[str]] = json.loads(Path(__file__).with_name("run_hashes.json").read_text())


def _without_data(identity: dict) -> str:
    identity["data"].pop("digest", None)
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def _data_here(run: Path) -> bool:
    from aakit.runs import read_config

    root = (read_config(run / "config.yaml")[0].get("data") or {}).get("root", "")
    return (REPO / root).is_dir() or Path(root).is_dir()


def test_the_committed_runs_are_all_known() -> None:
    assert len(RUNS) >= 300 and len(KNOWN) >= 300
    assert set(KNOWN) <= {p.name for p in RUNS}  # a committed run was removed: update run_hashes.json


@pytest.mark.parametrize("run", RUNS, ids=[p.name for p in RUNS])
def test_a_committed_run_keeps_its_identity(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # data.root is relative to the repository
    cfg = load_run_config(run / "config.yaml")
    if run.name in KNOWN:
        want_hash, want_rest = KNOWN[run.name]
        assert _without_data(cfg.identity()) == want_rest
    else:  # written after run_hashes.json: by the schema of today
        summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
        want_hash = summary.get("hash") or cfg.hash()
    if _data_here(run):
        assert cfg.hash() == want_hash
    # the config as aakit writes it today reads back to the same identity
    again = load_config(None, {f"{k}": v for k, v in cfg.to_dict().items()})
    assert again.identity() == cfg.identity()
