"""Training: RRM's single-stage network with the AA and LR losses (METHOD.md sections 2-4).

One step, in the order the paper's Figure 2 draws it::

    images --net--> cls logits, CAM, F^s (embedding), F^c (seg logits)
    L_cls  = multilabel soft margin(cls logits, image labels)
    CAM (multi-scale, no grad) --dCRF x2 (worker pool)--> pseudo labels Y, confidence V
    L_ce   = RRM joint CE(F^c upsampled to the crop, Y)
    L_aa   = affinity_loss(softmax F^c, Y at stride, V at stride)      (eqs. 8-12)
    L_lr   = label_reassign_loss(F^s, Y at stride, beta)  last 2 epochs  (eqs. 13-17)
    total  = L_cls + L_ce + lambda1 L_aa + lambda2 L_lr

With ``pseudo.overlap`` (single process, no AMP) the CRF workers run while the training process
does the backward pass of L_cls; the rest of the total is backpropagated once the labels are in
(gradients add up: the same gradient as one backward of the total).

Reproducibility: the order of every epoch and the augmentation of every image are drawn
from ``(seed, epoch, index)``, and checkpoints carry the RNG state, so a run resumed from a
checkpoint ends with exactly the numbers of an uninterrupted one (on CPU).
"""
from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aakit.config import Config
from aakit.engine.distributed import DistInfo, all_gather_floats, barrier, broadcast_object, cleanup, init_distributed
from aakit.engine.evaluate import EvalProtocol, eval_protocol, evaluate
from aakit.engine.rundir import RunWriter, load_checkpoint_file, provenance
from aakit.engine.targets import request_targets, training_cam
from aakit.data.identity import require_data_root
from aakit.errors import AakitError
from aakit.objective import LossInputs, Objective, StepLosses, build_objective
from aakit.runs import read_json, safe_name

EpochCallback = Callable[[int, dict[str, Any]], None]


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived: a checkpoint was saved and the run marked interrupted."""


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


def poly_lr(base: float, step: int, total: int, power: float) -> float:
    """Poly schedule: base * (1 - step/total)^power."""
    return base * (1.0 - min(step, total) / max(total, 1)) ** power


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


def load_initial_weights(model: torch.nn.Module, path: str, *, results: Path | None = None,
                         progress: bool = False, like: Config | None = None) -> str:
    """``model.pretrained``: where the network's first weights come from.

    * an MXNet ``.params`` or a psa-layout ``.pth`` (ImageNet or VOC classification weights);
    * a run directory, or its ``checkpoints/last.pt``: that run's network;
    * a config YAML (``experiments/synthetic/cls.yaml``): the finished run of that config in
      ``results`` — trained first if it is missing (RRM's recipe (b), classification weights
      first, for the embedded preset). It takes the data, network and device of ``like``
      (the run that needs it) but keeps its own ``train.seed``: it stands in for ImageNet
      weights, which every seed of a grid shares, so the seeds of a grid differ only in the
      WSSS training. A file lock keeps concurrent grid workers from training it twice.
    """
    p = Path(path)
    if p.suffix in (".yaml", ".yml"):
        p = _dependency_run(p, results or Path("results"), progress, like) / "checkpoints" / "last.pt"
    if p.is_dir():  # a run directory: start from its last checkpoint
        p = p / "checkpoints" / "last.pt"
    if not p.exists():
        raise AakitError(f"model.pretrained: {path} not found")
    if p.suffix == ".pt":
        state = load_checkpoint_file(p)
        missing, unexpected = model.load_state_dict(state["model"], strict=False)
        bad = [k for k in missing if not k.startswith(("seg_", "embed"))]
        if unexpected or bad:
            raise AakitError(f"model.pretrained: {p} does not fit this network "
                             f"(missing {bad[:3]}, unexpected {list(unexpected)[:3]})")
        return f"checkpoint {p}"
    from aakit.models import load_pretrained

    report = load_pretrained(model, str(p))
    return str(report)


def _dependency_run(config: Path, results: Path, progress: bool, like: Config | None) -> Path:
    """The finished run of ``config`` under ``results``, trained now if missing (locked)."""
    import fcntl

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
    why = ["(model.pretrained of a dependent run)"]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: the ranks train it together
        return train(dep, results=results, progress=progress, command=why, require_checkpoint=True)
    lock_dir = Path(results) / "runs" / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / f"{dep.hash()}.lock", os.O_CREAT | os.O_RDWR, 0o666)  # empty; only locked
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another worker training it: wait for it
        writer = RunWriter(Path(results), dep)
        if not (writer.is_finished() and writer.ckpt_path.exists()):
            print(dependency_notice(config, dep, writer, Path(results)), file=sys.stderr, flush=True)
        return train(dep, results=results, progress=progress, command=why, require_checkpoint=True)
    finally:
        os.close(fd)


def dependency_notice(config: Path, dep: Config, writer: RunWriter, results: Path) -> str:
    """One line said before a dependency run is trained: which, how long, and an ETA taken from
    the last finished run of the same name (scaled by its epochs), if there is one."""
    what = "resuming" if writer.exists() else "training"
    if writer.is_finished():
        what = "training again (its summary has no checkpoint: checkpoints are not committed)"
    head = (f"model.pretrained: {config} -> run {writer.path.name} must be trained first; "
            f"{what} it now: {dep.train.epochs} epochs")
    earlier = []
    for d in sorted((results / "runs").glob(f"{safe_name(dep.name)}-*")):
        s = read_json(d / "summary.json")
        if isinstance(s, dict) and s.get("wall_time_s") and s.get("epochs"):
            earlier.append((d.stat().st_mtime, d.name, float(s["wall_time_s"]), int(s["epochs"])))
    if not earlier:
        return head + " (no earlier run to estimate its duration; the progress bar shows an ETA)"
    _, name, wall, epochs = max(earlier)
    eta = wall * dep.train.epochs / max(epochs, 1)
    return head + f", ETA about {_minutes(eta)} ({name}: {epochs} epochs in {_minutes(wall)})"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


# ----------------------------------------------------------------------------- data order
def epoch_batches(n: int, batch: int, *, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """This rank's batches of one epoch: a permutation drawn from (seed, epoch), drop_last.

    Every rank draws the same permutation and takes every ``world``-th batch, so the ranks
    together see each image at most once per epoch, like DistributedSampler.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    per_step = batch * world
    steps = n // per_step
    if steps == 0:
        raise AakitError(f"train.batch_size = {batch} x {world} process(es) is larger than the "
                         f"training set ({n} images)")
    return [order[s * per_step + rank * batch : s * per_step + (rank + 1) * batch] for s in range(steps)]


