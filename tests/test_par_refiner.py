"""``pseudo.refine: par | par+crf`` (issue 29): AFA's PAR as step 2's refiner of RRM's label rule.

tests/test_registries.py runs both through every refiner test (a distribution out, the workers'
path equal to the device's); here: what the rule reads of PAR's output, an image edge where PAR
must move the labels (and the CRF puts them elsewhere), a tiny training with each, and a bad
value refused in one line."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aakit.config import Config, CRFParams, PseudoConfig, load_config
from aakit.method.pseudo import PseudoLabeler, build_refiner, pseudo_label_single
from aakit.method.pseudo.par import par_refine
from conftest import REPO, tiny_overrides

S = 48
EDGE = 24  # the image's colour edge: the object is x >= EDGE


def _edge_scene() -> tuple[np.ndarray, np.ndarray]:
    """A dark left half and a bright right half (the object); one class whose CAM is a wide bump
    centred at x = 30 that spills 8 px over the edge into the background (the raw CAM's
    argmax puts the boundary at x = 16)."""
    image = np.zeros((S, S, 3), np.uint8)
    image[:, :EDGE], image[:, EDGE:] = 40, 200
    x = np.arange(S, dtype=np.float32)
    cam = np.repeat(np.exp(-((x - 30) / 16) ** 2)[None, None, :], S, axis=1)
    return image, cam.astype(np.float32)


def _labels(refine: str, **fields: float) -> np.ndarray:
    image, cam = _edge_scene()
    params = dataclasses.replace(PseudoConfig(workers=0, **fields), refine=refine)  # type: ignore[arg-type]
    label, _ = pseudo_label_single(image, cam, np.ones(1), np.ones(1), params=params, crf=CRFParams(),
                                   crf_backend="torch")
    return label


def test_par_output_is_read_as_a_distribution_over_the_rules_classes() -> None:
    """The rule's scores do not sum to 1, PAR's raw output sums to (1 + w2)^10 times its input's:
    the refiner normalises before and after, so the thresholds read a distribution whose argmax
    is raw PAR's on the normalised scores."""
    image, cam = _edge_scene()
    scores = np.concatenate([(1 - cam) ** 4, cam]).astype(np.float32)  # the low-alpha scores of one class
    assert not np.allclose(scores.sum(0), 1.0, atol=0.05)
    q = build_refiner("par", PseudoConfig(), CRFParams(), "torch").refine(image, scores)
    np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-5)
    probs = torch.from_numpy(scores / scores.sum(0, keepdims=True))[None]
    raw = par_refine(torch.from_numpy(image).permute(2, 0, 1)[None].float(), probs)[0]
    np.testing.assert_allclose(raw.sum(0).numpy(), 1.01 ** 10, rtol=1e-4)
    assert np.array_equal(q.argmax(0), raw.argmax(0).numpy())


def test_par_moves_the_boundary_to_the_image_edge_where_the_crf_does_not() -> None:
    """With the CAM-sure region opened (so that the refiner's decision at the edge is kept), PAR's
    labels switch from background to the object exactly at the colour edge; the CAM's own
    argmax switches 8 px early and the dense CRF's elsewhere: the labels differ from crf's."""
    open_region = {"sure_fg_top": 0.99, "sure_bg": 0.3}
    par = _labels("par", **open_region)
    crf = _labels("crf", **open_region)
    obj = par == 1
    assert obj[:, EDGE:-4].all() and not obj[:, :EDGE].any()  # the last columns: the CAM's tail, ignored or not
    assert (crf == 1)[:, :EDGE].any()  # the CRF puts object labels over the edge
    assert not np.array_equal(par, crf)
    both = _labels("par+crf", **open_region)
    assert (both == 1)[:, EDGE:-4].all() and not (both == 1)[:, :EDGE].any()


def test_par_labels_a_batch_on_the_device_path_as_the_workers_do() -> None:
    """The labeller's batched path (torch rule, ``refine_batch``) against the per-image one, on the
    edge scene stacked with its mirror (two images, one refine_batch call)."""
    image, cam = _edge_scene()
    images = np.stack([image, image[:, ::-1].copy()])
    cams = np.stack([cam, cam[:, :, ::-1].copy()])
    labels = np.ones((2, 1), np.float32)
    cfg = Config()
    cfg = dataclasses.replace(cfg, pseudo=dataclasses.replace(cfg.pseudo, refine="par", sure_fg_top=0.99, sure_bg=0.3))
    with PseudoLabeler.from_config(cfg, workers=0, batched=False) as one, \
            PseudoLabeler.from_config(cfg, workers=0, batched=True) as batch:
        a = one(images, cams, labels, labels)
        b = batch(torch.from_numpy(images), torch.from_numpy(cams), labels, labels)
    assert torch.equal(a[0], b[0]) and torch.equal(a[0][1], a[0][0].flip(-1))
    np.testing.assert_allclose(a[1].numpy(), b[1].numpy(), atol=1e-5)


@pytest.mark.parametrize("refine", ["par", "par+crf"])
def test_tiny_training_with_par(refine: str, tiny_synth: Path, tmp_path: Path) -> None:
    """A 2-epoch run (1 warm-up, then CE + AA + LR on PAR's labels) finishes with finite losses, and
    its identity carries the refiner."""
    from aakit.engine.train import train

    cfg = load_config(REPO / "experiments" / "synthetic" / "full.yaml",
                      {**tiny_overrides(tiny_synth), "pseudo.refine": refine, "eval.save_examples": 0})
    assert cfg.pseudo.refine == refine and cfg.identity()["pseudo"]["refine"] == refine
    run = train(cfg, results=tmp_path, progress=False)
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["losses"] for r in steps if r.get("kind") == "step" and "ce" in r.get("losses", {})]
    assert losses and all(np.isfinite(v) for r in losses for v in r.values())


def test_a_bad_refiner_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("pseudo:\n  refine: pat\n")
    p = subprocess.run([sys.executable, "-m", "aakit.cli", "train", str(cfg), "--results", str(tmp_path / "r")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0, p.stderr
    assert "pseudo.refine" in p.stderr and "par+crf" in p.stderr
    assert not (tmp_path / "r").exists()
