"""What a trained run sees in any photo: ``aakit predict RUN IMAGES --out DIR --cams``.

For each image: the CAM of the classes it is labelled with (or, without labels, the classes the
network keeps), the online pseudo label that training would make from that CAM (multi-scale CAM
+ the two dense CRFs, :class:`~aakit.method.pseudo.PseudoLabeler`, in process), and the
prediction (as ``aakit predict``). Written as ``<stem>_cam.jpg``, ``<stem>_pseudo.png``,
``<stem>.png``, one contact sheet ``sheet.jpg`` (image | CAM | pseudo label | prediction, a row
per image) and ``predictions.json`` (classes kept with their scores, each class's share of the
prediction and, where a VOC-layout ground truth lies beside the image, the class-agnostic
object/background IoU against it).

Labels come from ``photos.json`` beside a VOC-layout ``JPEGImages/`` (``aakit data real-photos``:
darknet's photos with their lab classes); an image it does not label takes the classes the
network keeps. The photos are the user's: nothing here is meant to be committed.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aakit.config import Config
from aakit.engine.evaluate import keep_mask, probs_from_output, segment
from aakit.errors import AakitError
from aakit.files import atomic_write_bytes, atomic_write_json
from aakit.labels import IGNORE_INDEX


def photo_labels(image: Path, class_names: tuple[str, ...]) -> list[int] | None:
    """The lab classes (indices into the image-level label vector, 0 = first object class) that
    ``photos.json`` beside ``image``'s ``JPEGImages/`` gives it, or None where it says nothing."""
    info = image.parent.parent / "photos.json" if image.parent.name == "JPEGImages" else None
    if info is None or not info.is_file():
        return None
    entry = json.loads(info.read_text(encoding="utf-8")).get("darknet", {}).get(image.stem)
    if entry is None:
        return None
    objects = list(class_names[1:])
    return [objects.index(c) for c in entry["lab_classes"] if c in objects]


def ground_truth(image: Path) -> np.ndarray | None:
    """The VOC-layout mask ``../SegmentationClass/<stem>.png`` of ``image``, if there is one."""
    from PIL import Image

    if image.parent.name != "JPEGImages":
        return None
    path = image.parent.parent / "SegmentationClass" / f"{image.stem}.png"
    if not path.is_file():
        return None
    with Image.open(path) as im:
        return np.asarray(im)


