"""Run directories: the one format the engine writes and the report, grids and TUI read.

A run lives in ``results/runs/<name>-<config hash>/``::

    config.yaml       the resolved config (every key, after _base_ and --set)
    provenance.json   command line, overrides, seed, git commit + dirty diff, versions, device
    status.json       {"status": running|finished|failed|interrupted, "pid", "host", "updated", ...}
    metrics.jsonl     one JSON object per line, appended and flushed:
                        {"kind": "step", "epoch", "step", "steps_total", "losses": {...},
                         "learning_rate", "images_per_s", "time"}
                        ("lr" before issue 29, beside losses["lr"], the label reassign
                        loss: read both with learning_rate())
                        {"kind": "epoch", "epoch", "epochs", "miou", "pseudo_miou", "time", ...}
                        {"kind": "mechanism", "epoch", "step", "aa_vs_sa_grad_share", ...} (aakit.mechanism)
                        {"kind": "log", "message", "time"}
    summary.json      final metrics: {"metrics": {"val": {"miou", "iou": [...], "protocol"}, ...},
                      "mechanism": the last mechanism record, ...}
    eval/<split>-<protocol>.json   results of ``aakit eval``
    checkpoints/last.pt

This module imports neither torch nor typer nor textual: the TUI and the report use it.
Every file is written atomically by :mod:`aakit.files` (temp file in the same directory +
``os.replace``), so a ``kill -9`` leaves the old or the new file, never a torn one.
``metrics.jsonl`` is append-only; readers skip a torn last line.

A directory with any of these files is a run. One without ``config.yaml``, or whose
``status.json`` / ``summary.json`` is not a JSON object, is *corrupt* (:func:`load_run` gives
the reason, e.g. ``"status.json: not valid JSON"``): readers show it as such, never as running.
"""
from __future__ import annotations

import io
import json
import os
import socket
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from aakit import yamlio

# The atomic helpers and the JSON readers moved to aakit.files (issue 29); their names stay
# importable from here for one release.
from aakit.files import (  # noqa: F401
    JsonlTail,
    _create_temp,
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    naming,
    parse_jsonl,
    read_json,
)

STATUSES = ("running", "finished", "failed", "interrupted", "stale", "corrupt")
#: Files whose presence makes a directory a run directory (whole or damaged).
RUN_FILES = ("config.yaml", "status.json", "metrics.jsonl", "summary.json", "provenance.json")


def write_confusions(path: Path, arrays: dict[str, Any]) -> None:
    """Per-image confusion matrices of an evaluation, compressed (``np.savez_compressed``):
    ``{slot: (N, C, C) int}``, e.g. ``eval/val-ss-confusions.npz``, written atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v, dtype=np.int64) for k, v in arrays.items()})
    atomic_write_bytes(Path(path), buf.getvalue())


def read_confusions(path: Path) -> dict[str, Any] | None:
    """What :func:`write_confusions` wrote, or None if the file is absent or unreadable."""
    try:
        with np.load(Path(path)) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):
        return None


def learning_rate(record: dict[str, Any]) -> Any:
    """The learning rate of a step record: ``learning_rate``, or ``lr`` in runs written before
    issue 29 (the name clashed with the label reassign loss ``losses["lr"]``). None if neither."""
    return record["learning_rate"] if "learning_rate" in record else record.get("lr")


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """All complete records of a ``metrics.jsonl`` (see :func:`parse_jsonl`)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return [], []
    return parse_jsonl(text)


# ----------------------------------------------------------------------------- names
_NAME_BYTES = 200  # a run directory's name is this, "-" and the hash: within NAME_MAX (255 bytes)


def _name_char(c: str) -> bool:
    """Kept in a run name: ASCII letters, digits and ``. _ + -``, and the letters, marks and
    digits of any other script (Unicode categories L*, M*, N*). Never a path separator
    (``/``, ``\\``, ``∕``, ``／``), a control character, a space or a symbol."""
    if c.isascii():
        return c.isalnum() or c in "._+-"
    return unicodedata.category(c)[0] in "LMN"


