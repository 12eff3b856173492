"""Can ImageNet features tell the real-object lab's classes apart? A linear probe (docs/benchmark.md, "Objects").

Frozen ImageNet MobileNetV2 features (torchvision's weights, from the package make setup installs),
global-average-pooled per image, one logistic regression per class fitted on the train images'
image labels and scored on the val images (average precision per class; chance = the class's
share of val images). It bounds what an image-level classifier could learn from this set with
ImageNet features and no fine-tuning: if the probe is weak, CAMs trained on the set start from a
weak classifier whatever the WSSS losses do.

    .venv/bin/python benchmarks/objects_linear_probe.py [data/objects] [--last-block 18 --output-stride 32]

Needs scikit-learn (the ``search`` extra).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aakit.data.voc import load_info
from aakit.models.mobilenet import MobileNetV2Backbone, find_imagenet_weights, load_imagenet

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def features(net: MobileNetV2Backbone, root: Path, split: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features (N, C) and 0/1 image labels (N, K) of a split's images."""
    ids = (root / "ImageSets/Segmentation" / f"{split}.txt").read_text().split()
    labels = json.loads((root / "cls_labels.json").read_text())
    xs = []
    with torch.no_grad():
        for i in range(0, len(ids), 50):
            batch = [(np.asarray(Image.open(root / "JPEGImages" / f"{j}.jpg").convert("RGB")) / 255.0 - MEAN) / STD
                     for j in ids[i:i + 50]]
            x = torch.tensor(np.stack(batch), dtype=torch.float32).permute(0, 3, 1, 2)
            xs.append(net(x).mean((2, 3)).numpy())
    y = np.zeros((len(ids), k))
    for n, j in enumerate(ids):
        y[n, [c - 1 for c in labels[j]]] = 1  # cls_labels.json holds mask class ids (1 = first object class)
    return np.concatenate(xs), y


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="data/objects", type=Path)
    ap.add_argument("--last-block", type=int, default=13)
    ap.add_argument("--output-stride", type=int, default=4)
    a = ap.parse_args()
    names = load_info(a.root).class_names[1:]
    net = MobileNetV2Backbone(output_stride=a.output_stride, last_block=a.last_block)
    load_imagenet(net, torch.load(find_imagenet_weights(), weights_only=True))
    net.eval()
    xtr, ytr = features(net, a.root, "train_aug", len(names))
    xva, yva = features(net, a.root, "val", len(names))
    aps = [average_precision_score(yva[:, c], LogisticRegression(max_iter=2000).fit(xtr, ytr[:, c]).predict_proba(xva)[:, 1])
           for c in range(len(names))]
    print(f"MobileNetV2 (ImageNet, last block {a.last_block}, stride {a.output_stride}, {xtr.shape[1]} channels), "
          f"{len(xtr)} train / {len(xva)} val images")
    for name, v, chance in zip(names, aps, yva.mean(0)):
        print(f"  {name:10s} AP {v:.2f} (chance {chance:.2f})")
    print(f"  mean AP {np.mean(aps):.3f} (chance {yva.mean():.3f})")


if __name__ == "__main__":
    main()
