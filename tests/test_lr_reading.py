"""Eq. 16's D read as the cosine distance (loss.lr_reading: distance), a departure offered off by
default (docs/method.md): hand-computed numbers, and the identity of runs made before it."""
from __future__ import annotations

import math

import pytest
import torch

from aakit import losses
from aakit.config import load_config


def test_modulation_factor_by_hand() -> None:
    s_a, s_b = torch.tensor([0.95, 1.0]), torch.tensor([0.90, 1.0])
    sim = losses.modulation_factor(s_a, s_b, 2.0)
    dist = losses.modulation_factor(s_a, s_b, 2.0, "distance")
    # similarity: (1 - 0.05 / 1.85)^2; distance: d = 0.05, 0.10 -> (1 - 0.05 / 0.15)^2 = (2/3)^2
    assert sim[0].item() == pytest.approx((1 - 0.05 / 1.85) ** 2, abs=1e-6)
    assert dist[0].item() == pytest.approx(4 / 9, abs=1e-6)
    assert sim[1].item() == 1.0 and dist[1].item() == 1.0, "both at the centroid: ratio 0"
    assert losses.modulation_factor(s_a, s_b, 0.0, "distance").tolist() == [1.0, 1.0]


def test_label_reassign_loss_by_hand() -> None:
    # three pixels in a row: background (1, 0) and (1, 1), class 1 (0, 1); beta = 1
    emb = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]).reshape(1, 2, 1, 3)
    label = torch.tensor([[[0, 0, 1]]])
    weight = torch.ones(1, 1, 3)
    # centroids (1, 0.5) and (0, 1); cosines: p0 (0.894427, 0), p1 (0.948683, 0.707107), p2 (0.447214, 1)
    c0 = [1 / math.sqrt(1.25), 1.5 / math.sqrt(2.5), 0.5 / math.sqrt(1.25)]
    c1 = [0.0, 1 / math.sqrt(2), 1.0]
    hinge = [1 + c1[0] - c0[0], 1 + c1[1] - c0[1], 1 + c0[2] - c1[2]]
    top = [(c0[0], c1[0]), (c0[1], c1[1]), (c1[2], c0[2])]
    for reading in ("similarity", "distance"):
        alpha = []
        for a, b in top:
            ratio = (a - b) / (a + b) if reading == "similarity" else (a - b) / (2 - a - b)
            alpha.append((1 - min(max(ratio, 0.0), 1.0)) ** 2)
        want = (alpha[0] * hinge[0] + alpha[1] * hinge[1]) / 2 + alpha[2] * hinge[2]
        got = losses.label_reassign_loss(emb, label, weight, gamma=2.0, reading=reading).item()  # type: ignore[arg-type]
        assert got == pytest.approx(want, abs=1e-5), reading
    assert losses.label_reassign_loss(emb, label, weight, gamma=2.0).item() == pytest.approx(0.447451, abs=1e-5)
    assert losses.label_reassign_loss(emb, label, weight, gamma=2.0, reading="distance").item() == \
        pytest.approx(0.035640, abs=1e-5)


def test_the_reading_is_in_the_identity_only_when_it_departs() -> None:
    cfg = load_config("experiments/synthetic/full.yaml")
    assert "lr_reading" not in cfg.identity()["loss"], "runs made before the option keep their hashes"
    dist = load_config("experiments/synthetic/full.yaml", ["loss.lr_reading=distance"])
    assert dist.identity()["loss"]["lr_reading"] == "distance" and dist.hash() != cfg.hash()


def test_the_objective_and_the_mechanism_record_take_the_reading() -> None:
    from aakit.mechanism import reassignment_counts
    from aakit.objective import LabelReassignLoss

    dist = load_config("experiments/synthetic/full.yaml", ["loss.lr_reading=distance"])
    term = LabelReassignLoss.from_config(dist)
    assert isinstance(term, LabelReassignLoss) and term.reading == "distance"
    emb = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]).reshape(1, 2, 1, 3)
    label, weight = torch.tensor([[[0, 0, 1]]]), torch.ones(1, 1, 3)
    a_sim = reassignment_counts(emb, label, weight, None, gamma=2.0)["alpha"]
    a_dist = reassignment_counts(emb, label, weight, None, gamma=2.0, reading="distance")["alpha"]
    assert a_sim[2].item() == pytest.approx((1 - (1 - 0.447214) / 1.447214) ** 2, abs=1e-5)
    assert a_dist[2].item() == pytest.approx(0.0, abs=1e-6)
