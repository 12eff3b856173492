"""Optuna storages and the liveness of the trials that grids and searches hand out.

Storage. ``open_storage(None, default)`` gives Optuna's JournalStorage on a file under
``results/studies/`` (every operation is one appended line, taken under a file lock, so several
processes on one machine can share it; SQLite cannot). A URL (``postgresql://user@host/db``,
``mysql://...``, ``sqlite:///file.db``) gives an RDBStorage for many machines; a path ending in
``.log`` or ``journal:PATH`` gives a JournalStorage on that file. Both open in optuna-dashboard.

Liveness. A worker killed with ``kill -9`` (or a machine that died) leaves its trial RUNNING for
ever. Each trial therefore carries who runs it, as user attributes written when it is created::

    host, pid, pid_start (process start time, so a reused pid is not mistaken for the worker),
    session (one per ``aakit grid``/``aakit search`` invocation), heartbeat (unix time)

and a :class:`Heartbeat` thread refreshes ``heartbeat`` every ``interval`` seconds while the
trial runs. A RUNNING trial is *dead* when its process is gone (checked at once on its own
host; a killed process that its parent or init has not reaped yet, a zombie, counts as gone)
or when its heartbeat is older than ``grace`` seconds (any host; this is how another machine's
crash is noticed). :func:`fail_dead_trials` marks dead trials FAIL with
``outcome = "stale"``, which frees their work for the next worker.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from aakit.errors import AakitError
from aakit.experiment import journal
from aakit.redact import MASK, redact_text

optuna.logging.set_verbosity(optuna.logging.WARNING)


class StorageError(AakitError):
    """A study storage that cannot be opened (bad URL, server unreachable, driver missing)."""


# ----------------------------------------------------------------------------- storages
def default_storage_path(results: Path, kind: str, name: str) -> Path:
    """The default journal file of a grid or search: ``results/studies/<kind>-<name>.log``.

    Args:
        results: the results directory.
        kind: ``"grid"`` or ``"search"``.
        name: the grid's or search's name (a search's study may carry a suffix; its file does not).
    """
    return Path(results) / "studies" / f"{kind}-{name}.log"


def is_journal(url: str | None) -> bool:
    """True if ``url`` names a journal file (the default storage is one)."""
    return url is None or url.startswith("journal:") or url.endswith(".log")


def journal_path(url: str | None, default: Path) -> Path | None:
    """The journal file of ``url`` (``default`` when url is None), or None for a database URL."""
    if url is None:
        return Path(default)
    if url.startswith("journal:"):
        return Path(url[len("journal:") :])
    if url.endswith(".log") and "://" not in url:
        return Path(url)
    return None


def describe_storage(url: str | None, default: Path) -> str:
    """A printable name of the storage, without any password."""
    path = journal_path(url, default)
    if path is not None:
        return str(path)
    assert url is not None
    if "://" not in url and "@" in url:  # user:PASSWORD@host/db typed without a scheme
        cred, _, host = url.rpartition("@")
        return f"{cred.split(':')[0]}:{MASK}@{host}" if ":" in cred else url
    return redact_text(url)


def open_storage(url: str | None, default: Path, *, read_only: bool = False,
                 say: journal.Say | None = None) -> BaseStorage:
    """Open (creating if needed) the storage named by ``url``.

    A journal file whose last record a full disk or a power cut left torn is recovered first (a
    copy kept, one line to ``say``), or with ``read_only`` only warned about
    (:mod:`aakit.experiment.journal`).

    Args:
        url: None for the default journal file, a database URL, ``journal:PATH`` or a ``.log`` path.
        default: the journal file used when ``url`` is None.
        read_only: the caller only reads: a torn journal is left as it is (one warning line).
        say: where the recovery line or the warning goes (default: stderr).

    Raises:
        StorageError: one line naming the storage and why it cannot be opened.
        JournalError: a journal with a bad line before its last (file and line named; unchanged).
    """
    path = journal_path(url, default)
    if path is not None:
        return _open_journal(path, read_only, say or journal.stderr)
    assert url is not None
    where = describe_storage(url, default)
    if "://" not in url:
        raise StorageError(
            f"storage {where!r}: not a database URL (postgresql://..., sqlite:///...) nor a .log journal file"
        )
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 5}
        url = _postgres_driver(url, where)
    try:
        rdb = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except ImportError as e:
        raise StorageError(f"storage {where}: database driver missing ({redact_text(str(e).splitlines()[0])})") from None
    except Exception as e:  # sqlalchemy errors: unreachable server, bad credentials, bad URL
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StorageError(f"storage {where}: cannot connect ({redact_text(msg)})") from None
    return optuna.storages.get_storage(rdb)


def _open_journal(path: Path, read_only: bool, say: journal.Say) -> BaseStorage:
    """A JournalStorage on ``path`` (see :func:`open_storage`), its torn last record handled first."""
    if read_only:
        journal.check_journal(path, say)
    elif path.exists():
        journal.repair_journal(path, say)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The open lock (O_EXCL lock file) works on every local file system.
        return optuna.storages.JournalStorage(journal.guarded_backend(path, say))
    except (OSError, ValueError) as e:
        raise StorageError(f"storage {path}: cannot open journal file ({e})") from None


def _postgres_driver(url: str, where: str) -> str:
    """Name the installed driver in a bare ``postgresql://`` URL.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, 2.0 to psycopg2; aakit's
    ``postgres`` extra installs psycopg2-binary. Use whichever is installed.
    """
    if not url.startswith("postgresql://"):
        return url  # the user named a driver: postgresql+psycopg2://, postgresql+psycopg://
    import importlib.util

    if importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    if importlib.util.find_spec("psycopg") is not None:
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    raise StorageError(f"storage {where}: no PostgreSQL driver installed (pip install 'aakit[postgres]')")


def get_or_create_study(storage: BaseStorage, name: str, **kwargs: Any) -> optuna.Study:
    """Load study ``name`` or create it (safe when several processes race to create it).

    Loading comes first: asking a journal to create a study that exists appends a record to the
    file every time, so a mere look (``aakit grid --dry-run``) would change a committed journal.
    """
    try:
        return optuna.load_study(study_name=name, storage=storage, sampler=kwargs.get("sampler"),
                                 pruner=kwargs.get("pruner"))
    except KeyError:  # no such study yet
        return optuna.create_study(storage=storage, study_name=name, load_if_exists=True, **kwargs)


@contextlib.contextmanager
def journal_lock(url: str | None, default: Path) -> Iterator[None]:
    """An exclusive lock beside a journal file (no-op for database storages).

    Used to make "count the trials, then create one" atomic among processes of one machine.
    """
    path = journal_path(url, default)
    if path is None:
        yield
        return
    lock = path.with_name(path.name + ".budget.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- liveness
def _process_start(pid: int) -> float | None:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # no such process, no permission, psutil missing
        return None


def _is_zombie(pid: int) -> bool:
    """True if ``pid`` has exited and only waits to be reaped (it still answers ``kill(pid, 0)``)."""
    try:
        import psutil

        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except Exception:  # gone meanwhile, no permission, psutil missing
        return False


@dataclass(frozen=True)
class Worker:
    """Who runs a trial: written into the trial's user attributes."""

    host: str
    pid: int
    pid_start: float | None
    session: str

    @classmethod
    def current(cls, session: str | None = None) -> "Worker":
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _process_start(pid), session or new_session())

    def attrs(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "pid": self.pid,
            "pid_start": self.pid_start,
            "session": self.session,
            "heartbeat": time.time(),
        }


