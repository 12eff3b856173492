"""Optuna journal files that a full disk or a power cut left torn (``results/studies/*.log``).

Optuna's journal is one JSON record per line, each appended whole under a lock. A write cut short
leaves a last line that is not a whole record (or a whole record without its newline). Optuna
skips such a line when it reads, but its next append is glued onto it, and from then on every read
of the file fails on that line. So before a journal is used:

* :func:`repair_journal` (commands that write the journal: ``aakit grid``, ``aakit search``) keeps
  a copy of the file as it was, ``FILE.torn-<UTC time>``, then drops the torn last record (a whole
  one that only lacks its newline gets the newline instead, and a whole one glued after the torn
  one, as an append by an older aakit left it, is kept: nothing is lost), under the journal's
  lock, and says so in one line;
* :func:`check_journal` (read-only commands: ``--dry-run``, ``--show``, ``report``, ``runs ls``)
  only warns, and changes nothing;
* a line before the last that is not a JSON record is another corruption: :class:`JournalError`
  names the file and the line, and nothing is changed.

:func:`guarded_backend` also repairs a record torn by another process while this one has the
journal open, before it appends (an append must never be glued onto a torn line).

This module imports optuna only when it repairs (the TUI's data layer may use :func:`inspect_journal`).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from aakit.errors import AakitError

Say = Callable[[str], None]
SUFFIX = ".torn-"  # the copy of a repaired journal: FILE.torn-<UTC time>


class JournalError(AakitError):
    """A journal file that cannot be used as it is (a bad line before the last, unreadable)."""


def stderr(line: str) -> None:
    """Where notices go by default: one line on stderr (stdout may be a report or JSON)."""
    print(line, file=sys.stderr, flush=True)


RECORD = b'{"op_code":'  # how every record of Optuna's journal starts


@dataclass(frozen=True)
class Torn:
    """The torn last line of a journal: its number (from 1), where it starts, its size, and the
    whole record in it that is kept (with its newline; empty: the line is dropped)."""

    path: Path
    line: int
    offset: int
    size: int
    keep: bytes = b""

    @property
    def kind(self) -> str:
        """``newline`` (a whole record lacks it), ``glued`` (a whole record after a torn one), ``torn``."""
        if not self.keep:
            return "torn"
        return "newline" if len(self.keep) == self.size + 1 else "glued"

    def what(self) -> str:
        if self.kind == "newline":
            return f"line {self.line} is a whole record without its newline"
        glued = ", with a whole record appended after it" if self.kind == "glued" else ""
        return f"line {self.line} is a torn last record ({self.size - len(self.keep)} bytes, a write cut short{glued})"


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return False


def _torn(path: Path, number: int, offset: int, line: bytes, size: int) -> Torn:
    """A last line that is not a whole record with its newline: what of it is kept.

    A whole record only lacks its newline; a torn record may have a whole one glued after it
    (an append by an aakit before this check, or by a plain Optuna): that one is kept.
    """
    if _is_record(line):
        return Torn(path, number, offset, size, line + b"\n")
    start = line.find(RECORD, 1)
    while start > 0:
        if _is_record(line[start:]):
            return Torn(path, number, offset, size, line[start:] + b"\n")
        start = line.find(RECORD, start + 1)
    return Torn(path, number, offset, size)


def _lines(data: bytes) -> Iterator[tuple[int, int, bytes, bool]]:
    """(number from 1, offset, bytes without the newline, ends with a newline) of each line,
    split at ``\n`` only, as Optuna's reader does."""
    pieces = data.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()  # the file ends with a newline (or is empty)
    offset = 0
    for number, line in enumerate(pieces, start=1):
        newline = offset + len(line) < len(data)
        yield number, offset, line, newline
        offset += len(line) + 1


