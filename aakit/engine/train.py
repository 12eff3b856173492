"""Training: RRM's single-stage network with the AA and LR losses (METHOD.md sections 2-4).

:func:`train` assembles a run: the data, the network and its first weights, the optimiser, the
checkpoint to resume from, the run directory, and the :class:`~aakit.engine.trainer.Trainer`
with its hooks (:mod:`aakit.engine.hooks`); the trainer runs the loop and the step
(docs/architecture.md, "How a step flows"); the objective is the loss table of
:mod:`aakit.method.objective`.

Reproducibility: the order of every epoch and the augmentation of every image are drawn
from ``(seed, epoch, index)``, and checkpoints carry the RNG state, so a run resumed from a
checkpoint ends with exactly the numbers of an uninterrupted one (on CPU).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from aakit.config import Config
from aakit.data.identity import require_data_root
from aakit.engine.averaging import averaging_hooks
from aakit.engine.batches import collate as _collate, epoch_batches, iterate_epoch  # noqa: F401 (re-exported)
from aakit.engine.distributed import DistInfo, barrier, broadcast_object, cleanup, init_distributed
from aakit.engine.hooks import (
    Checkpointer,
    EpochCallback,
    EpochCallbackHook,
    EvalHook,
    MechanismHook,
    MetricsLogger,
    PlainProgress,
    ProgressBar,
    SignalHook,
    StatusHook,
    SummaryHook,
    release_signals,
)
from aakit.engine.noise import reinit_new_layers
from aakit.engine.rundir import RunWriter, checkpoint_record, committed_run, load_checkpoint_file, provenance
from aakit.engine.runlock import RunLock
from aakit.engine.tracking import require_backends, tracking_hooks
from aakit.engine.trainer import HookBase, Trainer, TrainingInterrupted  # noqa: F401
from aakit.errors import AakitError
# the method's step and its labels, re-exported for the callers of this module's older interface
from aakit.method import build_objective, compute_losses, losses_of_batch, training_cam, uses_oracle  # noqa: F401
from aakit.files import read_json
from aakit.runs import safe_name


# ----------------------------------------------------------------------------- set-up
def select_device(name: str, dist_info: DistInfo | None = None) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AakitError(f"train.device = {name!r} but no CUDA device is available")
        if dist_info is not None and dist_info.enabled:
            return torch.device("cuda", dist_info.local_rank)
    return torch.device(name)


def seed_everything(seed: int) -> None:
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(model: torch.nn.Module, cfg: Config) -> torch.optim.SGD:
    """SGD with RRM's four parameter groups: backbone w/b at 1x/2x, new w/b at 10x/20x lr.

    Biases carry no weight decay; ``optim.lr_mult`` sets the four multipliers.
    """
    bw, bb, nw, nb = model.param_groups()  # type: ignore[operator]
    o = cfg.optim
    groups = [
        {"params": ps, "lr_mult": m, "weight_decay": wd}
        for ps, m, wd in zip((bw, bb, nw, nb), o.lr_mult, (o.weight_decay, 0.0, o.weight_decay, 0.0))
        if ps
    ]
    for g in groups:
        g["lr"] = o.lr * g["lr_mult"]
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


InitSource = tuple[str | None, dict[str, Any] | None]  # where the first weights came from: a line, a checkpoint's record


def load_initial_weights(model: torch.nn.Module, path: str, *, results: Path | None = None,
                         progress: bool = False, like: Config | None = None) -> InitSource:
    """``model.pretrained``: where the network's first weights come from.

    * an MXNet ``.params`` or a psa-layout ``.pth`` (ImageNet or VOC classification weights);
    * ``imagenet``: MobileNetV2's ImageNet weights from the installed package (backbone: mobilenet_v2);
    * a run directory, or its ``checkpoints/last.pt``: that run's network;
    * a config YAML (``experiments/synthetic/cls.yaml``): the finished run of that config in
      ``results`` — trained first if it is missing (RRM's recipe (b), classification weights
      first, for the embedded preset). It takes the data, network and device of ``like``
      (the run that needs it) but keeps its own ``train.seed``: it stands in for ImageNet
      weights, which every seed of a grid shares, so the seeds of a grid differ only in the
      WSSS training. A file lock keeps concurrent grid workers from training it twice.

    Returns where the weights came from (a line) and, for a run's checkpoint, its record (run,
    step, epoch, sha256: :func:`aakit.engine.rundir.checkpoint_record`). A run's checkpoint that
    is not at the run's last step (an interrupted run) is refused.
    """
    if path == "imagenet":  # a name, not a file: aakit.models.weights finds the installed weights
        from aakit.models import load_pretrained

        return load_pretrained(model, path).summary(), None
    p = Path(path)
    if p.suffix in (".yaml", ".yml"):
        p = _dependency_run(p, results or Path("results"), progress, like) / "checkpoints" / "last.pt"
    if p.is_dir():  # a run directory: start from its last checkpoint
        p = p / "checkpoints" / "last.pt"
    if not p.exists():
        raise AakitError(f"model.pretrained: {path} not found")
    if p.suffix == ".pt":
        state = load_checkpoint_file(p)
        require_last_step(p, state)
        missing, unexpected = model.load_state_dict(state["model"], strict=False)
        bad = [k for k in missing if not k.startswith(("seg_", "embed"))]
        if unexpected or bad:
            raise AakitError(f"model.pretrained: {p} does not fit this network "
                             f"(missing {bad[:3]}, unexpected {list(unexpected)[:3]})")
        record = checkpoint_record(p, state)
        return f"checkpoint {p} (run {record['run']}, step {record['step']}, epoch {record['epoch']})", record
    from aakit.models import load_pretrained

    return load_pretrained(model, str(p)).summary(), None


def require_last_step(ckpt: Path, state: dict[str, Any]) -> None:
    """Refuse the checkpoint of a run that is not at the run's last step (its status.json's
    ``steps_total``): a dependent run must never start from a half-trained pre-training."""
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None
    st = read_json(run / "status.json") if run is not None else None
    total = st.get("steps_total") if isinstance(st, dict) else None
    if isinstance(total, int) and state.get("step") != total:
        raise AakitError(f"model.pretrained: {run} stopped at step {state.get('step')} of {total} (status "
                         f"{st.get('status')}): finish it first (aakit train --resume {run})")


def dependency_config(config: Path, like: Config | None) -> Config:
    """The config of the pre-training run ``config`` (a YAML) as a dependent run ``like`` needs
    it: the same data, network and device as ``like``, its own seed and schedule."""
    from aakit.config import load_config

    inherit: dict[str, Any] = {}
    if like is not None:  # same data, network and device as the run that needs it (own seed)
        d = like.to_dict()
        inherit = {f"data.{k}": v for k, v in d["data"].items()}
        inherit |= {f"model.{k}": v for k, v in d["model"].items() if k != "pretrained"}
        inherit |= {"train.device": like.train.device,
                    "pseudo.workers": like.pseudo.workers, "eval.max_images": like.eval.max_images,
                    "eval.pseudo_images": like.eval.pseudo_images}
    dep = load_config(config, inherit)
    if dep.model.pretrained and Path(dep.model.pretrained).suffix in (".yaml", ".yml"):
        raise AakitError(f"{config}: model.pretrained of a pre-training config may not be another config")
    return dep


def _dependency_run(config: Path, results: Path, progress: bool, like: Config | None) -> Path:
    """The finished run of ``config`` under ``results``, trained now if missing (locked)."""
    import fcntl

    dep = dependency_config(config, like)
    why = ["(model.pretrained of a dependent run)"]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: the ranks train it together
        return train(dep, results=results, progress=progress, command=why, require_checkpoint=True)
    lock_dir = Path(results) / "runs" / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / f"{dep.hash()}.lock", os.O_CREAT | os.O_RDWR, 0o666)  # empty; only locked
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another worker training it: wait for it
        writer = RunWriter(Path(results), dep)
        local = RunWriter(local_results(Path(results)), dep)
        if not any(w.is_finished() and w.ckpt_path.exists() for w in (writer, local)):
            print(dependency_notice(config, dep, writer, Path(results)), file=sys.stderr, flush=True)
        return train(dep, results=results, progress=progress, command=why, require_checkpoint=True)
    finally:
        os.close(fd)


def dependency_notice(config: Path, dep: Config, writer: RunWriter, results: Path) -> str:
    """One line said before a dependency run is trained: which run, why, how many epochs, and
    an ETA from an earlier finished run of the *same* configuration (the same config hash: the
    committed run itself, or a local copy), or none."""
    if writer.is_finished():
        why = "finished, but its weights are not here (checkpoints are not committed)"
    else:
        why = "interrupted: resuming it" if writer.exists() else "not trained yet"
    head = (f"model.pretrained: {config} needs the run {writer.path.name} ({why}); "
            f"training it first: {dep.train.epochs} epochs")
    earlier = []
    for root in (results, local_results(results)):
        for d in sorted((root / "runs").glob(f"*-{dep.hash()}")):
            s = read_json(d / "summary.json")
            if isinstance(s, dict) and s.get("status") == "finished" and s.get("wall_time_s") and s.get("epochs"):
                earlier.append((float(s["wall_time_s"]), int(s["epochs"]), d.name))
    if not earlier:
        return head + " (no finished run of this configuration to estimate its duration)"
    wall, epochs, name = min(earlier)
    eta = wall * dep.train.epochs / max(epochs, 1)
    return head + f", about {_minutes(eta)} ({name} took {_minutes(wall)} on the machine that trained it)"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


# ----------------------------------------------------------------------------- data and losses
class RunData(NamedTuple):
    """The data sets of a run: training images, val images, train images whose pseudo labels are
    scored each epoch (None: not scored), and the number of classes."""

    train: Any
    val: Any
    pseudo: Any
    num_classes: int


def _build_data(cfg: Config) -> RunData:
    from aakit.data.voc import EvalDataset, TrainDataset, load_info

    require_data_root(cfg.data.root, cfg.preset)
    info = load_info(cfg.data.root)
    if info.num_classes != cfg.model.num_classes:
        raise AakitError(
            f"{cfg.data.root}: data set has {info.num_classes} classes but model.num_classes = "
            f"{cfg.model.num_classes}"
        )
    d = cfg.data
    train_set = TrainDataset(
        d.root, d.train_split, crop=d.crop, scale_range=d.scale_range, flip=d.flip,
        mean=d.mean, std=d.std, max_images=d.max_images, supervision=cfg.train.supervision,
        pad_mode=d.pad_mode, masks=uses_oracle(cfg),  # the oracle's V needs masks: refused without them
    )
    val_set = EvalDataset(d.root, d.val_split, mean=d.mean, std=d.std, max_images=cfg.eval.max_images)
    pseudo_set = None
    if cfg.eval.pseudo_images and cfg.train.supervision == "image":
        pseudo_set = EvalDataset(d.root, d.train_split, mean=d.mean, std=d.std, max_images=cfg.eval.pseudo_images)
    for split, ids in ((d.train_split, train_set.ids), (d.val_split, val_set.ids)):
        require_images(d.root, split, ids)
    if len(val_set) == 0:  # refuse before training, not at the end of the first epoch
        raise AakitError(f"{d.root}: {d.val_split} lists no image to evaluate on")
    return RunData(train_set, val_set, pseudo_set, info.num_classes)


def require_images(root: str, split: str, ids: list[str]) -> None:
    """Refuse to start (before anything is written) if a listed image has no JPEG."""
    from aakit.data.voc import DataError, image_path

    missing = [i for i in ids if not image_path(root, i).is_file()]
    if missing:
        raise DataError(f"image {missing[0]}: file not found: {image_path(root, missing[0])} "
                        f"({len(missing)} image(s) of {split} missing; run: aakit data check {root})")


# ----------------------------------------------------------------------------- the assembly
def build_trainer(cfg: Config, data: RunData, writer: RunWriter, device: torch.device, dist_info: DistInfo, *,
                  resuming: bool, results: Path, progress: bool) -> tuple[Trainer, InitSource]:
    """The network with its first weights, the optimiser, and the checkpoint to resume from (the
    run's own, when it has one); returns the trainer and where the first weights came from."""
    from aakit.models import build_model

    model = build_model(dataclasses.replace(cfg.model, pretrained=None)).to(device)
    init: InitSource = (None, None)
    if cfg.model.pretrained:
        init = load_initial_weights(model, cfg.model.pretrained, results=results, progress=progress, like=cfg)
    reinit_new_layers(model, cfg, from_run=init[1] is not None)  # train.init_seed (unset: nothing)
    optimizer = build_optimizer(model, cfg)
    state = writer.load_checkpoint() if (resuming or writer.exists()) else None
    return Trainer(cfg, model, optimizer, data.train, device=device, dist=dist_info, state=state), init


def progress_hook(cfg: Config, title: str) -> HookBase:
    """The rich bar on a terminal; plain lines every ``logging.print_every`` steps without one (a log file)."""
    return ProgressBar(title) if sys.stdout.isatty() else PlainProgress(title, cfg.logging.print_every)


def default_hooks(trainer: Trainer, writer: RunWriter, data: RunData, *, epoch_callback: EpochCallback | None,
                  progress: bool, stop_after_steps: int | None) -> list[HookBase]:
    """A run's hooks in the order they run (:mod:`aakit.engine.hooks`); only rank 0 evaluates,
    logs and writes the status, every rank checkpoints (rank 0 writes), stops and summarises."""
    main = trainer.dist.main
    evaluation = EvalHook(writer, data.val, data.pseudo, data.num_classes) if main else None
    mechanism = MechanismHook(writer, data.train) if main and trainer.cfg.eval.mechanism else None
    trackers = tracking_hooks(trainer.cfg, writer) if main else []  # logging.backends: TensorBoard
    averaging, restore = averaging_hooks(trainer.cfg, evaluation)  # eval.weights: ema | swa (last: none)
    hooks = [
        averaging,  # the averaged weights in the network for the evaluation hooks
        evaluation,
        MetricsLogger(writer) if main else None,
        mechanism,  # after the epoch's line: what AA and LR change at this state (aakit.mechanism)
        *trackers,  # beside the jsonl log: before a stop (SignalHook) can skip the step's point
        progress_hook(trainer.cfg, writer.path.name) if progress and main else None,
        restore,  # the live weights back before the checkpoint (not after the last epoch)
        Checkpointer(writer, trainer.cfg.train.checkpoint_every),
        EpochCallbackHook(epoch_callback) if epoch_callback is not None and main else None,
        SignalHook(stop_after_steps),
        SummaryHook(writer, data.val, data.num_classes, evaluation, mechanism),
        *(h.closer() for h in trackers),  # after the summary: hyper-parameters and final metrics, then close
        StatusHook(writer) if main else None,
    ]
    return [h for h in hooks if h is not None]


def train(
    cfg: Config,
    *,
    results: Path,
    name: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    resume: Path | None = None,
    epoch_callback: EpochCallback | None = None,
    progress: bool = True,
    command: list[str] | None = None,
    stop_after_steps: int | None = None,
    require_checkpoint: bool = False,
) -> Path:
    """Train one run; returns its directory ``results/runs/<name>-<hash>/``.

    Args:
        cfg: the resolved configuration.
        results: results root.
        name: run name (default ``cfg.name``).
        overrides: the ``--set`` items (recorded in provenance).
        resume: continue this run directory from its last checkpoint.
        epoch_callback: called with each epoch record on rank 0; may raise to stop the run
            (e.g. ``optuna.TrialPruned``); the run is then marked interrupted.
        progress: show a rich progress bar.
        command: the command line to record (default ``sys.argv``).
        stop_after_steps: stop (as if interrupted) after this many steps — for tests.
        require_checkpoint: a finished run counts as done only with its checkpoint (a run
            whose weights another run starts from); otherwise it is trained again.

    Raises:
        RunLocked: another process trains this run now (:mod:`aakit.engine.runlock`: the run
            is locked from after the data checks until this function returns or raises).
        RunNameTaken: the run directory of this name belongs to another run
            (:meth:`RunWriter.require_own`).
    """
    require_backends(cfg)  # logging.backends: wandb without its package, before anything is written
    # this process's rank and device (torchrun), and the run directory: a finished run is done
    dist_info = init_distributed(cfg.train.device if cfg.train.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    device = select_device(cfg.train.device, dist_info)
    writer = RunWriter.open(Path(resume), cfg) if resume is not None else RunWriter(Path(results), cfg, name)
    if resume is None:
        writer.require_own(name or cfg.name)  # never another run handed back under this name
    if _done(writer, require_checkpoint, progress and dist_info.main):
        cleanup(dist_info)
        return writer.path
    if committed_run(writer.path):  # evidence: train a local copy (issue 33)
        if resume is not None or Path(results).name == "local":
            raise AakitError(f"--resume {writer.path}: a committed run (tracked by git); aakit does not rewrite "
                             f"it: train it anew under --results {local_results(Path(results))}")
        local = local_results(Path(results))
        copy = RunWriter(local, cfg, name)
        if dist_info.main and not _done(copy, require_checkpoint, say=False):  # a finished copy: its own line
            print(f"{writer.path} is committed (tracked by git) and is not rewritten; "
                  f"{'its weights are not committed: ' if writer.is_finished() else ''}"
                  f"training a local copy in {copy.path}", file=sys.stderr, flush=True)
        cleanup(dist_info)
        return train(cfg, results=local, name=name, overrides=overrides, epoch_callback=epoch_callback,
                     progress=progress, command=command, stop_after_steps=stop_after_steps,
                     require_checkpoint=require_checkpoint)
    if dist_info.main:
        warn_workers(cfg)
    # seeds and data; then the run is this process's (rank 0 locks it) until training ends
    seed_everything(cfg.train.seed + dist_info.rank)
    data = _build_data(cfg)
    with RunLock(writer.path) if dist_info.main else contextlib.nullcontext():
        if not dist_info.enabled and _done(writer, require_checkpoint, progress):  # its last holder finished it
            cleanup(dist_info)
            return writer.path
        return _train_locked(cfg, writer, data, device, dist_info, results=Path(results), resuming=resume is not None,
                             run_name=name or cfg.name, overrides=list(overrides), command=command,
                             epoch_callback=epoch_callback, progress=progress, stop_after_steps=stop_after_steps)


def local_results(results: Path) -> Path:
    """Where the runs that would rewrite committed ones are trained: ``RESULTS/local`` (git-ignored)."""
    return Path(results) / "local"


def _done(writer: RunWriter, require_checkpoint: bool, say: bool) -> bool:
    """A finished run (with its checkpoint, when ``require_checkpoint``) has nothing to train."""
    if not (writer.is_finished() and (writer.ckpt_path.exists() or not require_checkpoint)):
        return False
    if say and require_checkpoint:  # a pre-training another run starts from
        print(f"model.pretrained: the finished run {writer.path}, its weights at its last step", flush=True)
    elif say:
        print(f"already finished: {writer.path} (nothing to train; a new --name or config trains another run)",
              flush=True)
    return True


def _train_locked(cfg: Config, writer: RunWriter, data: RunData, device: torch.device, dist_info: DistInfo, *,
                  results: Path, resuming: bool, run_name: str, overrides: list[str], command: list[str] | None,
                  epoch_callback: EpochCallback | None, progress: bool, stop_after_steps: int | None) -> Path:
    """:func:`train` once the run is this process's: the network, the run directory, the loop."""
    trainer, (init_note, init_ckpt) = build_trainer(cfg, data, writer, device, dist_info, resuming=resuming,
                                                    results=results, progress=progress)
    # rank 0 writes where the numbers come from, and starts (or continues) the run directory
    if dist_info.main:
        prov = provenance(cfg, command=command, overrides=overrides, device=str(device))
        prov.update(name=run_name, world_size=dist_info.world, init=init_note, init_checkpoint=init_ckpt,
                    resumed_from_step=trainer.step or None)
        writer.begin(prov, resume_step=trainer.step if trainer.resumed else None, keep_epochs=trainer.epochs_done)
    barrier(dist_info)

    # the loop: the trainer steps, its hooks evaluate, log, checkpoint, stop and summarise
    trainer.register_hooks(default_hooks(trainer, writer, data, epoch_callback=epoch_callback, progress=progress,
                                         stop_after_steps=stop_after_steps))
    try:
        trainer.train()  # a failure raises (status failed); a stop returns: checkpoint kept, status interrupted
    finally:
        late = release_signals(trainer)  # a Ctrl-C or SIGTERM that came after the last step
    if trainer.outcome == "stopped":
        cleanup(dist_info)
        raise KeyboardInterrupt(f"interrupted at step {trainer.step}; resume with: aakit train --resume {writer.path}")
    if late is not None:  # the run is complete; the stop asked for is honoured now, not forgotten
        cleanup(dist_info)
        raise KeyboardInterrupt(f"stopped ({signal.Signals(late).name}) after the run finished: {writer.path} is "
                                f"complete (summary.json written)")
    # every rank returns rank 0's run directory
    barrier(dist_info)
    path = broadcast_object(dist_info, writer.path)
    cleanup(dist_info)
    return Path(path)  # type: ignore[arg-type]


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def warn_workers(cfg: Config) -> None:
    """One warning line when ``pseudo.workers`` asks for more CRF processes than there are cores
    (they would only compete for them); a warning, not an error: the run still trains."""
    cores, workers = available_cores(), cfg.pseudo.workers
    if cfg.train.supervision == "image" and workers > cores:
        print(f"aakit: warning: pseudo.workers = {workers} CRF worker processes, but this machine gives "
              f"the run {cores} CPU cores; they will compete for them (pseudo.workers <= {cores} is enough)",
              file=sys.stderr, flush=True)