def object_iou(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Class-agnostic IoU of object (any class > 0) against background, ignoring 255, and their mean:
    a lab model's classes need not be the photo's, its objects-vs-background split can still be scored."""
    valid = gt != IGNORE_INDEX
    p, g = (pred > 0)[valid], (gt > 0)[valid]
    iou = {}
    for name, a, b in (("background", ~p, ~g), ("object", p, g)):
        union = np.logical_or(a, b).sum()
        iou[name] = float(np.logical_and(a, b).sum() / union) if union else float("nan")
    return {"iou_background": iou["background"], "iou_object": iou["object"],
            "miou_object_vs_background": float(np.nanmean([iou["background"], iou["object"]]))}


def heat(cam: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8, dark blue (0) through green and yellow to red (1)."""
    t = np.clip(cam, 0.0, 1.0)[..., None]
    stops = np.array([[0, 0, 96], [0, 160, 255], [64, 220, 64], [255, 230, 0], [230, 0, 0]], dtype=np.float32)
    x = t * (len(stops) - 1)
    i = np.minimum(x.astype(int), len(stops) - 2)
    f = x - i
    return (stops[i[..., 0]] * (1 - f) + stops[i[..., 0] + 1] * f).astype(np.uint8)


def load_photo(path: Path, size: int | None) -> np.ndarray:
    """RGB uint8, resized (bilinear) so that its longer side is ``size`` when given."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None:
                s = size / max(im.size)
                im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.BILINEAR)
            return np.asarray(im)
    except (UnidentifiedImageError, OSError) as e:
        raise AakitError(f"{path}: cannot read image ({e})") from None


def explain_image(model: torch.nn.Module, cfg: Config, labeler: Any, raw: np.ndarray, labels: list[int] | None,
                  device: torch.device) -> dict[str, Any]:
    """One image: normalised CAMs (K, H, W), scores (K,), the classes used, pseudo label, prediction."""
    from aakit.method import training_cam

    mean = np.asarray(cfg.data.mean, dtype=np.float32)
    std = np.asarray(cfg.data.std, dtype=np.float32)
    x = torch.from_numpy(((raw / 255.0 - mean) / std).astype(np.float32)).permute(2, 0, 1)[None].to(device)
    with torch.no_grad():
        out = model(x)
        cams = training_cam(model, x, out["cam"], tuple(cfg.model.cam_scales), tuple(x.shape[-2:]))[0].cpu().numpy()
        probs = probs_from_output(out, tuple(x.shape[-2:]))[0]  # the one forward pass: scale 1, no flip
        scores = out["cls_logits"][0].float().sigmoid().cpu().numpy()
    keep = keep_mask(scores, np.zeros_like(scores), rfpc=False, threshold=cfg.eval.cls_threshold)
    used = list(labels) if labels is not None else [int(k) for k in np.flatnonzero(keep)]
    image_labels = np.zeros((1, len(scores)), dtype=np.float32)
    image_labels[0, used] = 1.0
    pseudo, _ = labeler(raw[None], cams[None], image_labels, scores[None])
    pos = np.maximum(cams, 0.0)
    norm = pos / np.maximum(pos.reshape(len(pos), -1).max(axis=1), 1e-5)[:, None, None]
    pred = segment(probs.cpu().numpy(), keep, raw, None)
    return {"cams": norm, "scores": scores, "used": used, "labelled": labels is not None,
            "pseudo": pseudo[0].numpy().astype(np.uint8), "pred": pred}


def _panels(raw: np.ndarray, e: dict[str, Any], palette: np.ndarray) -> list[np.ndarray]:
    cam = e["cams"][e["used"]].max(axis=0) if e["used"] else np.zeros(raw.shape[:2], np.float32)
    lut = palette.copy()
    grey = np.full((256, 3), 128, np.uint8)  # unlabelled pseudo-label pixels (255) in grey
    grey[: len(lut)] = lut
    return [raw, (0.45 * raw + 0.55 * heat(cam)).astype(np.uint8), grey[e["pseudo"]], lut[e["pred"]]]


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    atomic_write_bytes(path, buf.getvalue())


def _sheet(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Rows of equal-height panels, 4 px apart, on white."""
    h = max(p.shape[0] for r in rows for p in r)
    w = max(sum(p.shape[1] for p in r) + 4 * (len(r) - 1) for r in rows)
    sheet = np.full((len(rows) * (h + 4) - 4, w, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        x = 0
        for p in r:
            sheet[i * (h + 4): i * (h + 4) + p.shape[0], x: x + p.shape[1]] = p
            x += p.shape[1] + 4
    return sheet


def _record(e: dict[str, Any], names: tuple[str, ...], gt: np.ndarray | None) -> dict[str, Any]:
    objects = names[1:]
    counts = np.bincount(e["pred"].ravel(), minlength=len(names)) / e["pred"].size
    rec: dict[str, Any] = {
        "labels": [objects[k] for k in e["used"]], "labels_from": "photos.json" if e["labelled"] else "the network's kept classes",
        "scores": {objects[k]: round(float(s), 4) for k, s in enumerate(e["scores"])},
        "prediction_share": {names[c]: round(float(v), 4) for c, v in enumerate(counts) if v > 0},
        "pseudo_unlabelled": round(float((e["pseudo"] == IGNORE_INDEX).mean()), 4),
    }
    if gt is not None:
        rec.update({k: round(v, 4) for k, v in object_iou(e["pred"], gt).items()})
    return rec


def explain_images(run: Path, files: list[Path], out: Path, *, size: int | None = None) -> dict[str, Any]:
    """Write each image's CAM, pseudo label and prediction, the sheet and ``predictions.json``."""
    from PIL import Image

    from aakit.data.voc import load_info, save_mask_png
    from aakit.engine.inference import load_run_model
    from aakit.method import PseudoLabeler

    cfg, model, device = load_run_model(run)
    if not Path(cfg.data.root).exists():
        raise AakitError(f"{run}: its data set {cfg.data.root} is not here (the class names and colours come from it)")
    info = load_info(cfg.data.root)
    palette = np.asarray(info.palette, dtype=np.uint8)
    labeler = PseudoLabeler.from_config(cfg, workers=0)
    out.mkdir(parents=True, exist_ok=True)
    records: dict[str, Any] = {}
    rows = []
    try:
        for f in files:
            raw = load_photo(f, size)
            e = explain_image(model, cfg, labeler, raw, photo_labels(f, info.class_names), device)
            gt = ground_truth(f)
            if gt is not None and gt.shape != raw.shape[:2]:
                gt = np.asarray(Image.fromarray(gt).resize((raw.shape[1], raw.shape[0]), Image.NEAREST))
            panels = _panels(raw, e, palette)
            _write_jpeg(out / f"{f.stem}_cam.jpg", panels[1])
            save_mask_png(out / f"{f.stem}_pseudo.png", e["pseudo"], info.palette)
            save_mask_png(out / f"{f.stem}.png", e["pred"], info.palette)
            records[f.stem] = _record(e, info.class_names, gt)
            rows.append(panels)
    finally:
        labeler.close()
    _write_jpeg(out / "sheet.jpg", _sheet(rows))
    doc = {"run": run.name, "size": size, "columns": ["image", "CAM (labelled classes, max)", "pseudo label", "prediction"],
           "images": records}
    atomic_write_json(out / "predictions.json", doc)
    return doc


#: the regions of :func:`cam_rim_profile`, in the order they are reported
RIM_REGIONS = ("interior", "inner_rim", "outer_rim", "near_background", "far_background")


def rim_regions(mask: np.ndarray, rim_px: int = 2) -> dict[str, np.ndarray]:
    """Boolean regions around one class's mask: its interior (more than ``rim_px`` inside the
    outline), the ``rim_px`` rings just inside and just outside the outline, the background
    within 8 px beyond that, and the background farther away."""
    from scipy import ndimage

    inner = ndimage.binary_erosion(mask, iterations=rim_px, border_value=1)
    outer = ndimage.binary_dilation(mask, iterations=rim_px)
    near = ndimage.binary_dilation(mask, iterations=rim_px + 8)
    return {"interior": inner, "inner_rim": mask & ~inner, "outer_rim": outer & ~mask,
            "near_background": near & ~outer, "far_background": ~near}


def cam_rim_profile(run: Path, *, split: str = "val", images: int = 100, rim_px: int = 2) -> dict[str, Any]:
    """Where a trained run's CAM lies around the objects of a data set with exact masks (the real-
    object lab's paste-edge check): the mean of each present class's CAM (scaled to a maximum of 1
    per image) over the :func:`rim_regions` of that class's ground truth, pooled over the first
    ``images`` images of ``split``. A CAM that learnt "a pasted outline is an object" would peak on
    the rims rather than in the interior."""
    from aakit.data.voc import EvalDataset
    from aakit.engine.inference import load_run_model
    from aakit.method import training_cam

    cfg, model, device = load_run_model(run)
    d = cfg.data
    data = EvalDataset(d.root, split, mean=d.mean, std=d.std, max_images=images)
    sums = dict.fromkeys(RIM_REGIONS, 0.0)
    counts = dict.fromkeys(RIM_REGIONS, 0)
    pairs = 0
    with torch.no_grad():
        for i in range(len(data)):
            item = data[i]
            x = item["image"].unsqueeze(0).to(device)
            cams = training_cam(model, x, model(x)["cam"], tuple(cfg.model.cam_scales), tuple(x.shape[-2:]))[0]
            cams = np.maximum(cams.cpu().numpy(), 0.0)
            gt = np.asarray(item["mask"])
            for c in (int(c) for c in np.unique(gt) if 0 < c < IGNORE_INDEX):
                cam = cams[c - 1] / max(float(cams[c - 1].max()), 1e-5)
                for name, region in rim_regions(gt == c, rim_px).items():
                    region &= gt != IGNORE_INDEX
                    sums[name] += float(cam[region].sum())
                    counts[name] += int(region.sum())
                pairs += 1
    means = {k: sums[k] / counts[k] if counts[k] else float("nan") for k in RIM_REGIONS}
    return {"run": run.name, "split": split, "images": len(data), "class_instances": pairs, "rim_px": rim_px,
            "mean_cam": means, "pixels": counts,
            "rim_over_interior": max(means["inner_rim"], means["outer_rim"]) / means["interior"]}