def inspect_journal(path: Path) -> Torn | None:
    """The torn last line of a journal file, or None (also for a missing or empty file).

    Raises:
        JournalError: a line before the last is not a JSON record, or the file cannot be read.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise JournalError(f"{path}: cannot read the journal ({e.strerror or e})") from None
    lines = list(_lines(data))
    for number, offset, line, newline in lines:
        if number == len(lines):
            if newline and _is_record(line):
                return None
            return _torn(path, number, offset, line, len(data) - offset)
        if not _is_record(line):
            raise JournalError(
                f"{path}: line {number} of {len(lines)} is not a JSON record, and records follow it "
                "(not a torn last write: nothing changed; restore the file from a copy or move it aside)")
    return None


def check_journal(path: Path, say: Say = stderr) -> Torn | None:
    """Warn (one line) about a torn last line of a journal a read-only command opens; change nothing.

    A last line seen without the lock may be a record being written: it must still be torn a
    moment later to be reported.

    Raises:
        JournalError: a bad line before the last (see :func:`inspect_journal`).
    """
    torn = inspect_journal(path)
    if torn is not None:
        time.sleep(0.1)
        torn = inspect_journal(path)
    if torn is not None:
        say(f"aakit: warning: {path}: {torn.what()}; left as it is (read only): the next aakit grid "
            "or aakit search on it recovers it, keeping a copy")
    return torn


def journal_warnings(results: Path) -> list[str]:
    """One warning line for each torn or corrupt journal under ``results/studies/`` (read only)."""
    out: list[str] = []
    for path in sorted((Path(results) / "studies").glob("*.log")):
        try:
            check_journal(path, out.append)
        except JournalError as e:
            out.append(f"aakit: warning: {e}")
    return out


def _backup(path: Path) -> Path:
    """Copy the journal as it is to ``FILE.torn-<UTC time>`` (a new name, never overwritten)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    copy, n = path.with_name(f"{path.name}{SUFFIX}{stamp}"), 1
    while copy.exists():
        copy, n = path.with_name(f"{path.name}{SUFFIX}{stamp}-{n}"), n + 1
    shutil.copy2(path, copy)
    with open(copy, "rb") as f:
        os.fsync(f.fileno())
    return copy


def _cut(torn: Torn) -> None:
    """Replace the torn last line by the whole record kept from it (or by nothing), durably."""
    with open(torn.path, "r+b") as f:
        f.truncate(torn.offset)
        f.seek(torn.offset)
        f.write(torn.keep)
        f.flush()
        os.fsync(f.fileno())


def repair_locked(path: Path, say: Say = stderr) -> Torn | None:
    """:func:`repair_journal`'s work, for a caller that holds the journal's lock."""
    torn = inspect_journal(path)
    if torn is None:
        return None
    try:
        copy = _backup(path)
        _cut(torn)
    except OSError as e:
        raise JournalError(f"{path}: {torn.what()}, but it cannot be recovered ({e.strerror or e})") from None
    done = {"newline": "added the newline", "glued": "dropped the torn record, kept the whole one"}.get(
        torn.kind, "dropped it")
    say(f"aakit: recovered {path}: {torn.what()}; {done} (the file as it was: {copy})")
    return torn


def journal_lock(path: Path) -> Any:
    """The lock Optuna's appends to this journal take (an O_EXCL lock file beside it)."""
    from optuna.storages.journal import JournalFileOpenLock

    return JournalFileOpenLock(str(path))


def repair_journal(path: Path, say: Say = stderr) -> Torn | None:
    """Recover a journal whose last line is torn, under its lock (see the module docstring).

    Returns what was torn, or None if the file was whole (then nothing is written).

    Raises:
        JournalError: a bad line before the last (nothing changed), or the copy cannot be written.
    """
    path = Path(path)
    if inspect_journal(path) is None:  # the common case: no lock taken
        return None
    lock = journal_lock(path)
    lock.acquire()
    try:
        return repair_locked(path, say)
    finally:
        lock.release()


def _tail_whole(path: Path) -> bool:
    """True if the file is empty or its last line is a whole record with its newline.

    Reads the last 64 KiB only (records are far smaller); under the lock, nothing is in flight.
    """
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return True
        f.seek(max(0, size - 65536))
        chunk = f.read()
    if not chunk.endswith(b"\n"):
        return False
    start = chunk.rfind(b"\n", 0, len(chunk) - 1)
    if start < 0 and size > len(chunk):  # a last line longer than the chunk
        return inspect_journal(path) is None
    return _is_record(chunk[start + 1 : -1])


def guarded_backend(path: Path, say: Say = stderr) -> Any:
    """Optuna's JournalFileBackend on ``path`` (open lock) whose appends repair a torn tail first."""
    from optuna.storages.journal import JournalFileBackend

    class GuardedBackend(JournalFileBackend):  # type: ignore[misc]
        """Appends like Optuna's, after repairing a last line another process left torn."""

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            self._lock.acquire()
            try:
                if not _tail_whole(Path(self._file_path)):
                    repair_locked(Path(self._file_path), say)
                text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
                with open(self._file_path, "ab") as f:
                    f.write(text.encode("utf-8"))
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                self._lock.release()

    return GuardedBackend(str(path), lock_obj=journal_lock(path))
