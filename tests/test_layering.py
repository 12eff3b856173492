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
    "aakit.method.losses",
    "aakit.method.pseudo",
    "aakit.method.crf",
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
    "aakit.method",
    "aakit.method.objective",
    "aakit.method.step",
    "aakit.method.targets",
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


ROOT = Path(__file__).resolve().parents[1]
#: the method's modules before issue 29, now shims of aakit.method (kept for one release)
OLD_METHOD_MODULES = {"aakit.losses", "aakit.objective", "aakit.pseudo", "aakit.pseudo_torch", "aakit.crf",
                      "aakit.crf_torch", "aakit.engine.targets"}


def _all_imports(path: Path) -> set[str]:
    """Every dotted name ``path`` imports (``from a import b`` gives ``a`` and ``a.b``), at any depth."""
    import ast

    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


def _module_files(package: str) -> dict[str, Path]:
    base = ROOT.joinpath(*package.split("."))
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in base.rglob("*.py")}


def _method_submodules() -> set[str]:
    return set(_module_files("aakit.method")) - {"aakit.method"}


@pytest.mark.parametrize("module", sorted(set(_module_files("aakit.engine")) - {"aakit.engine.targets"}))
def test_the_engine_reaches_the_method_only_through_aakit_method(module: str) -> None:
    """Issue 29: the engine calls the method as detectron2's run_step calls the model: through the
    package's names (``from aakit.method import losses_of_batch``), never a submodule of it nor the
    old top-level modules (shims now)."""
    names = _all_imports(_module_files("aakit.engine")[module])
    bad = sorted(names & (_method_submodules() | OLD_METHOD_MODULES))
    assert not bad, f"{module} imports {bad}: import from aakit.method instead"


@pytest.mark.parametrize("module", sorted(_module_files("aakit.method")))
def test_the_method_imports_neither_engine_nor_cli_nor_tui(module: str) -> None:
    names = _all_imports(_module_files("aakit.method")[module])
    bad = sorted(n for n in names if n.split(".")[0] in ("typer", "textual", "click")
                 or n.startswith(("aakit.engine", "aakit.cli", "aakit.tui", "aakit.experiment", "aakit.bench"))
                 or n in OLD_METHOD_MODULES)
    assert not bad, f"{module} imports {bad}"


def test_the_layering_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The checks above would catch an engine module importing a method submodule."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from aakit.method.pseudo.labeler import PseudoLabeler\n"
                   "from aakit.method import step, losses_of_batch\n", encoding="utf-8")
    names = _all_imports(bad)
    assert names & _method_submodules() == {"aakit.method.pseudo.labeler", "aakit.method.step"}


def test_a_crf_worker_loads_no_torch_through_the_method_package() -> None:
    """The CRF workers unpickle aakit.method.pseudo.labeler._job: the method package must stay light."""
    code = ("import sys, aakit.method.pseudo.labeler, aakit.method.crf, aakit.method\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
