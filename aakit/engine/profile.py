"""The error profile of a network's online pseudo labels (``aakit data profile RUN``; issue 14).

AA is built for pseudo-label errors near object boundaries, where confidence is lower; LR for a
minority of confidently wrong labels inside a class. Whether a data set holds those phenomena is
measured here, on train images, with the labels made exactly as in training (multi-scale CAM +
the two CRFs, :func:`aakit.engine.measure.iter_pseudo_labels`) by a trained run's network:

* ``precision`` (correct / labelled) and ``coverage`` (labelled / pixels with ground truth);
* ``wrong_within_px``: the share of wrong labelled pixels within k px of a ground-truth boundary;
* ``leak_far_share``: the share of background pixels labelled as an object that lie 24 px or
  more from every object (context leakage rather than boundary error);
* ``miou_labelled`` (ignored pixels left out, as Figure 3) beside ``miou_dense`` (ignored pixels
  counted as background);
* ``v``: for each source of V (``loss.aa_confidence``: crf, cam, net) the mean and quantiles
  on correct and on wrong labelled pixels;
* ``decoys`` (benchmark version 2, from ``scenes.json``; each decoy approximated by its ellipse
  shrunk to 85 %, inside its irregular outline): the share of decoy pixels the pseudo labels
  give the decoy's class, what share of that class's labelled pixels they are, and V on them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

from aakit.engine.inference import load_run_model
from aakit.engine.measure import labeler_inputs
from aakit.labels import IGNORE_INDEX
from aakit.metrics import ConfusionMeter
from aakit.files import read_json

DISTANCES = (1, 2, 4, 8, 24)
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def boundary_distance(gt: np.ndarray) -> np.ndarray:
    """Distance (px) of every pixel to the nearest ground-truth class change (ignored = its own class)."""
    edge = np.zeros(gt.shape, dtype=bool)
    edge[:-1] |= gt[:-1] != gt[1:]
    edge[1:] |= gt[:-1] != gt[1:]
    edge[:, :-1] |= gt[:, :-1] != gt[:, 1:]
    edge[:, 1:] |= gt[:, :-1] != gt[:, 1:]
    return distance_transform_edt(~edge) if edge.any() else np.full(gt.shape, np.inf)


def _v_summary(values: list[np.ndarray]) -> dict[str, Any]:
    v = np.concatenate(values) if values else np.zeros(0)
    if v.size == 0:
        return {"n": 0, "mean": None, "quantiles": None}
    return {"n": int(v.size), "mean": float(v.mean()), "quantiles": [float(q) for q in np.quantile(v, QUANTILES)]}


class _Tally:
    """Running counts of one profile."""

    def __init__(self, num_classes: int) -> None:
        self.labelled = self.correct = self.with_gt = self.leak = self.leak_far = 0
        self.wrong_near = dict.fromkeys(DISTANCES, 0)
        self.wrong = 0
        self.sparse, self.dense = ConfusionMeter(num_classes), ConfusionMeter(num_classes)
        self.v: dict[str, dict[str, list[np.ndarray]]] = {s: {"correct": [], "wrong": []} for s in ("crf", "cam", "net")}
        self.decoy_px = self.decoy_taken = self.decoy_class_labelled = 0

    def add_decoys(self, label: np.ndarray, decoy: np.ndarray, vs: dict[str, np.ndarray]) -> None:
        """``decoy``: (H, W) the class of the decoy under each pixel, 0 elsewhere."""
        on = decoy > 0
        taken = on & (label == decoy)
        self.decoy_px, self.decoy_taken = self.decoy_px + int(on.sum()), self.decoy_taken + int(taken.sum())
        classes = np.unique(decoy[on])
        self.decoy_class_labelled += int(np.isin(label, classes).sum())
        for src, v in vs.items():
            self.v[src].setdefault("decoy", []).append(v[taken])

    def add(self, label: np.ndarray, gt: np.ndarray, vs: dict[str, np.ndarray]) -> None:
        has_gt = gt != IGNORE_INDEX
        lab = (label != IGNORE_INDEX) & has_gt
        right, wrong = lab & (label == gt), lab & (label != gt)
        self.labelled, self.correct, self.with_gt = self.labelled + lab.sum(), self.correct + right.sum(), self.with_gt + has_gt.sum()
        self.wrong += int(wrong.sum())
        dist = boundary_distance(gt)
        for k in DISTANCES:
            self.wrong_near[k] += int((wrong & (dist <= k)).sum())
        leak = wrong & (gt == 0)
        objects = (gt != 0) & has_gt
        far = distance_transform_edt(~objects) >= 24 if objects.any() else np.ones(gt.shape, bool)
        self.leak, self.leak_far = self.leak + int(leak.sum()), self.leak_far + int((leak & far).sum())
        sparse_gt = np.where(label == IGNORE_INDEX, IGNORE_INDEX, gt)
        self.sparse.update(np.where(label == IGNORE_INDEX, 0, label), sparse_gt)
        self.dense.update(np.where(label == IGNORE_INDEX, 0, label), gt)
        for src, v in vs.items():
            self.v[src]["correct"].append(v[right])
            self.v[src]["wrong"].append(v[wrong])

    def result(self) -> dict[str, Any]:
        frac = lambda a, b: float(a) / float(b) if b else None  # noqa: E731
        return {
            "precision": frac(self.correct, self.labelled), "coverage": frac(self.labelled, self.with_gt),
            "wrong_within_px": {str(k): frac(n, self.wrong) for k, n in self.wrong_near.items()},
            "leak_far_share": frac(self.leak_far, self.leak),
            "miou_labelled": float(self.sparse.compute()["miou"]), "miou_dense": float(self.dense.compute()["miou"]),
            "v": {s: {k: _v_summary(vals) for k, vals in d.items()} for s, d in self.v.items()},
            "decoys": None if not self.decoy_px else {
                "pixels": self.decoy_px, "taken_share": frac(self.decoy_taken, self.decoy_px),
                "share_of_class_labels": frac(self.decoy_taken, self.decoy_class_labelled)},
        }


def decoy_map(scene: dict[str, Any] | None, shape: tuple[int, int], shrink: float = 0.85) -> np.ndarray:
    """(H, W) the class of the decoy under each pixel (0 elsewhere), each decoy of a v2 scene
    approximated by its rotated ellipse shrunk by ``shrink``."""
    out = np.zeros(shape, dtype=np.int64)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64) + 0.5
    for d in (scene or {}).get("decoys") or []:
        a = np.radians(float(d["angle_deg"]))
        u = np.cos(a) * (xx - d["center"][0]) + np.sin(a) * (yy - d["center"][1])
        v = -np.sin(a) * (xx - d["center"][0]) + np.cos(a) * (yy - d["center"][1])
        r = shrink * float(d["radius"])
        out[(u / r) ** 2 + (v / (r * float(d["aspect"]))) ** 2 <= 1.0] = int(d["class"])
    return out


def pseudo_label_profile(run: Path, *, data_root: str | None = None, images: int = 100) -> dict[str, Any]:
    """The profile of the module docstring for ``run``'s network on the first ``images`` train images
    of its data set (or of ``data_root``)."""
    from aakit.data.voc import EvalDataset
    from aakit.method import PseudoLabeler

    cfg, model, device = load_run_model(Path(run))
    if data_root is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=data_root))
    d = cfg.data
    dataset = EvalDataset(d.root, d.train_split, mean=d.mean, std=d.std, max_images=images)
    tally = _Tally(cfg.model.num_classes)
    scenes = read_json(Path(d.root) / "scenes.json")  # the embedded benchmark's scene descriptions
    scenes = scenes if isinstance(scenes, dict) else {}
    labelers = {s: PseudoLabeler.from_config(cfg, workers=0, confidence=s) for s in ("crf", "cam")}
    with torch.no_grad():
        for i in range(len(dataset)):
            item = dataset[i]
            args, out = labeler_inputs(model, item, cfg, device)
            (label, v_crf), (_, v_cam) = labelers["crf"](*args), labelers["cam"](*args)
            prob = F.interpolate(out["seg_logits"].float().softmax(1), size=item["image"].shape[-2:], mode="bilinear",
                                 align_corners=False)
            vs = {"crf": v_crf[0].numpy(), "cam": v_cam[0].numpy(), "net": prob.amax(1)[0].cpu().numpy()}
            tally.add(label[0].numpy(), np.asarray(item["mask"]), vs)
            if scenes:
                tally.add_decoys(label[0].numpy(), decoy_map(scenes.get(str(item["id"])), label.shape[-2:]), vs)
    return {"run": Path(run).name, "data": d.root, "images": len(dataset), **tally.result()}
