"""The core works without the CLI and the TUI: importing it pulls in neither typer nor textual."""
from __future__ import annotations

import subprocess
import sys

import pytest

CORE = [
    "aakit.config",
    "aakit.presets",
    "aakit.losses",
    "aakit.pseudo",
    "aakit.crf",
    "aakit.metrics",
    "aakit.models",
    "aakit.data.voc",
    "aakit.data.synth",
    "aakit.data.sbd",
    "aakit.data.check",
    "aakit.engine.train",
    "aakit.engine.trainer",
    "aakit.engine.hooks",
    "aakit.objective",
    "aakit.engine.evaluate",
    "aakit.engine.inference",
    "aakit.runs",
    "aakit.experiment.grid",
    "aakit.experiment.search",
    "aakit.experiment.lifecycle",
    "aakit.experiment.report",
]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_neither_typer_nor_textual(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'textual', 'click'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"


def test_the_tui_reads_runs_without_the_engine() -> None:
    """The TUI and report read run directories, never the engine's internals (or torch)."""
    code = (
        "import sys, aakit.tui.data, aakit.runs\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith(('aakit.engine', 'torch')))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
