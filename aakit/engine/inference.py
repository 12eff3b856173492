"""Using a trained run: ``aakit eval`` and ``aakit predict``.

A run is reopened from its directory alone: ``config.yaml`` rebuilds the network,
``checkpoints/last.pt`` (loaded with ``weights_only=True``) fills it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aakit.config import Config, load_config
from aakit.engine.evaluate import evaluate, keep_mask, predict_probs, protocol_name, segment
from aakit.engine.rundir import load_checkpoint_file
from aakit.errors import AakitError
from aakit.runs import atomic_write_json, read_json

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def load_run_model(run: Path, device: torch.device | None = None) -> tuple[Config, torch.nn.Module, torch.device]:
    """The run's config and its trained network (eval mode)."""
    from aakit.models import build_model

    cfg = load_config(run / "config.yaml")
    ckpt = run / "checkpoints" / "last.pt"
    if not ckpt.exists():
        raise AakitError(f"{run}: no checkpoint (checkpoints/last.pt); was the run trained here?")
    state = load_checkpoint_file(ckpt, expect_hash=cfg.hash())
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() and cfg.train.device != "cpu" else "cpu")
    model = build_model(dataclasses.replace(cfg.model, pretrained=None))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise AakitError(f"{ckpt}: does not fit the run's network ({str(e).splitlines()[0][:120]})") from None
    return cfg, model.to(device).eval(), device


def evaluate_run(
    run: Path,
    *,
    split: str = "val",
    protocol: str = "ss",
    crf: bool = False,
    rfpc: bool = False,
    save_png: Path | None = None,
    max_images: int | None = None,
) -> str:
    """Evaluate and store ``eval/<split>-<protocol>.json``; add both numbers to summary.json."""
    from aakit.data.voc import EvalDataset, load_info, save_mask_png

    cfg, model, device = load_run_model(run)
    d = cfg.data
    info = load_info(d.root)
    dataset = EvalDataset(d.root, split, mean=d.mean, std=d.std, max_images=max_images)
    saver = None
    if save_png is not None:
        save_png.mkdir(parents=True, exist_ok=True)

        def saver(image_id: str, pred: np.ndarray) -> None:
            save_mask_png(save_png / f"{image_id}.png", pred, info.palette)

    from rich.progress import Progress

    ecfg = dataclasses.replace(cfg.eval, rfpc=rfpc)
    with Progress(transient=True) as bar:
        task = bar.add_task(f"eval {split} {protocol}", total=len(dataset))
        res = evaluate(model, dataset, ecfg, num_classes=info.num_classes, device=device, crf=cfg.crf.test,
                       protocol=protocol, use_crf=crf, on_image=lambda i, n: bar.update(task, completed=i),
                       save_pred=saver)
    res["plain"]["split"] = res["rfpc"]["split"] = split
    keys = {k: f"{split}-{protocol_name(protocol, crf, k == 'rfpc')}" for k in res}
    for k, key in keys.items():
        atomic_write_json(run / "eval" / f"{key}.json", res[k])
    summary = read_json(run / "summary.json") or {"name": run.name, "metrics": {}}
    summary.setdefault("metrics", {}).update({keys[k]: res[k] for k in res})
    atomic_write_json(run / "summary.json", summary)
    main = "rfpc" if rfpc else "plain"
    lines = [f"{keys[main]}: mIoU {100 * res[main]['miou']:.2f} on {res[main]['images']} images"]
    names = info.class_names
    lines += [f"  {n:>14s} {'-' if v is None else f'{100 * v:.1f}'}" for n, v in zip(names, res[main]["iou"])]
    other = "plain" if rfpc else "rfpc"
    lines.append(f"({keys[other]}: mIoU {100 * res[other]['miou']:.2f})")
    return "\n".join(lines)


def _collect_images(inputs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            files += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise AakitError(f"{p}: no such image or directory")
    if not files:
        raise AakitError("predict: no images found in " + ", ".join(map(str, inputs)))
    return files


def predict_images(run: Path, inputs: list[Path], out: Path, *, protocol: str = "ss", crf: bool = False) -> int:
    """Palette masks ``<out>/<stem>.png`` and overlays ``<out>/<stem>_overlay.jpg``."""
    from PIL import Image, UnidentifiedImageError

    from aakit.data.voc import load_info, save_mask_png

    if protocol not in ("ss", "msf"):
        raise AakitError(f"--protocol {protocol!r}: choose ss or msf")
    files = _collect_images(inputs)
    cfg, model, device = load_run_model(run)
    info = load_info(cfg.data.root) if Path(cfg.data.root).exists() else None
    palette = info.palette if info is not None else _default_palette(cfg.model.num_classes)
    mean = np.asarray(cfg.data.mean, dtype=np.float32)
    std = np.asarray(cfg.data.std, dtype=np.float32)
    out.mkdir(parents=True, exist_ok=True)
    scales = tuple(cfg.eval.scales) if protocol == "msf" else (1.0,)
    for f in files:
        try:
            with Image.open(f) as im:
                raw = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as e:
            raise AakitError(f"{f}: cannot read image ({e})") from None
        x = torch.from_numpy(((raw / 255.0 - mean) / std).astype(np.float32)).permute(2, 0, 1)[None].to(device)
        probs, scores = predict_probs(model, x, scales=scales, flip=protocol == "msf")
        keep = keep_mask(scores.cpu().numpy(), np.zeros_like(scores.cpu().numpy()), rfpc=False,
                         threshold=cfg.eval.cls_threshold)
        pred = segment(probs.cpu().numpy(), keep, raw, cfg.crf.test if crf else None)
        save_mask_png(out / f"{f.stem}.png", pred, palette)
        colour = np.asarray(palette, dtype=np.uint8)[pred]
        overlay = (0.5 * raw + 0.5 * colour).astype(np.uint8)
        Image.fromarray(overlay).save(out / f"{f.stem}_overlay.jpg", quality=90)
    return len(files)


def _default_palette(n: int) -> list[list[int]]:
    from aakit.data.voc import voc_palette

    return [list(c) for c in voc_palette()[:n]]


def describe(run: Path) -> dict[str, Any]:
    return read_json(run / "summary.json") or {}
