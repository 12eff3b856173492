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
    "aakit.runs",
    "aakit.runlist",
    "aakit.experiment.grid",
    "aakit.experiment.search",
    "aakit.experiment.lifecycle",
    "aakit.experiment.launch",
    "aakit.experiment.report",
]


def _loaded_by(module: str, packages: tuple[str, ...], prefixes: tuple[str, ...] = ()) -> str:
    """The modules of ``packages`` (top-level names) or under ``prefixes`` that importing
    ``module`` in a fresh interpreter loads, comma-separated ("" when none)."""
    code = (
        f"import sys, {module}\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {packages!r} or m.startswith({prefixes!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_neither_typer_nor_textual(module: str) -> None:
    bad = _loaded_by(module, ("typer", "textual", "click", "submitit"))
    assert bad == "", f"{module} imports {bad}"


#: The TUI's data layer (and the old path it keeps for one release): what the screens show is
#: read here, without Textual, the engine or torch; the study reader imports Optuna only when
#: a journal file is read.
TUI_DATA = [
    "aakit.tui.data",
    "aakit.tui.layout",
    "aakit.tui.model",
    "aakit.tui.model.rows",
    "aakit.tui.model.curves",
    "aakit.tui.model.configdiff",
    "aakit.tui.model.listing",
    "aakit.tui.model.fmt",
    "aakit.tui.model.tracker",
    "aakit.tui.model.grids",
    "aakit.tui.model.load",
    "aakit.tui.model.poll",
    "aakit.experiment.studystate",
]


def test_every_tui_data_module_is_listed() -> None:
    """A module added to aakit/tui/model/ is checked below (the list cannot fall behind)."""
    root = Path(__file__).resolve().parents[1]
    found = {"aakit.tui.model." + p.stem for p in (root / "aakit" / "tui" / "model").glob("*.py")}
    found = {m.removesuffix(".__init__") for m in found}
    assert found <= set(TUI_DATA), sorted(found - set(TUI_DATA))


@pytest.mark.parametrize("module", TUI_DATA)
def test_tui_data_imports_neither_textual_nor_the_engine(module: str) -> None:
    bad = _loaded_by(module, ("textual", "typer", "torch", "optuna"), ("aakit.engine",))
    assert bad == "", f"{module} imports {bad}"


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