class _EpochItems(torch.utils.data.Dataset):
    """Dataset view whose augmentation is seeded by (seed, epoch, index)."""

    def __init__(self, dataset: Any, seed: int, epoch: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, idx])
        return self.dataset.sample(idx, rng)


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        out[k] = torch.stack([torch.as_tensor(v) for v in vals]) if k != "id" else vals
    return out


def iterate_epoch(dataset: Any, batches: list[list[int]], cfg: Config, epoch: int, skip: int) -> Iterator[dict[str, Any]]:
    view = _EpochItems(dataset, cfg.train.seed, epoch)
    loader = torch.utils.data.DataLoader(
        view,
        batch_sampler=batches[skip:],
        num_workers=cfg.data.num_workers,
        collate_fn=_collate,
        persistent_workers=False,
        # its own generator: creating the iterator must not draw from the global torch RNG,
        # whose state (dropout) a checkpoint restores
        generator=torch.Generator().manual_seed(cfg.train.seed * 1_000 + epoch),
    )
    yield from loader


# ----------------------------------------------------------------------------- one step
def losses_of_batch(model: torch.nn.Module, batch: dict[str, Any], cfg: Config, objective: Objective, *,
                    epoch: int, device: torch.device, labeler: Any | None,
                    early_backward: Callable[[torch.Tensor], None] | None = None) -> tuple[StepLosses, LossInputs]:
    """Forward one batch, make its pseudo labels and compute the objective's active terms.

    Overlap: the terms that need no pseudo label (L_cls) are computed first; with
    ``early_backward`` given and the labels made by the CRF workers, they go to
    ``early_backward`` (which must keep the graph) while the workers run, and the returned
    :class:`StepLosses` says so — its ``pending()`` is what is left to backpropagate.
    """
    core = model.module if hasattr(model, "module") else model
    # forward: class scores, CAM, embedding F^s and segmentation logits F^c
    images = batch["image"].to(device, non_blocking=True)
    labels = batch["labels"].to(device)
    x = LossInputs(model(images), labels, tuple(images.shape[-2:]))  # type: ignore[arg-type]
    # the terms that need no pseudo label (L_cls) first: their backward may overlap the CRFs
    step = StepLosses(objective(x, epoch, labelled=False), anchor=x.out["cls_logits"])
    if objective.needs_labels(epoch):
        # pseudo labels: multi-scale CAM -> two dense CRFs in the CRF workers (or the masks)
        pending = request_targets(core, batch, x.out, images, cfg, labeler, device)  # type: ignore[arg-type]
        if early_backward is not None and pending.from_workers:
            step.backward_early(early_backward)  # runs while the CRF workers label the batch
        x.labels, x.confidence = pending.result()
        # the terms on the pseudo labels (L_ce, L_aa, L_lr)
        step.terms |= objective(x, epoch, labelled=True)
    return step, x


