"""Writing run directories (the format is described in :mod:`aakit.runs`).

:class:`RunWriter` owns one run directory: the resolved config, provenance, status, the
append-only metrics log, the summary and checkpoints. Every file but ``metrics.jsonl`` is
replaced atomically; checkpoints are read back with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

import aakit
from aakit.config import Config, save_config
from aakit.data.identity import data_digest, identity_files
from aakit.errors import AakitError, reason
from aakit.files import append_jsonl, atomic_write_bytes, atomic_write_json, read_json
from aakit.redact import redact_argv, redact_text
from aakit.runs import run_dir_name, safe_name


class CheckpointError(AakitError):
    """A checkpoint that cannot be used (truncated, tampered, from another config)."""


class RunNameTaken(AakitError):
    """A run directory that belongs to another run (another config, or another name)."""


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def _portable_command(argv: list[str]) -> list[str]:
    """The command as typed: the program by its name, not the install path (``.../bin/aakit``),
    so a committed run summary names no machine path."""
    argv = list(argv)
    if argv and os.path.isabs(argv[0]):
        argv[0] = os.path.basename(argv[0])
    return argv


def source_checkout() -> Path | None:
    """The git checkout aakit runs from, or None when it is installed (a wheel in a venv that
    may sit inside the user's own repository: its commit is not aakit's)."""
    repo = Path(__file__).resolve().parents[2]
    return repo if (repo / ".git").exists() and (repo / "pyproject.toml").is_file() else None


def provenance(cfg: Config, *, command: list[str] | None, overrides: list[str], device: str) -> dict[str, Any]:
    """Everything needed to say where a number came from, with no secret in it.

    ``git_dirty`` and ``git_diff``: uncommitted changes to the checkout outside ``results/`` (a
    grid's own state file changes while it runs; it did not make the number). The command line,
    the overrides and the uncommitted diff are redacted
    (:mod:`aakit.redact`): ``--storage postgresql://user:PASSWORD@host/db`` is recorded as
    ``postgresql://user:***@host/db``, ``--token X`` as ``--token ***``.
    """
    repo = source_checkout()
    commit = _git(["rev-parse", "HEAD"], repo) if repo else None
    # results/ holds outputs (run summaries, a running grid's state): not what made the number
    diff = _git(["diff", "HEAD", "--", ".", ":(exclude)results"], repo) if repo else None
    versions: dict[str, str] = {"aakit": aakit.__version__, "python": platform.python_version(),
                                "torch": torch.__version__}
    for mod in ("numpy", "pydensecrf", "optuna", "PIL"):
        try:
            m = __import__(mod)
            versions[mod] = str(getattr(m, "__version__", "unknown"))
        except ImportError:
            versions[mod] = "missing"
    return {
        "command": redact_argv(_portable_command(command if command is not None else sys.argv)),
        "overrides": redact_argv(overrides),
        "seed": cfg.train.seed,
        "config_hash": cfg.hash(),
        "git_commit": commit.strip() if commit else None,
        "git_dirty": bool(diff),
        "git_diff": redact_text(diff or ""),
        "versions": versions,
        "device": device,
        "cuda": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "created": time.time(),
        "data": data_identity(cfg),
    }


def data_identity(cfg: Config) -> dict[str, Any] | None:
    """What identifies the data set a run saw: the digest that enters the run's hash
    (:func:`aakit.data.identity.data_digest`: ``meta.json``, or VOC's split files and label
    cache) and, for the embedded benchmark, its name, version, seed and the sha256 of its whole
    ``meta.json`` (knobs included); None when the data set has no such files."""
    root, splits = cfg.data.root, (cfg.data.train_split, cfg.data.val_split)
    digest = data_digest(root, splits)
    if digest is None:
        return None
    out: dict[str, Any] = {"digest": digest, "files": [f.name for f in identity_files(root, splits)]}
    try:
        raw = (Path(root) / "meta.json").read_bytes()
        meta = json.loads(raw)
    except (OSError, ValueError):
        return out
    if isinstance(meta, dict):
        out |= {"name": meta.get("name"), "version": meta.get("version"), "seed": meta.get("seed"),
                "meta_sha256": hashlib.sha256(raw).hexdigest()[:16]}
    return out


def recorded_hash(run: Path, cfg: Config) -> str:
    """The hash a run was created under (its ``provenance.json``), so a run stays loadable after
    its data set moved or the identity rules changed; ``cfg.hash()`` if it recorded none."""
    prov = read_json(Path(run) / "provenance.json")
    h = prov.get("config_hash") if isinstance(prov, dict) else None
    return h if isinstance(h, str) and h else cfg.hash()


class RunWriter:
    """One run directory ``<results>/runs/<name>-<hash>/``."""

    def __init__(self, results: Path, cfg: Config, name: str | None = None) -> None:
        self._at(Path(results) / "runs" / run_dir_name(name or cfg.name, cfg.hash()), cfg)

    @classmethod
    def open(cls, path: Path, cfg: Config) -> RunWriter:
        """The existing run directory ``path`` (to resume it), whatever its name and hash: a run
        keeps the directory it was created in (its hash is read from its provenance)."""
        writer = cls.__new__(cls)
        writer._at(Path(path), cfg)
        return writer

    def _at(self, path: Path, cfg: Config) -> None:
        self.cfg = cfg
        self.path = path
        self.metrics_path = self.path / "metrics.jsonl"
        self.ckpt_path = self.path / "checkpoints" / "last.pt"

    # -- life cycle -----------------------------------------------------------------
    def exists(self) -> bool:
        return (self.path / "config.yaml").exists()

    def require_own(self, name: str) -> None:
        """Refuse a directory another run made (:class:`RunNameTaken`) before anything reads or
        writes it: one whose provenance records another config hash (a copied or renamed
        directory), or another name that makes the same directory name (``my run`` and
        ``my/run`` are both ``my-run``). Runs from before names were recorded pass."""
        prov = read_json(self.path / "provenance.json")
        if not isinstance(prov, dict):
            return
        recorded, want = prov.get("config_hash"), self.cfg.hash()
        if isinstance(recorded, str) and recorded and recorded != want:
            raise RunNameTaken(f"{self.path}: holds the run of another configuration (config {recorded}, "
                               f"not {want}); give another --name, or move that directory away")
        owner = prov.get("name")
        if isinstance(owner, str) and owner != name:
            raise RunNameTaken(f"--name {name!r}: {self.path} is the run named {owner!r} (both names make "
                               f"the directory name {safe_name(name)!r}); give another --name")

    def summary(self) -> dict[str, Any] | None:
        return read_json(self.path / "summary.json")

    def is_finished(self) -> bool:
        """Finished: ``summary.json`` says so *and* ``status.json`` agrees (finished, at its last
        step). A summary alone is not enough: a retraining interrupted after an earlier summary
        was written left a finished summary beside an interrupted status (issue 33)."""
        s = self.summary()
        if not (s and s.get("status") == "finished"):
            return False
        st = read_json(self.path / "status.json")
        if not isinstance(st, dict):
            return True  # a run from before status.json
        step, total = st.get("step"), st.get("steps_total")
        return st.get("status") == "finished" and not (isinstance(step, int) and isinstance(total, int)
                                                        and step != total)

    def set_summary_aside(self) -> Path | None:
        """A (re)started run's earlier ``summary.json`` -> ``summary.before-<UTC time>.json``: it
        describes weights that are being replaced, and must not make the run look finished."""
        old = self.path / "summary.json"
        if not old.exists():
            return None
        aside = old.with_name(f"summary.before-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json")
        os.replace(old, aside)
        return aside

    def create(self, prov: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        save_config(self.cfg, self.path / "config.yaml")
        atomic_write_json(self.path / "provenance.json", prov)

    def remove_temp_files(self) -> list[Path]:
        """Delete temp files of atomic writes a killed process left behind (its own files only).

        ``atomic_write_bytes`` names them ``.<file>.<random>.tmp``; a ``kill -9`` between the
        write and the rename leaves one, which may be as large as a checkpoint.
        """
        removed = []
        for folder in (self.path, self.ckpt_path.parent):
            for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
                try:
                    tmp.unlink()
                    removed.append(tmp)
                except OSError:
                    pass
        return removed

    def record_resume(self, step: int, prov: dict[str, Any]) -> None:
        """Keep the first provenance; add this resume (step, command, commit, time) to it."""
        old = read_json(self.path / "provenance.json") or prov
        old.setdefault("resumes", []).append(
            {k: prov.get(k) for k in ("command", "git_commit", "git_dirty", "host", "device", "created")} | {"step": step}
        )
        old["resumed_from_step"] = step
        atomic_write_json(self.path / "provenance.json", old)

    def begin(self, prov: dict[str, Any], *, resume_step: int | None = None, keep_epochs: int = 0) -> None:
        """Before the first step. A fresh run (``resume_step`` None; also a run killed before its
        first checkpoint) writes its config, provenance and an empty metrics log; a resumed run
        drops the metric lines its checkpoint does not cover and adds the resume to its provenance.
        """
        self.remove_temp_files()  # left by a process killed in the middle of a write
        self.set_summary_aside()
        if resume_step is None:
            self.create(prov)
            self.reset_metrics()
        else:
            self.truncate_metrics(resume_step, keep_epochs=keep_epochs)
            self.message(f"resumed from step {resume_step}")
            self.record_resume(resume_step, prov)

    def set_status(self, status: str, **extra: Any) -> None:
        """Write ``status.json``: ``status``, this process, the time and ``extra`` (``error``:
        the one line of a failure, kept only while the run is failed)."""
        info = read_json(self.path / "status.json")
        info = info if isinstance(info, dict) else {}
        info.pop("error", None)
        info.update(
            status=status,
            pid=os.getpid(),
            host=socket.gethostname(),
            updated=time.time(),
            **extra,
        )
        info.setdefault("started", time.time())
        atomic_write_json(self.path / "status.json", info)

    def log(self, record: dict[str, Any]) -> None:
        record.setdefault("time", time.time())
        append_jsonl(self.metrics_path, record)

    def message(self, text: str) -> None:
        self.log({"kind": "log", "message": redact_text(text)})

    def reset_metrics(self) -> None:
        """Start an empty metrics log (a restart from step 0 redoes every line)."""
        atomic_write_bytes(self.metrics_path, b"")

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.path / "summary.json", summary)

    def truncate_metrics(self, keep_until_step: int, keep_epochs: int | None = None) -> None:
        """On resume: drop metric lines written after the checkpoint (they will be redone).

        Args:
            keep_until_step: the checkpoint's step; later step and epoch lines go.
            keep_epochs: epochs whose end-of-epoch work the checkpoint includes; records of
                later epochs go too (an evaluation logged just before a crash is redone).
        """
        from aakit.runs import read_metrics

        records, _ = read_metrics(self.metrics_path)
        kept = []
        for r in records:
            if r.get("kind") == "step" and r.get("step", 0) > keep_until_step:
                continue
            end_of_epoch = r.get("kind") in ("epoch", "mechanism")  # both redone with their epoch
            if end_of_epoch and r.get("step", 0) > keep_until_step:
                continue
            if end_of_epoch and keep_epochs is not None and r.get("epoch", 0) > keep_epochs:
                continue
            kept.append(r)
        import json

        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in kept)
        atomic_write_bytes(self.metrics_path, text.encode())

    # -- checkpoints ----------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any], path: Path | None = None) -> None:
        """Write ``state`` atomically to ``checkpoints/last.pt`` (or ``path``)."""
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(path or self.ckpt_path, buf.getvalue())

    def load_checkpoint(self) -> dict[str, Any] | None:
        if not self.ckpt_path.exists():
            return None
        return load_checkpoint_file(self.ckpt_path, expect_hash=self.run_hash())

    def run_hash(self) -> str:
        """The hash this run was created under (a resumed older run keeps its own)."""
        return recorded_hash(self.path, self.cfg)


def committed_run(path: Path) -> bool:
    """Whether the run directory ``path`` is committed evidence: its ``status.json`` or
    ``summary.json`` is tracked by git. aakit never rewrites such a run (issue 33); False where
    there is no git or no repository."""
    path = Path(path)
    if not path.is_dir():
        return False
    out = _git(["ls-files", "--", "status.json", "summary.json"], path)
    return bool(out)


def checkpoint_record(ckpt: Path, state: dict[str, Any]) -> dict[str, Any]:
    """What a run that starts from ``ckpt`` records of it: the run, step, epoch and sha256."""
    h = hashlib.sha256()
    with open(ckpt, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    run = ckpt.parent.parent.name if ckpt.parent.name == "checkpoints" else None
    epoch = state.get("epochs_done", state.get("epoch"))  # a last.pt / a best.pt
    return {"run": run, "file": ckpt.name, "step": state.get("step"), "epoch": epoch, "sha256": h.hexdigest()}


def load_checkpoint_file(path: Path, expect_hash: str | None = None) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); refuse a broken or foreign one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason(e, 200)})") from None
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise CheckpointError(f"{path}: not an aakit checkpoint (no model/step entries)")
    if expect_hash is not None and state.get("config_hash") != expect_hash:
        raise CheckpointError(
            f"{path}: checkpoint belongs to config {state.get('config_hash')}, not {expect_hash}"
        )
    return state
