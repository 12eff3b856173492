"""Atomic file writes and JSON readers: the shared ground of every module that writes a file.

Every file is written atomically (a temp file in the same directory, fsync, ``os.replace``), so
a ``kill -9`` or a full disk leaves the old or the new file, never a torn one; a failed write
names the file (:func:`naming`). A JSONL file is append-only (:func:`append_jsonl`) and its
readers hold back a torn last line (:func:`parse_jsonl`, :class:`JsonlTail`).

Imports neither torch nor typer nor textual; the run-directory format that uses these helpers is
:mod:`aakit.runs`.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

__all__ = [
    "JsonlTail", "append_jsonl", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "naming",
    "parse_jsonl", "read_json",
]


def _create_temp(path: Path) -> tuple[int, str]:
    """Create ``.<name>.<random>.tmp`` beside ``path``, open for writing.

    Its mode is 0666 less the umask, like any file the user creates (``tempfile.mkstemp``
    would make it 0600, and ``os.replace`` would keep that for the final file).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary file name for {path.name}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old or the new file.

    The new file gets the mode of any new file (0666 less the umask: 0644 under umask 022).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = _create_temp(path)
    except OSError as e:
        raise naming(e, path) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise naming(e, path) from e
        raise


def naming(e: OSError, path: Path) -> OSError:
    """``e`` naming ``path``, the file being written: a full disk (``ENOSPC`` from ``write`` or
    ``fsync``, which name no file) or a refused temp file says which file could not be written,
    as ``aakit: error: No space left on device (<path>)``. Same errno, same OSError subclass."""
    if e.errno is None or e.filename == str(path):
        return e
    return OSError(e.errno, e.strerror or str(e), str(path))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any | None:
    """JSON content of ``path``, or None if missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def append_jsonl(path: Path, obj: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk."""
    line = json.dumps(obj, separators=(",", ":")) + "\n"
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise naming(e, Path(path)) from e


def parse_jsonl(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Parse complete lines of a metrics file; returns (records, errors).

    A last line without its newline is a write in progress (or torn by a crash) and is held
    back, not reported. A complete line that is not a JSON object is an error.
    """
    records: list[dict[str, Any]] = []
    errors: list[str] = []
    lines = text.split("\n")
    for i, line in enumerate(lines[:-1], start=1):  # the last piece has no newline yet
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            errors.append(f"line {i}: not JSON: {line[:60]!r}")
            continue
        if not isinstance(obj, dict):
            errors.append(f"line {i}: not a JSON object")
            continue
        records.append(obj)
    return records, errors


class JsonlTail:
    """Incremental reader of a growing JSONL file, by byte offset.

    ``poll()`` returns the records completed since the last call; a partial last line is
    kept until its newline arrives. Used by the TUI's worker threads.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self._pending = b""
        self.line_no = 0

    def poll(self) -> tuple[list[dict[str, Any]], list[str]]:
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self.offset:  # truncated / replaced: start again
                    self.offset, self._pending, self.line_no = 0, b"", 0
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return [], []
        self.offset += len(chunk)
        data = self._pending + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self._pending = data
            return [], []
        self._pending = data[cut + 1 :]
        records: list[dict[str, Any]] = []
        errors: list[str] = []
        for raw in data[:cut].split(b"\n"):
            self.line_no += 1
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8", errors="replace"))
            except ValueError:
                errors.append(f"{self.path.name} line {self.line_no}: not JSON: {raw[:60]!r}")
                continue
            if isinstance(obj, dict):
                records.append(obj)
            else:
                errors.append(f"{self.path.name} line {self.line_no}: not a JSON object")
        return records, errors