def compute_losses(
    model: torch.nn.Module,
    batch: dict[str, Any],
    cfg: Config,
    *,
    epoch: int,
    device: torch.device,
    labeler: Any | None,
    early_backward: Callable[[torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, dict[str, float], dict[str, Any]]:
    """:func:`losses_of_batch` for the callers of the older interface (``aakit bench``, tests):
    ``(what is left to backpropagate, scalar losses with "total", extras)``; ``extras["pseudo"]``
    holds the pseudo labels when the CRFs made some. Without ``early_backward`` what is left is
    the total; with it, the total less L_cls, which went to ``early_backward``."""
    step, x = losses_of_batch(model, batch, cfg, build_objective(cfg), epoch=epoch, device=device,
                              labeler=labeler, early_backward=early_backward)
    scalars = step.scalars()
    made = cfg.train.supervision == "image" and x.labels is not None
    return step.pending(), scalars, ({"pseudo": x.labels} if made else {})


def _backward_retaining(loss: torch.Tensor) -> None:
    """``early_backward`` of the training loop: backprop L_cls, keep the graph for the rest."""
    loss.backward(retain_graph=True)


# ----------------------------------------------------------------------------- the loop
def _build_data(cfg: Config) -> tuple[Any, Any, Any, int]:
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
        pad_mode=d.pad_mode,
    )
    val_set = EvalDataset(d.root, d.val_split, mean=d.mean, std=d.std, max_images=cfg.eval.max_images)
    pseudo_set = None
    if cfg.eval.pseudo_images and cfg.train.supervision == "image":
        pseudo_set = EvalDataset(d.root, d.train_split, mean=d.mean, std=d.std, max_images=cfg.eval.pseudo_images)
    for split, ids in ((d.train_split, train_set.ids), (d.val_split, val_set.ids)):
        require_images(d.root, split, ids)
    if len(val_set) == 0:  # refuse before training, not at the end of the first epoch
        raise AakitError(f"{d.root}: {d.val_split} lists no image to evaluate on")
    return train_set, val_set, pseudo_set, info.num_classes


def require_images(root: str, split: str, ids: list[str]) -> None:
    """Refuse to start (before anything is written) if a listed image has no JPEG."""
    from aakit.data.voc import DataError, image_path

    missing = [i for i in ids if not image_path(root, i).is_file()]
    if missing:
        raise DataError(f"image {missing[0]}: file not found: {image_path(root, missing[0])} "
                        f"({len(missing)} image(s) of {split} missing; run: aakit data check {root})")


def iter_pseudo_labels(model: torch.nn.Module, dataset: Any, cfg: Config, labeler: Any,
                       device: torch.device) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(id, online pseudo label map, ground truth) of each image of an evaluation set.

    Labels are made exactly as in training (multi-scale CAM + the two CRFs) on whole images.
    """
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(len(dataset)):
                item = dataset[i]
                image = item["image"].unsqueeze(0).to(device)
                out = model(image)
                cams = training_cam(model, image, out["cam"], tuple(cfg.model.cam_scales), tuple(image.shape[-2:]))
                label, _ = labeler(
                    np.asarray(item["raw"])[None],
                    cams.cpu().numpy(),
                    np.asarray(item["labels"], dtype=np.float32)[None],
                    out["cls_logits"].float().sigmoid().cpu().numpy(),
                )
                yield str(item["id"]), label[0].numpy(), np.asarray(item["mask"])
    finally:
        model.train(was)


def pseudo_label_quality(model: torch.nn.Module, dataset: Any, cfg: Config, labeler: Any, device: torch.device, num_classes: int) -> float:
    """mIoU of the online pseudo labels against ground truth on train images (Figure 3).

    Ignored (255) pixels are left out, as the paper scores its initial labels.
    """
    from aakit.metrics import ConfusionMeter

    meter = ConfusionMeter(num_classes)
    for _, pred, gt in iter_pseudo_labels(model, dataset, cfg, labeler, device):
        gt = gt.copy()
        gt[pred == 255] = 255
        meter.update(np.where(pred == 255, 0, pred), gt)
    return float(meter.compute()["miou"])


def save_examples(model: torch.nn.Module, cfg: Config, labeler: Any, device: torch.device, out: Path) -> None:
    """The first ``eval.save_examples`` val images' pseudo labels, as palette PNGs (Figure 5)."""
    from aakit.data.voc import EvalDataset, load_info, save_mask_png

    d = cfg.data
    examples = EvalDataset(d.root, d.val_split, mean=d.mean, std=d.std, max_images=cfg.eval.save_examples)
    palette = load_info(d.root).palette
    for image_id, pred, _ in iter_pseudo_labels(model, examples, cfg, labeler, device):
        save_mask_png(out / "pseudo" / f"{image_id}.png", pred, palette)


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
    """
    dist_info = init_distributed(cfg.train.device if cfg.train.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    device = select_device(cfg.train.device, dist_info)
    writer = RunWriter.open(Path(resume), cfg) if resume is not None else RunWriter(Path(results), cfg, name)
    if writer.is_finished() and (writer.ckpt_path.exists() or not require_checkpoint):
        cleanup(dist_info)
        return writer.path

    seed_everything(cfg.train.seed + dist_info.rank)
    train_set, val_set, pseudo_set, num_classes = _build_data(cfg)

    from aakit.models import build_model

    model = build_model(dataclasses.replace(cfg.model, pretrained=None)).to(device)
    init_note = None
    if cfg.model.pretrained:
        init_note = load_initial_weights(model, cfg.model.pretrained, results=Path(results), progress=progress, like=cfg)
    optimizer = build_optimizer(model, cfg)

    state = writer.load_checkpoint() if (resume is not None or writer.exists()) else None
    start_step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start_step = int(state["step"])

    batches_per_epoch = len(epoch_batches(len(train_set), cfg.train.batch_size, seed=0, epoch=0, world=dist_info.world))
    total_steps = batches_per_epoch * cfg.train.epochs
    # epochs whose end-of-epoch work (evaluation, record, callback) is done: a checkpoint taken
    # at an epoch's last step but before its evaluation must redo that evaluation on resume
    epochs_done = start_step // batches_per_epoch
    if state is not None:
        epochs_done = min(epochs_done, int(state.get("epochs_done", epochs_done)))
    ddp_model: torch.nn.Module = model
    if dist_info.enabled:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )

    if dist_info.main:
        prov = provenance(cfg, command=command, overrides=list(overrides), device=str(device))
        prov.update(world_size=dist_info.world, init=init_note, resumed_from_step=start_step or None)
        writer.remove_temp_files()  # left by a process killed in the middle of a write
        if state is None:  # a fresh start (or a run killed before its first checkpoint)
            writer.create(prov)
            writer.reset_metrics()
        else:
            writer.truncate_metrics(start_step, keep_epochs=epochs_done)
            writer.message(f"resumed from step {start_step}")
            writer.record_resume(start_step, prov)
        writer.set_status("running", steps_total=total_steps, world_size=dist_info.world)
    barrier(dist_info)

    from aakit.pseudo import PseudoLabeler

    labeler = PseudoLabeler(cfg.pseudo, cfg.crf.train, workers=cfg.pseudo.workers) if cfg.train.supervision == "image" else None
    amp = cfg.train.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    # Overlap the CRFs with the backward of L_cls: two backward passes over one forward, which
    # DDP forbids (its gradient all-reduce fires once per parameter per forward) and which the
    # AMP loss scaler does not take part in.
    objective = build_objective(cfg)
    early_backward = _backward_retaining if cfg.pseudo.overlap and not dist_info.enabled and not amp else None

    stop = {"signal": None}

    def _on_signal(signum: int, _frame: Any) -> None:
        stop["signal"] = signum

    old_handlers = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old_handlers[sig] = signal.signal(sig, _on_signal)
        except ValueError:  # not the main thread
            pass

    def checkpoint(step: int) -> None:
        if dist_info.main:
            writer.save_checkpoint({
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "epochs_done": epochs_done,
                "config_hash": writer.run_hash(),
            })

    bar = _Progress(progress and dist_info.main, total_steps, start_step, writer.path.name)
    t_start = time.time()
    step = start_step
    status = "failed"
    last_epoch_record: dict[str, Any] | None = None
    last_val: dict[str, dict[str, Any]] | None = None
    try:
        model.train()
        for epoch in range(epochs_done, cfg.train.epochs):
            batches = epoch_batches(len(train_set), cfg.train.batch_size, seed=cfg.train.seed, epoch=epoch, rank=dist_info.rank, world=dist_info.world)
            skip = step - epoch * batches_per_epoch
            t_last = time.time()
            for batch in iterate_epoch(train_set, batches, cfg, epoch, skip):
                lr_now = poly_lr(cfg.optim.lr, step, total_steps, cfg.optim.poly_power)
                for g in optimizer.param_groups:
                    g["lr"] = lr_now * g["lr_mult"]
                optimizer.zero_grad(set_to_none=True)  # before compute_losses: early_backward accumulates
                with torch.autocast(device.type, enabled=amp):
                    step_losses, _ = losses_of_batch(ddp_model, batch, cfg, objective, epoch=epoch, device=device,
                                                     labeler=labeler, early_backward=early_backward)
                scalars = step_losses.scalars()
                if not math.isfinite(scalars["total"]):
                    raise AakitError(f"loss became {scalars['total']} at step {step + 1} (epoch {epoch + 1}); "
                                     f"lower optim.lr or check the data")
                scaler.scale(step_losses.pending()).backward()
                scaler.step(optimizer)
                scaler.update()
                step += 1
                now = time.time()
                ips = len(batch["id"]) * dist_info.world / max(now - t_last, 1e-9)
                t_last = now
                if dist_info.main and (step % cfg.train.log_every == 0 or step == total_steps):
                    writer.log({"kind": "step", "epoch": epoch + 1, "epochs": cfg.train.epochs, "step": step,
                                "steps_total": total_steps, "losses": scalars, "lr": lr_now, "images_per_s": ips})
                bar.update(step, epoch + 1, cfg.train.epochs, scalars, ips)
                if cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0:
                    checkpoint(step)
                if stop_after_steps is not None and step >= stop_after_steps:
                    stop["signal"] = signal.SIGTERM
                if stop["signal"] is not None:
                    raise TrainingInterrupted()
            # ---- end of epoch: evaluate, checkpoint, report
            record: dict[str, Any] = {"kind": "epoch", "epoch": epoch + 1, "epochs": cfg.train.epochs, "step": step}
            last = epoch + 1 == cfg.train.epochs
            if dist_info.main and ((epoch + 1) % cfg.eval.every_epochs == 0 or last):
                res = evaluate(model, val_set, epoch_protocol(cfg), num_classes=num_classes, device=device,
                               save_pred=example_saver(cfg, writer) if last else None)
                if last:
                    last_val = res  # the final summary reuses it when its protocol is the same
                record["miou"] = res["plain"]["miou"]
                record["miou_rfpc"] = res["rfpc"]["miou"]
                if pseudo_set is not None and labeler is not None and epoch >= cfg.train.cls_warmup_epochs:
                    record["pseudo_miou"] = pseudo_label_quality(model, pseudo_set, cfg, labeler, device, num_classes)
                if last and labeler is not None and cfg.eval.save_examples:
                    save_examples(model, cfg, labeler, device, writer.path / "examples")
                record["elapsed_s"] = time.time() - t_start
                writer.log(record)
                last_epoch_record = record
                bar.note(record)
            epochs_done = epoch + 1
            checkpoint(step)
            barrier(dist_info)
            if epoch_callback is not None and dist_info.main and "miou" in record:
                epoch_callback(epoch + 1, record)
            if stop["signal"] is not None and epochs_done < cfg.train.epochs:
                raise TrainingInterrupted()  # a signal during the evaluation: stop here, not a step later
        status = "finished"
    except TrainingInterrupted:
        checkpoint(step)
        status = "interrupted"
    except BaseException:
        status = "interrupted" if epoch_callback is not None else "failed"
        if dist_info.main:
            writer.set_status(status, step=step)
        raise
    finally:
        bar.close()
        if labeler is not None:
            labeler.close()
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
        if status != "finished" and dist_info.main:
            writer.set_status(status, step=step)

    del ddp_model  # DDP's reducer holds the process group: let it go before the group does
    if status == "interrupted":
        cleanup(dist_info)
        raise KeyboardInterrupt(f"interrupted at step {step}; resume with: aakit train --resume {writer.path}")

    checksums = all_gather_floats(dist_info, float(sum(p.detach().double().sum() for p in model.parameters())))
    if dist_info.main:
        if last_epoch_record is None:  # resumed after the last evaluation: take it from the log
            from aakit.runs import read_metrics

            done = [r for r in read_metrics(writer.metrics_path)[0] if r.get("kind") == "epoch"]
            last_epoch_record = done[-1] if done else None
        summary = final_summary(model, cfg, writer, val_set, num_classes, device, last_epoch_record, t_start,
                                checksums, val_res=last_val)
        writer.write_summary(summary)
        writer.set_status("finished", step=step)
    barrier(dist_info)
    path = broadcast_object(dist_info, writer.path)
    cleanup(dist_info)
    return Path(path)  # type: ignore[arg-type]


def example_saver(cfg: Config, writer: RunWriter) -> Callable[[str, np.ndarray], None]:
    """Saves the predictions of the first ``eval.save_examples`` images (Figure 5's examples)."""
    from aakit.data.voc import load_info, save_mask_png

    palette = load_info(cfg.data.root).palette
    n_saved = [0]

    def save_pred(image_id: str, pred: np.ndarray) -> None:
        if n_saved[0] < cfg.eval.save_examples:
            save_mask_png(writer.path / "examples" / "pred" / f"{image_id}.png", pred, palette)
            n_saved[0] += 1

    return save_pred


def epoch_protocol(cfg: Config) -> EvalProtocol:
    """The per-epoch validation: single scale, no CRF (cheap); the run's other settings."""
    return eval_protocol(cfg, protocol="ss", crf=False)


def final_summary(model: torch.nn.Module, cfg: Config, writer: RunWriter, val_set: Any, num_classes: int,
                  device: torch.device, last: dict[str, Any] | None, t_start: float, checksums: list[float],
                  val_res: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Final metrics: val (and train, the paper's "IoU (train)") with and without rfpc, measured
    with the run's protocol (``eval.protocol``, ``eval.crf``: the test CRF, ...).

    ``val_res``: the last epoch's val evaluation (:func:`epoch_protocol`), reused instead of a
    second identical pass when the run's protocol is the same.
    """
    from aakit.config import key_hyperparameters

    proto = eval_protocol(cfg)
    metrics: dict[str, Any] = {}
    if val_res is not None and proto == epoch_protocol(cfg):
        res = val_res
    else:
        res = evaluate(model, val_set, proto, num_classes=num_classes, device=device,
                       save_pred=example_saver(cfg, writer))
    metrics["val"], metrics["val_rfpc"] = res["plain"], res["rfpc"]
    if cfg.eval.train_iou:
        from aakit.data.voc import EvalDataset

        d = cfg.data
        train_eval = EvalDataset(d.root, d.train_split, mean=d.mean, std=d.std, max_images=cfg.eval.max_images)
        res = evaluate(model, train_eval, proto, num_classes=num_classes, device=device)
        metrics["train"], metrics["train_rfpc"] = res["plain"], res["rfpc"]
    return {
        "name": writer.path.name,
        "hash": writer.run_hash(),
        "status": "finished",
        "preset": cfg.preset,
        "metrics": metrics,
        "pseudo_miou": (last or {}).get("pseudo_miou"),
        "epochs": cfg.train.epochs,
        "seed": cfg.train.seed,
        "key": key_hyperparameters(cfg),
        "wall_time_s": time.time() - t_start,
        "ddp_param_checksums": checksums,
    }


class _Progress:
    """A rich progress bar (epoch, step, losses, images/s, ETA) — silent when disabled."""

    def __init__(self, enabled: bool, total: int, done: int, title: str) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.p = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            transient=False,
        )
        self.p.start()
        self.task = self.p.add_task(title, total=total, completed=done, info="")

    def update(self, step: int, epoch: int, epochs: int, losses_: dict[str, float], ips: float) -> None:
        if not self.enabled:
            return
        info = f"ep {epoch}/{epochs} " + " ".join(f"{k} {v:.3f}" for k, v in losses_.items()) + f" {ips:.1f} img/s"
        self.p.update(self.task, completed=step, info=info)

    def note(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        msg = f"epoch {record['epoch']}: val mIoU {100 * record.get('miou', float('nan')):.1f}"
        if record.get("pseudo_miou") is not None:
            msg += f", pseudo-label mIoU {100 * record['pseudo_miou']:.1f}"
        self.p.console.print(msg)

    def close(self) -> None:
        if self.enabled:
            self.p.stop()
