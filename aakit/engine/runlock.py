"""One training process per run directory: the lock file ``<run>/.train.lock``.

Two ``aakit train`` of the same run at once would both train it, each appending every step to
``metrics.jsonl``. :class:`RunLock` holds an exclusive POSIX record lock (``fcntl.lockf``) on
``<run>/.train.lock`` for as long as the run trains; a second process is refused at once, in one
line naming the holder (:class:`RunLocked`: pid, host and since when, which the holder writes into
the file once it has the lock), and writes nothing.

What it relies on:

* The kernel drops a process's record locks when it exits, however it exits: a ``kill -9`` or a
  crash leaves no stale lock (at most the file, with the dead holder's details, which the next
  holder overwrites). Record locks are owned by a process, not inherited by ``fork``: a forked
  data-loader worker that outlives its trainer for a moment does not keep the run locked.
* NFS: ``lockf`` takes POSIX byte-range locks, which NFS carries to the server (NLM/lockd for
  NFSv2/v3, the protocol's own locking for NFSv4), so processes on different clients exclude
  each other. ``flock`` is no alternative there: Linux >= 2.6.12 emulates it on NFS with the
  same POSIX byte-range locks. A file system mounted ``nolock`` (or one without lock support)
  keeps the locks local to each client; a client that crashes holds its locks until the
  server's lease (NFSv4) or lock recovery (NLM) expires.
* POSIX locks do not exclude threads of one process, and closing any descriptor of the file
  drops them: the process therefore also keeps a registry of the runs it trains, checked before
  the file is opened (a second in-process ``train()`` of the same run is refused too).

A grid or search worker trains its points in its own process (its claims are Optuna trials,
:mod:`aakit.experiment.lifecycle`); the lock is released when ``train()`` returns or raises, so
the worker's next point, or another worker resuming this one, takes it again. On release the
holder removes the file, and the run directory too if the lock file was all it held (a run
refused before its first write leaves nothing behind).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from aakit.errors import AakitError

LOCK_NAME = ".train.lock"
_HELD: set[str] = set()  # runs this process trains (POSIX locks do not exclude its threads)
_HELD_GUARD = threading.Lock()


class RunLocked(AakitError):
    """Another process (or thread) is training this run."""


class RunLock:
    """Holds ``<run>/.train.lock`` from :meth:`acquire` (or ``with``) to :meth:`release`."""

    def __init__(self, run: Path) -> None:
        self.run = Path(run)
        self.path = self.run / LOCK_NAME
        self.fd: int | None = None
        self.created: list[Path] = []  # folders made for the lock, deepest first
        self._key = str(self.run.resolve())

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock or raise :class:`RunLocked`, changing nothing in the run directory."""
        with _HELD_GUARD:
            if self._key in _HELD:
                raise RunLocked(f"{self.run}: being trained by this process (pid {os.getpid()}) already")
            _HELD.add(self._key)
        try:
            self.fd = self._lock_file()
        except BaseException:
            with _HELD_GUARD:
                _HELD.discard(self._key)
            raise
        self._write_holder()

    def _lock_file(self) -> int:
        """The locked descriptor of the lock file as it is now at its path (a holder that
        released removes the file: a descriptor of the removed file is retried)."""
        while True:
            self._make_folders()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_holder(fd)
                os.close(fd)
                if e.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                raise RunLocked(f"{self.run}: being trained by {holder}; wait for it to end "
                                f"(or stop it), then run the command again") from None
            if _same_file(fd, self.path):
                return fd
            os.close(fd)

    def _make_folders(self) -> None:
        missing = [p for p in (self.run, *self.run.parents) if not p.exists()]
        self.run.mkdir(parents=True, exist_ok=True)
        self.created = self.created or missing

    def _write_holder(self) -> None:
        """Who holds the lock, for the message of a refused process (only informative: a full
        disk that refuses these few bytes does not stop the training)."""
        assert self.fd is not None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError:
            pass

    def release(self) -> None:
        """Remove the lock file and let go; then the folders made for it, if nothing else came."""
        if self.fd is None:
            return
        try:
            if _same_file(self.fd, self.path):
                self.path.unlink()
        except OSError:
            pass
        finally:
            os.close(self.fd)
            self.fd = None
            with _HELD_GUARD:
                _HELD.discard(self._key)
        for folder in self.created:
            try:
                folder.rmdir()  # only if empty: a run that wrote anything keeps its directory
            except OSError:
                break
        self.created = []


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_holder(fd: int) -> str:
    """``pid 123 on host since 2024-05-01 12:00:00``, from the lock file (an unknown holder:
    one that has not written it yet)."""
    try:
        info: Any = json.loads(os.pread(fd, 4096, 0).decode("utf-8", errors="replace") or "null")
    except (OSError, ValueError):
        info = None
    if not isinstance(info, dict):
        return "another process (its pid is not written yet)"
    since = info.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
    return f"pid {info.get('pid')} on {info.get('host')} since {when}"
