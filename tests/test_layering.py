"""The core works without the CLI and the TUI: importing it pulls in neither typer nor textual
(nor submitit, which only a --launcher run imports)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    "aakit.engine.tracking",
    "aakit.objective",
    "aakit.mechanism",
    "aakit.engine.evaluate",
    "aakit.engine.inference",
    "aakit.files",
    "aakit.runs",
    "aakit.runlist",
    "aakit.experiment.grid",
    "aakit.experiment.search",
    "aakit.experiment.lifecycle",
    "aakit.experiment.launch",
    "aakit.experiment.report",
]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_neither_typer_nor_textual(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'textual', 'click', 'submitit'))\n"
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


def _imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """The aakit modules ``module`` imports, at any depth of its code (inside functions too)."""
    import ast

    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out |= {n for n in names if n in modules and n != module}
    return out


def test_no_import_circle_in_aakit() -> None:
    """Issue 13: no two modules of aakit import each other, directly or round a longer loop,
    counting the imports inside functions (they only hide a circle)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
             for p in (root / "aakit").rglob("*.py")}
    graph = {m: _imports(p, m, set(files)) for m, p in files.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path + [m, n]
            if n not in state and (loop := visit(n, path + [m])):
                return loop
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            loop = visit(m, [])
            assert loop is None, " -> ".join(loop[loop.index(loop[-1]):])
