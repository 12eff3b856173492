"""``aakit search FILE --dashboard [--port N]``: optuna-dashboard on the study's storage.

optuna-dashboard is an optional dependency (``pip install 'aakit[search]'``); it serves the
storage read by Optuna (the journal file ``results/studies/search-<name>.log``, or the
``--storage`` URL) on ``127.0.0.1:PORT`` until Ctrl-C.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from aakit.experiment import studies
from aakit.experiment.paired import PairedError, Search


def serve(search: Search, *, results: Path, storage: str | None, port: int, echo: Callable[[str], None],
          host: str = "127.0.0.1") -> None:
    """Serve the study's storage with optuna-dashboard (blocks); PairedError (one line) if the
    package is missing, the study never ran, or the port is out of range."""
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise PairedError("--dashboard: optuna-dashboard is not installed (pip install 'aakit[search]')") from None
    if not 0 < port < 65536:
        raise PairedError(f"--port {port}: expected 1..65535")
    default = studies.default_storage_path(Path(results), "search", search.name)
    if storage is None and not default.exists():
        raise PairedError(f"no study {search.study_name} in {default} (run the search first)")
    st = studies.open_storage(storage, default, read_only=True)
    echo(f"optuna-dashboard on {studies.describe_storage(storage, default)}: http://{host}:{port}/ "
         f"(study {search.study_name}; Ctrl-C stops it)")
    run_server(st, host=host, port=port)