def new_session() -> str:
    """A fresh id for one grid/search invocation (shared by its worker processes)."""
    return uuid.uuid4().hex[:12]


def process_gone(trial: FrozenTrial) -> bool:
    """True if the trial's worker ran on this host and its process no longer exists."""
    attrs = trial.user_attrs
    if attrs.get("host") != socket.gethostname() or not attrs.get("pid"):
        return False
    pid = int(attrs["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    if _is_zombie(pid):
        # Killed but not yet reaped: a grid worker orphaned by a kill of its parent waits for
        # init, which may take seconds (or forever in a container whose init never reaps).
        return True
    start = attrs.get("pid_start")
    if start is not None:
        now_start = _process_start(pid)
        if now_start is not None and abs(now_start - float(start)) > 1.0:
            return True  # the pid was reused by another process
    return False


def last_heartbeat(trial: FrozenTrial) -> float:
    """Unix time of the trial's last sign of life (heartbeat, else its start)."""
    hb = trial.user_attrs.get("heartbeat")
    if isinstance(hb, (int, float)):
        return float(hb)
    if trial.datetime_start is not None:
        start = trial.datetime_start
        if start.tzinfo is None:  # optuna stores naive local times
            return start.timestamp()
        return start.astimezone(timezone.utc).timestamp()
    return time.time()


def is_live(trial: FrozenTrial, grace: float, now: float | None = None) -> bool:
    """A RUNNING trial whose worker is still there (see the module docstring)."""
    if trial.state != TrialState.RUNNING:
        return False
    if process_gone(trial):
        return False
    now = time.time() if now is None else now
    return now - last_heartbeat(trial) <= grace


def finish_trial(
    storage: BaseStorage,
    trial: FrozenTrial | int,
    state: TrialState,
    value: float | None = None,
    attrs: dict[str, Any] | None = None,
) -> bool:
    """Set user attributes then the final state; False if the trial was already finished."""
    trial_id = trial if isinstance(trial, int) else trial._trial_id
    try:
        for k, v in (attrs or {}).items():
            storage.set_trial_user_attr(trial_id, k, v)
        storage.set_trial_state_values(trial_id, state, None if value is None else [float(value)])
    except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, KeyError):
        return False
    return True


ENDED_BY_WORKER = ("interrupted", "stale")  # FAIL outcomes of the worker's end (Ctrl-C, death), not the config's


def fail_dead_trials(storage: BaseStorage, trials: list[FrozenTrial], grace: float) -> list[int]:
    """Mark every dead RUNNING trial FAIL (``outcome = "stale"``); returns their numbers."""
    now = time.time()
    failed = []
    for t in trials:
        if t.state == TrialState.RUNNING and not is_live(t, grace, now):
            if finish_trial(storage, t, TrialState.FAIL, attrs={"outcome": "stale"}):
                failed.append(t.number)
    return failed


class Heartbeat:
    """Refresh a trial's ``heartbeat`` attribute from a background thread.

    Use as a context manager around the work of a trial::

        with Heartbeat(storage, trial_id, interval=30):
            train(...)
    """

    def __init__(self, storage: BaseStorage, trial_id: int, interval: float = 30.0) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{trial_id}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())
            except Exception:  # finished meanwhile, or the storage hiccuped: try again later
                pass

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)


def utc_now() -> datetime:
    return datetime.now(tz=timezone.utc)