def safe_name(name: str) -> str:
    """A run name that cannot escape its directory: ``../x y`` -> ``x-y``, ``データ`` stays.

    Each run of other characters becomes one ``-`` (the name is NFC-normalised first, so the
    two spellings of ``é`` are one name); at most 80 characters and 200 bytes of UTF-8.
    """
    out: list[str] = []
    for c in unicodedata.normalize("NFC", name):
        if _name_char(c):
            out.append(c)
        elif not out or out[-1] != "\0":
            out.append("\0")  # a run of refused characters: one "-"
    cleaned = "".join(out).replace("\0", "-").strip(".-")[:80]
    while len(cleaned.encode("utf-8")) > _NAME_BYTES:
        cleaned = cleaned[:-1]
    return cleaned or "run"


def run_dir_name(name: str, config_hash: str) -> str:
    return f"{safe_name(name)}-{config_hash}"


def start_of(run: Path) -> str | None:
    """The first 16 hex digits of the sha256 of the pre-trained checkpoint a run started from
    (``provenance.json``'s ``init_checkpoint``), or None (no such start, or no record).

    Two runs of a pair share their pre-training only if these agree: a pre-training trained again
    on a processor with other vector units (AVX-512 or not) gives other bits, and so another start."""
    info = read_json(Path(run) / "provenance.json")
    ck = info.get("init_checkpoint") if isinstance(info, dict) else None
    sha = ck.get("sha256") if isinstance(ck, dict) else None
    return sha[:16] if isinstance(sha, str) else None


def same_start(a: str | None, b: str | None) -> bool | None:
    """Whether two runs started from the same checkpoint; None where either start is not recorded."""
    return None if a is None or b is None else a == b


def pid_alive(pid: int | None, host: str | None = None) -> bool | None:
    """True/False if the process can be checked on this host, None if it cannot."""
    if not pid:
        return None
    if host and host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


# ----------------------------------------------------------------------------- reading
@dataclass
class RunInfo:
    """What the report and the TUI know about one run directory."""

    path: Path
    status: str
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    status_info: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    problem: str | None = None  # why the directory is corrupt (status "corrupt"), else None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def steps(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("kind") == "step"]

    @property
    def epochs(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("kind") == "epoch"]

    @property
    def best_miou(self) -> float | None:
        vals = [r["miou"] for r in self.epochs if isinstance(r.get("miou"), (int, float))]
        return max(vals) if vals else None

    @property
    def progress(self) -> float:
        """Fraction done in [0, 1] from the last step record."""
        if self.status == "finished":
            return 1.0
        steps = self.steps
        if not steps:
            return 0.0
        last = steps[-1]
        total = last.get("steps_total") or 0
        return min(1.0, (last.get("step", 0)) / total) if total else 0.0


def run_status(status_info: dict[str, Any], metrics_path: Path, stale_after: float = 600.0) -> str:
    """running / finished / failed / interrupted / stale.

    A run that says it is running is *stale* if its process is gone (same host) or its
    metrics file has not changed for ``stale_after`` seconds.
    """
    status = status_info.get("status", "running") if status_info else "running"
    if status != "running":
        return status
    alive = pid_alive(status_info.get("pid"), status_info.get("host")) if status_info else None
    if alive is False:
        return _finished_or_stale(metrics_path)
    # last sign of life: the metrics file, the status file's stamp, or (nothing yet) the config
    stamps = [float(status_info.get("updated", 0) or 0) if status_info else 0.0]
    for p in (metrics_path, metrics_path.parent / "config.yaml"):
        try:
            stamps.append(p.stat().st_mtime)
            break
        except OSError:
            continue
    last = max(stamps)
    if last and time.time() - last > stale_after:
        return _finished_or_stale(metrics_path)
    return "running"


def _finished_or_stale(metrics_path: Path) -> str:
    """A dead "running" run is finished if its summary says so (killed between the two writes)."""
    summary = read_json(metrics_path.parent / "summary.json")
    return "finished" if isinstance(summary, dict) and summary.get("status") == "finished" else "stale"


def read_status(path: Path) -> tuple[dict[str, Any], str | None]:
    """(content, problem) of a run's ``status.json``.

    A missing file is no problem (a run between its first two writes, or an old one); a file
    that is not a JSON object is: ``"status.json: not valid JSON"``. Written atomically, it is
    never torn by a crash, so a bad one means damage (a full disk, a copy cut short, a hand edit).
    """
    data, problem = _read_object(Path(path), "status.json")
    problem = problem or _status_problem(data)
    return ({} if problem else data), problem


