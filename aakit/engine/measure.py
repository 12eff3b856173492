"""What a run measures besides its losses: the per-epoch validation protocol, the pseudo labels'
quality on train images (Figure 3), the example PNGs (Figure 5) and the final summary.

The hooks of :mod:`aakit.engine.hooks` call these at the end of each epoch and of the run.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aakit.config import Config
from aakit.engine.evaluate import EvalProtocol, eval_protocol, evaluate
from aakit.engine.rundir import RunWriter
from aakit.runs import write_confusions
from aakit.labels import IGNORE_INDEX
from aakit.method import build_objective, training_cam


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


def confusions_path(run: Path, split: str, proto: EvalProtocol) -> Path:
    """Where the per-image confusion matrices of an evaluation go: ``eval/<split>-<protocol>-confusions.npz``
    (the protocol's name without rfpc: the file holds both, ``plain`` and ``rfpc``)."""
    return run / "eval" / f"{split}-{dataclasses.replace(proto, rfpc=False).name}-confusions.npz"


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
        per_image: dict[str, np.ndarray] = {}
        res = evaluate(model, val_set, proto, num_classes=num_classes, device=device,
                       save_pred=example_saver(cfg, writer), per_image=per_image)
        write_confusions(confusions_path(writer.path, cfg.data.val_split, proto), per_image)
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
        "loss_terms": build_objective(cfg).describe(),  # the loss table: name, weight, from which epoch
        "wall_time_s": time.time() - t_start,
        "ddp_param_checksums": checksums,
    }


def labeler_inputs(model: torch.nn.Module, item: dict[str, Any], cfg: Config,
                   device: torch.device) -> tuple[tuple[Any, ...], dict[str, torch.Tensor]]:
    """What a :class:`~aakit.method.pseudo.PseudoLabeler` takes for one whole image of an evaluation
    set (raw image, multi-scale CAM, image labels, class scores; a batch of one), made as in
    training, and the network's output. Call under ``torch.no_grad()``."""
    image = item["image"].unsqueeze(0).to(device)
    out = model(image)
    cams = training_cam(model, image, out["cam"], tuple(cfg.model.cam_scales), tuple(image.shape[-2:]))
    args = (np.asarray(item["raw"])[None], cams.cpu().numpy(), np.asarray(item["labels"], dtype=np.float32)[None],
            out["cls_logits"].float().sigmoid().cpu().numpy())
    return args, out


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
                label, _ = labeler(*labeler_inputs(model, item, cfg, device)[0])
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
        gt[pred == IGNORE_INDEX] = IGNORE_INDEX
        meter.update(np.where(pred == IGNORE_INDEX, 0, pred), gt)
    return float(meter.compute()["miou"])


def save_examples(model: torch.nn.Module, cfg: Config, labeler: Any, device: torch.device, out: Path) -> None:
    """The first ``eval.save_examples`` val images' pseudo labels, as palette PNGs (Figure 5)."""
    from aakit.data.voc import EvalDataset, load_info, save_mask_png

    d = cfg.data
    examples = EvalDataset(d.root, d.val_split, mean=d.mean, std=d.std, max_images=cfg.eval.save_examples)
    palette = load_info(d.root).palette
    for image_id, pred, _ in iter_pseudo_labels(model, examples, cfg, labeler, device):
        save_mask_png(out / "pseudo" / f"{image_id}.png", pred, palette)
