"""loss.aa_confidence end to end (issue 14): a tiny training with V from the CAM or the network
runs with CRF workers, and gives other AA losses than V from the CRF."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, tiny_overrides


def _aa(run: Path) -> list[float]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["losses"]["aa"] for r in lines if r.get("kind") == "step" and "aa" in r.get("losses", {})]


def test_each_source_trains_and_changes_the_aa_term(tiny_synth: Path, tmp_path: Path) -> None:
    from aakit.config import load_config
    from aakit.engine.train import train

    got = {}
    for src in ("crf", "cam", "net"):
        over = tiny_overrides(tiny_synth) | {"loss.aa_confidence": src, "pseudo.workers": 1 if src == "cam" else 0,
                                             "loss.label_reassign": False}
        run = train(load_config(REPO / "experiments/synthetic/aa.yaml", over), results=tmp_path / src, progress=False)
        got[src] = _aa(run)
        assert got[src] and all(v == v for v in got[src]), src  # finite, present after the warm-up
    assert got["cam"][0] != pytest.approx(got["crf"][0]) and got["net"][0] != pytest.approx(got["crf"][0])