#: What ``status.json``'s fields hold (``null`` is allowed for all but ``status``).
_STATUS_FIELDS: dict[str, tuple[type, ...]] = {
    "pid": (int,), "host": (str,), "updated": (int, float), "started": (int, float), "step": (int,),
    "steps_total": (int,), "world_size": (int,), "error": (str,),
}
_WRITTEN = ("running", "finished", "failed", "interrupted")  # what the engine writes


def _status_problem(info: dict[str, Any]) -> str | None:
    """Why a ``status.json`` object is corrupt (a field of the wrong type), else None:
    ``{"status": 42}`` says ``"status.json: status = 42 (should be one of running, ...)"``."""
    if "status" in info and info["status"] not in _WRITTEN:
        return f"status.json: status = {_shown(info['status'])} (should be one of {', '.join(_WRITTEN)})"
    for key, kinds in _STATUS_FIELDS.items():
        value = info.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            what = "a text" if kinds == (str,) else "an integer" if kinds == (int,) else "a number"
            return f"status.json: {key} = {_shown(value)} (should be {what})"
    return None


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:39] + "…"


def read_summary(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(content or None if missing, problem) of a run's ``summary.json``; see :func:`read_status`."""
    path = Path(path)
    if not path.exists():
        return None, None
    data, problem = _read_object(path, "summary.json")
    return (None if problem else data), problem


def _read_object(path: Path, label: str) -> tuple[dict[str, Any], str | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError) as e:
        return {}, f"{label}: cannot read ({getattr(e, 'strerror', None) or type(e).__name__})"
    try:
        data = json.loads(text)
    except ValueError:
        return {}, f"{label}: not valid JSON" + (" (empty)" if not text.strip() else "")
    if not isinstance(data, dict):
        return {}, f"{label}: not a JSON object"
    return data, None


def read_config(path: Path) -> tuple[dict[str, Any], str | None]:
    """(content, problem) of a run's ``config.yaml``: missing, empty or not a mapping is a problem."""
    import yaml  # local: keep `import aakit.runs` light

    path = Path(path)
    try:
        data = yamlio.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, "no config.yaml"
    except (OSError, UnicodeDecodeError) as e:
        return {}, f"config.yaml: cannot read ({getattr(e, 'strerror', None) or type(e).__name__})"
    except yaml.YAMLError:
        return {}, "config.yaml: not valid YAML"
    if data is None:
        return {}, "config.yaml: empty"
    if not isinstance(data, dict):
        return {}, "config.yaml: not a mapping"
    return data, None


def load_run(path: Path, stale_after: float = 600.0, with_records: bool = True) -> RunInfo:
    """What is known about one run directory; a damaged one has status ``corrupt`` and a ``problem``."""
    path = Path(path)
    config, config_problem = read_config(path / "config.yaml")
    status_info, status_problem = read_status(path / "status.json")
    summary, summary_problem = read_summary(path / "summary.json")
    records, errors = read_metrics(path / "metrics.jsonl") if with_records else ([], [])
    problem = "; ".join(p for p in (config_problem, status_problem, summary_problem) if p) or None
    status = "corrupt" if problem else run_status(status_info, path / "metrics.jsonl", stale_after)
    return RunInfo(path, status, config, summary, status_info, records, errors, problem)  # the fields in order


def is_run_dir(path: Path) -> bool:
    """A directory holding any file of :data:`RUN_FILES` (hidden ones, like ``.locks``, are not runs)."""
    path = Path(path)
    return path.is_dir() and not path.name.startswith(".") and any((path / f).exists() for f in RUN_FILES)


def iter_run_dirs(results: Path) -> Iterator[Path]:
    """Run directories under ``results`` (``results/runs/*`` or ``results`` itself holding runs).

    A damaged run (no config.yaml, say) is listed too, so that readers show it as corrupt
    rather than hide it.
    """
    results = Path(results)
    roots = [results / "runs", results]
    seen: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            continue
        for p in sorted(root.iterdir()):
            if p not in seen and is_run_dir(p):
                seen.add(p)
                yield p


def list_runs(results: Path, stale_after: float = 600.0) -> list[RunInfo]:
    return [load_run(p, stale_after) for p in iter_run_dirs(results)]
