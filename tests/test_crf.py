"""Dense CRF wrapper and the persistent CRF worker pool.

This module deliberately does not import torch: a pool worker imports it to run ``_probe``.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from aakit.config import CRFParams
from aakit.method.crf import CRFPool, dense_crf, dense_crf_job

H = W = 40


def two_region_image() -> tuple[np.ndarray, np.ndarray]:
    """Dark left half, bright right half; the true label is 0 left, 1 right."""
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[:, :W // 2] = (30, 40, 50)
    image[:, W // 2:] = (220, 210, 200)
    truth = np.zeros((H, W), dtype=np.int64)
    truth[:, W // 2:] = 1
    return image, truth


def noisy_unary(truth: np.ndarray, flip: float, seed: int = 0) -> np.ndarray:
    """Probabilities right on average (0.65 on the truth) but wrong on a fraction ``flip``."""
    rng = np.random.default_rng(seed)
    p_true = np.where(rng.random(truth.shape) < flip, 0.35, 0.65).astype(np.float32)
    prob = np.empty((2,) + truth.shape, dtype=np.float32)
    prob[1] = np.where(truth == 1, p_true, 1 - p_true)
    prob[0] = 1 - prob[1]
    return prob


def test_output_is_a_distribution_per_pixel() -> None:
    image, truth = two_region_image()
    prob = noisy_unary(truth, 0.2)
    q = dense_crf(image, prob, CRFParams())
    assert q.shape == (2, H, W) and q.dtype == np.float32
    assert np.all(q >= 0) and np.all(q <= 1)
    np.testing.assert_allclose(q.sum(axis=0), 1.0, atol=1e-4)


def test_crf_sharpens_a_noisy_but_correct_unary() -> None:
    image, truth = two_region_image()
    prob = noisy_unary(truth, 0.2)
    before_err = np.mean(prob.argmax(0) != truth)
    q = dense_crf(image, prob, CRFParams())
    after_err = np.mean(q.argmax(0) != truth)
    assert before_err > 0.15  # the noise is real
    assert after_err < 0.01
    p_truth_before = np.take_along_axis(prob, truth[None], 0).mean()
    p_truth_after = np.take_along_axis(q, truth[None], 0).mean()
    assert p_truth_after > 0.9 > p_truth_before


def test_unnormalised_scores_give_the_same_crf_as_normalised() -> None:
    # A per-pixel constant in the unary does not change the CRF: raw CAM-like scores are fine.
    image, truth = two_region_image()
    prob = noisy_unary(truth, 0.2)
    scale = np.linspace(0.2, 1.0, H * W, dtype=np.float32).reshape(H, W)
    q_norm = dense_crf(image, prob, CRFParams())
    q_raw = dense_crf(image, prob * scale, CRFParams())
    np.testing.assert_allclose(q_raw, q_norm, atol=1e-4)


def test_non_contiguous_image_is_accepted() -> None:
    image, truth = two_region_image()
    flipped = image[:, ::-1]  # a view with negative strides
    prob = noisy_unary(truth, 0.2)[:, :, ::-1]
    q = dense_crf(flipped, prob, CRFParams())
    q_copy = dense_crf(np.ascontiguousarray(flipped), np.ascontiguousarray(prob), CRFParams())
    np.testing.assert_array_equal(q, q_copy)


def test_bad_shapes_raise() -> None:
    image, truth = two_region_image()
    prob = noisy_unary(truth, 0.2)
    with pytest.raises(ValueError, match="image"):
        dense_crf(image[..., :2], prob, CRFParams())
    with pytest.raises(ValueError, match="does not match"):
        dense_crf(image, prob[:, :-1], CRFParams())


def _jobs(n: int) -> list[tuple[np.ndarray, np.ndarray, CRFParams]]:
    image, truth = two_region_image()
    return [(image, noisy_unary(truth, 0.2, seed=s), CRFParams(iterations=5)) for s in range(n)]


def _probe(_: int) -> bool:
    """Runs in a worker: load the pseudo-label module as a real job does; is torch loaded?"""
    import aakit.method.pseudo  # noqa: F401

    return "torch" in sys.modules


def test_pool_with_two_workers_matches_in_process() -> None:
    jobs = _jobs(4)
    expected = CRFPool(0).map(dense_crf_job, jobs)
    with CRFPool(2) as pool:
        first = pool.map(dense_crf_job, jobs)
        second = pool.map(dense_crf_job, jobs[::-1])  # the same workers serve a second call
        assert pool.map(_probe, [0, 1]) == [False, False]
    assert len(first) == 4
    for got, want in zip(first, expected):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(second, expected[::-1]):
        np.testing.assert_array_equal(got, want)


def test_pool_lifecycle() -> None:
    pool = CRFPool(1, context="fork")
    assert pool.map(dense_crf_job, []) == []
    pool.close()
    pool.close()  # idempotent
    with pytest.raises(RuntimeError, match="after close"):
        pool.map(dense_crf_job, _jobs(1))
    inline = CRFPool(0)
    inline.close()
    assert len(inline.map(dense_crf_job, _jobs(2))) == 2  # in-process pool has nothing to stop
    with pytest.raises(ValueError):
        CRFPool(-1)


def test_pool_recovers_from_a_dead_worker() -> None:
    import os
    import signal

    jobs = _jobs(2)
    expected = CRFPool(0).map(dense_crf_job, jobs)
    with CRFPool(1) as pool:
        pool.map(dense_crf_job, jobs)
        executor = pool._executor
        assert executor is not None
        for pid in list(executor._processes):  # e.g. the OOM killer strikes between steps
            os.kill(pid, signal.SIGKILL)
        got = pool.map(dense_crf_job, jobs)
        assert pool._executor is not executor  # restarted
    for g, w in zip(got, expected):
        np.testing.assert_array_equal(g, w)
