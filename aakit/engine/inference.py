"""Using a trained run: ``aakit eval`` and ``aakit predict``.

A run is reopened from its directory alone: ``config.yaml`` rebuilds the network,
``checkpoints/last.pt`` (loaded with ``weights_only=True``) fills it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aakit.config import Config, load_run_config
from aakit.engine.evaluate import EvalProtocol, eval_protocol, evaluate, keep_mask, predict_probs, segment
from aakit.engine.measure import confusions_path
from aakit.engine.rundir import load_checkpoint_file, recorded_hash
from aakit.errors import AakitError, reason
from aakit.files import atomic_write_json, read_json
from aakit.runs import write_confusions

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def load_run_model(run: Path, device: torch.device | None = None) -> tuple[Config, torch.nn.Module, torch.device]:
    """The run's config and its trained network (eval mode)."""
    from aakit.models import build_model

    cfg = load_run_config(run / "config.yaml")
    ckpt = run / "checkpoints" / "last.pt"
    if not ckpt.exists():
        raise AakitError(f"{run}: no checkpoint (checkpoints/last.pt); was the run trained here?")
    state = load_checkpoint_file(ckpt, expect_hash=recorded_hash(run, cfg))
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() and cfg.train.device != "cpu" else "cpu")
    model = build_model(dataclasses.replace(cfg.model, pretrained=None))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise AakitError(f"{ckpt}: does not fit the run's network ({reason(e, 200)})") from None
    return cfg, model.to(device).eval(), device


def evaluate_run(run: Path, proto: EvalProtocol | None = None, *, split: str = "val", save_png: Path | None = None,
                 force: bool = False) -> str:
    """Evaluate a trained run with ``proto`` (default: the run's own protocol).

    Stores ``eval/<split>-<protocol>.json`` for the numbers with and without rfpc and adds both
    to summary.json; each record names its protocol and image count (``key``, e.g.
    ``msf+crf@1449``). Refused (AakitError): an evaluation on no image, and, unless ``force``,
    one that would replace a stored result measured on more images.
    """
    from aakit.data.voc import EvalDataset, load_info, save_mask_png

    run_cfg = load_run_config(run / "config.yaml")
    proto = proto or eval_protocol(run_cfg)
    d = run_cfg.data
    dataset = EvalDataset(d.root, split, mean=d.mean, std=d.std, max_images=proto.max_images)
    if len(dataset) == 0:
        raise AakitError(f"{run.name}: the {split} split lists no image to evaluate on")
    slots = {k: f"{split}-{dataclasses.replace(proto, rfpc=k == 'rfpc').name}" for k in ("plain", "rfpc")}
    if not force:
        refuse_fewer_images(run, list(slots.values()), len(dataset))
    _, model, device = load_run_model(run)
    info = load_info(d.root)
    saver = None
    if save_png is not None:
        save_png.mkdir(parents=True, exist_ok=True)

        def saver(image_id: str, pred: np.ndarray) -> None:
            save_mask_png(save_png / f"{image_id}.png", pred, info.palette)

    warn_unfinished(run)
    per_image: dict[str, np.ndarray] = {}
    with eval_progress(f"eval {run.name} {split} {proto.key}", len(dataset)) as on_image:
        res = evaluate(model, dataset, proto, num_classes=info.num_classes, device=device,
                       on_image=on_image, save_pred=saver, per_image=per_image)
    res["plain"]["split"] = res["rfpc"]["split"] = split
    for k, slot in slots.items():
        atomic_write_json(run / "eval" / f"{slot}.json", res[k])
    write_confusions(confusions_path(run, split, proto), per_image)
    summary = read_json(run / "summary.json") or {"name": run.name, "metrics": {}}
    summary.setdefault("metrics", {}).update({slots[k]: res[k] for k in res})
    atomic_write_json(run / "summary.json", summary)
    main, other = ("rfpc", "plain") if proto.rfpc else ("plain", "rfpc")
    lines = [f"{slots[main]} ({res[main]['key']}): mIoU {100 * res[main]['miou']:.2f} on {res[main]['images']} images"]
    lines += [f"  {n:>14s} {'-' if v is None else f'{100 * v:.1f}'}" for n, v in zip(info.class_names, res[main]["iou"])]
    lines.append(f"({slots[other]}: mIoU {100 * res[other]['miou']:.2f})")
    return "\n".join(lines)


def warn_unfinished(run: Path, echo: Callable[[str], None] | None = None) -> None:
    """One line on stderr when the run is not finished: its last checkpoint is what is evaluated."""
    st = read_json(run / "status.json")
    status = st.get("status") if isinstance(st, dict) else None
    if status != "finished":
        step = f" at step {st['step']}" if isinstance(st, dict) and isinstance(st.get("step"), int) else ""
        (echo or _stderr)(f"warning: {run.name} is {status or 'of unknown status'}{step}, not finished: "
                          f"evaluating its last checkpoint")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def eval_progress(title: str, total: int, *, tty: bool | None = None,
                  echo: Callable[[str], None] | None = None) -> Iterator[Callable[[int, int], None]]:
    """``on_image(done, total)`` for :func:`aakit.engine.evaluate.evaluate`: a rich bar on a
    terminal, without one (a pipe, a log file) a plain flushed line every tenth of the images
    (and the last) with the time so far and an ETA."""
    if sys.stderr.isatty() if tty is None else tty:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(title, total=total)
            yield lambda i, n: bar.update(task, completed=i)
        return
    say, t0, every = echo or _stderr, time.time(), max(1, -(-total // 10))

    def on_image(i: int, n: int) -> None:
        if i % every == 0 or i == n:
            spent = time.time() - t0
            say(f"{title}: {i}/{n} images ({100 * i / n:.0f}%), {spent:.0f} s, eta {spent / i * (n - i):.0f} s")

    yield on_image


def stored_images(run: Path, slot: str) -> tuple[int, str] | None:
    """(images, key) of the result stored in ``slot`` (eval/ file or summary.json), the larger."""
    found: list[tuple[int, str]] = []
    summary = read_json(run / "summary.json") or {}
    for rec in (read_json(run / "eval" / f"{slot}.json"), (summary.get("metrics") or {}).get(slot)):
        if isinstance(rec, dict) and isinstance(rec.get("images"), int):
            found.append((rec["images"], str(rec.get("key") or f"{rec['images']} images")))
    return max(found) if found else None


def refuse_fewer_images(run: Path, slots: list[str], images: int) -> None:
    """AakitError if a result stored in one of ``slots`` was measured on more than ``images``."""
    for slot in slots:
        stored = stored_images(run, slot)
        if stored is not None and stored[0] > images:
            raise AakitError(f"{run.name}: {slot} is stored from {stored[0]} images ({stored[1]}); this evaluation "
                             f"would use {images}: pass --force to replace it")


def collect_images(inputs: list[Path]) -> list[Path]:
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
    files = collect_images(inputs)
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
