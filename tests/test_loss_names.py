"""The TUI reads a run's loss terms from the run (its step records), not from a fixed list: a
term added to the loss table shows up without touching the TUI."""
from __future__ import annotations

import json
from pathlib import Path

from aakit.tui.data import RunTracker, loss_label, loss_names


def _run(root: Path, name: str, steps: list[dict[str, float]]) -> Path:
    d = root / "runs" / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(f"name: {name}\n")
    (d / "status.json").write_text(json.dumps({"status": "finished"}))
    lines = [{"kind": "step", "step": i + 1, "losses": losses} for i, losses in enumerate(steps)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return d


def _detail(run: Path):  # noqa: ANN202
    tracker = RunTracker(run)
    tracker.update()
    return tracker.detail(tracker.row())


def test_loss_names_come_from_the_records_in_the_order_they_appear(tmp_path: Path) -> None:
    warm_up = {"cls": 0.7, "total": 0.7}
    a = _detail(_run(tmp_path, "a", [warm_up, {"cls": 0.6, "ce": 2.0, "ent": 0.1, "total": 2.7}]))
    b = _detail(_run(tmp_path, "b", [warm_up, {"cls": 0.6, "ce": 2.0, "aa": 1.2, "lr": 0.1, "total": 3.9}]))
    assert loss_names([a]) == ("cls", "ce", "ent")
    assert loss_names([a, b]) == ("cls", "ce", "ent", "aa", "lr")  # the union, for the compare view
    assert [loss_label(k) for k in ("cls", "aa", "ent", "total")] == ["CLS", "AA", "ENT", "total"]
