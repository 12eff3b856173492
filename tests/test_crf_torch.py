"""The torch dense CRF (aakit.method.crf.lattice) against pydensecrf, and running without pydensecrf (issue 15).

Structured synthetic cases: flat-coloured discs and rectangles on a background with pixel noise,
class probabilities from blurred masks plus noise. Both back-ends get the same inputs with RRM's
training and test CRF parameters; the marginals must agree on the argmax of >= 99.5 % of the
pixels with mean |delta Q| <= 0.01, and RRM's pseudo-label rule on >= 99 % of the pixels.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from aakit.config import CRFParams, PseudoConfig, _test_crf
from aakit.method.crf import dense_crf, dense_crf_batch, pydensecrf_available, resolve_backend
from aakit.method.crf.lattice import build_lattice, lattice_filter
from aakit.method.pseudo import PseudoLabeler, pseudo_label_single

PARAMS = {"train": CRFParams(), "test": _test_crf()}
needs_pydensecrf = pytest.mark.skipif(not pydensecrf_available(), reason="pydensecrf not installed")


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a (H, W) array (zero padding)."""
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    x = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 0, x)
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 1, x)


def scene(size: int, labels: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (H, W, 3) uint8, true mask (H, W), noisy probabilities (labels, H, W) float32."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size, 3), np.float32) + rng.uniform(0, 255, 3)
    mask = np.zeros((size, size), np.int64)
    for k in range(1, labels):
        cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(size / 8, size / 3)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        box = (abs(yy - cy) < r) & (abs(xx - cx) < 0.6 * r)
        shape = disc if k % 2 else box
        mask[shape] = k
        image[shape] = rng.uniform(0, 255, 3)
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    prob = np.stack([_blur((mask == k).astype(np.float32), size / 20) for k in range(labels)])
    prob = np.clip(prob + rng.normal(0, 0.15, prob.shape), 0, 1).astype(np.float32)
    return image, mask, prob


CASES = [(64, 2, 1), (64, 4, 2), (64, 21, 3), (160, 3, 4)]


@needs_pydensecrf
@pytest.mark.parametrize("which", sorted(PARAMS))
@pytest.mark.parametrize(("size", "labels", "seed"), CASES)
def test_marginals_agree_with_pydensecrf(size: int, labels: int, seed: int, which: str) -> None:
    image, _, prob = scene(size, labels, seed)
    ref = dense_crf(image, prob, PARAMS[which], backend="pydensecrf")
    got = dense_crf(image, prob, PARAMS[which], backend="torch")
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.mean(got.argmax(0) == ref.argmax(0)) >= 0.995
    assert np.abs(got - ref).mean() <= 0.01
    assert np.abs(got - ref).max() <= 1e-4  # in fact float precision: ~1e-7 measured


@needs_pydensecrf
def test_pseudo_label_rule_agrees_with_pydensecrf() -> None:
    image, mask, _ = scene(96, 4, 7)
    rng = np.random.default_rng(0)
    k = 20
    cam = np.zeros((k, 96, 96), np.float32)
    present = [2, 7, 14]
    for i, c in enumerate(present):
        cam[c] = np.clip(_blur((mask == i + 1).astype(np.float32), 4) * 2 + rng.normal(0, 0.1, (96, 96)), 0, None)
    image_labels = np.zeros(k, np.float32)
    image_labels[present] = 1
    scores = np.where(image_labels > 0, 0.9, 0.01).astype(np.float32)
    out = {b: pseudo_label_single(image, cam, image_labels, scores, params=PseudoConfig(), crf=CRFParams(),
                                  crf_backend=b) for b in ("pydensecrf", "torch")}
    (lab_ref, conf_ref), (lab, conf) = out["pydensecrf"], out["torch"]
    assert np.mean(lab == lab_ref) >= 0.99
    assert np.abs(conf - conf_ref).mean() <= 0.01
    assert len(np.unique(lab_ref)) >= 3  # the case is not trivial


def test_batch_equals_one_image_at_a_time() -> None:
    """The images of a batch get disjoint lattices: batched = separate, to float rounding."""
    scenes = [scene(48, 3, s) for s in (11, 12)]
    images = torch.stack([torch.from_numpy(img).permute(2, 0, 1) for img, _, _ in scenes])
    probs = torch.stack([torch.from_numpy(p) for _, _, p in scenes])
    q = dense_crf_batch(images, probs, CRFParams())
    assert q.shape == probs.shape and q.dtype == torch.float32
    for i, (img, _, p) in enumerate(scenes):
        one = dense_crf(img, p, CRFParams(), backend="torch")
        np.testing.assert_allclose(q[i].numpy(), one, atol=1e-5)
    np.testing.assert_allclose(q.sum(dim=1).numpy(), 1.0, atol=1e-5)


def test_lattice_filter_is_a_symmetric_blur() -> None:
    """K is nearly symmetric (a^T K b ~ b^T K a: the axis blurs are symmetric but do not quite
    commute on a sparse lattice, hence pydensecrf's reversed order for K^T) and positive."""
    gen = torch.Generator().manual_seed(0)
    feats = torch.rand(500, 3, generator=gen) * 4
    lattice = build_lattice(feats, torch.zeros(500, dtype=torch.int64))
    a, b = torch.rand(500, 1, generator=gen), torch.rand(500, 1, generator=gen)
    ab = (a * lattice_filter(lattice, b)).sum()
    ba = (b * lattice_filter(lattice, a)).sum()
    assert torch.isclose(ab, ba, rtol=1e-2)
    ones = lattice_filter(lattice, torch.ones(500, 1))
    assert bool((ones > 0).all())


def test_backend_names_and_auto() -> None:
    assert resolve_backend("torch") == "torch"
    assert resolve_backend("auto", "cuda:0") == "torch"
    assert resolve_backend("auto", "cpu") == ("pydensecrf" if pydensecrf_available() else "torch")
    with pytest.raises(ValueError, match="back-end"):
        resolve_backend("cuda-crf")
    image, _, prob = scene(16, 2, 0)
    with pytest.raises(ValueError, match="back-end"):
        dense_crf(image, prob, CRFParams(), backend="nope")  # type: ignore[arg-type]


@pytest.fixture
def no_pydensecrf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide pydensecrf: importing it raises ImportError, as when it is not installed."""
    for name in list(sys.modules):
        if name == "pydensecrf" or name.startswith("pydensecrf."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)


@pytest.mark.usefixtures("no_pydensecrf")
def test_without_pydensecrf_auto_takes_torch_and_pseudo_labels_work() -> None:
    from aakit.engine.evaluate import segment

    assert not pydensecrf_available()
    assert resolve_backend("auto", "cpu") == "torch"
    image, mask, prob = scene(32, 3, 5)
    with pytest.raises(ImportError, match="densecrf"):
        dense_crf(image, prob, CRFParams(), backend="pydensecrf")
    k = 4
    cam = np.zeros((1, k, 32, 32), np.float32)
    cam[0, 1] = _blur((mask == 1).astype(np.float32), 2) * 2
    cam[0, 2] = _blur((mask == 2).astype(np.float32), 2) * 2
    labels = np.array([[0, 1, 1, 0]], np.float32)
    with PseudoLabeler(PseudoConfig(workers=0), CRFParams()) as labeler:
        lab, conf = labeler(image[None], cam, labels, labels * 0.9)
    assert lab.shape == (1, 32, 32) and conf.shape == (1, 32, 32)
    probs = np.concatenate([prob, np.zeros((1, 32, 32), np.float32)])
    pred = segment(probs, np.array([True, True, False]), image, _test_crf())
    assert pred.shape == (32, 32)


@pytest.mark.usefixtures("no_pydensecrf")
def test_training_and_evaluation_run_without_pydensecrf(tiny_config, tmp_path) -> None:
    """The whole pipeline (warm-up, pseudo labels, AA/LR losses, evaluation with the test CRF)
    runs with pydensecrf absent: ``auto`` takes the torch back-end."""
    import json

    from aakit.engine.train import train

    tiny_config.eval.crf = True
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = train(tiny_config, results=tmp_path, progress=False)
    finally:
        torch.set_num_threads(threads)
    summary = json.loads((run / "summary.json").read_text())
    assert 0.0 <= summary["metrics"]["val"]["miou"] <= 1.0
    assert summary["pseudo_miou"] > 0.0
    assert "pydensecrf.densecrf" not in sys.modules or sys.modules["pydensecrf.densecrf"] is None


def test_batched_pseudo_labels_equal_one_image_at_a_time() -> None:
    """PseudoLabeler(batched=True): the CRFs of the batch in one dense_crf_batch call per label
    count, in process; the same labels as the per-image jobs (torch back-end), to rounding."""
    import dataclasses

    k, size = 6, 48
    images, cams, labels = [], [], []
    for seed, present in ((40, [1]), (41, [0, 3]), (42, [2, 4]), (43, [])):
        img, mask, _ = scene(size, len(present) + 1, seed)
        cam = np.zeros((k, size, size), np.float32)
        for i, c in enumerate(present):
            cam[c] = _blur((mask == i + 1).astype(np.float32), 3) * 2
        lab = np.zeros(k, np.float32)
        lab[present] = 1
        images.append(img), cams.append(cam), labels.append(lab)
    images_a, cams_a, labels_a = np.stack(images), np.stack(cams), np.stack(labels)
    valid = np.ones((4, size, size), bool)
    valid[:, :, -5:] = False
    params = dataclasses.replace(PseudoConfig(workers=0), crf_backend="torch")
    out = {}
    for batched in (False, True):
        with PseudoLabeler(params, CRFParams(), batched=batched) as labeler:
            out[batched] = labeler(images_a, torch.from_numpy(cams_a), labels_a, labels_a * 0.9, valid)
    (lab0, conf0), (lab1, conf1) = out[False], out[True]
    assert lab0.shape == lab1.shape == (4, size, size)
    assert float((lab0 == lab1).float().mean()) >= 0.999
    assert float((conf0 - conf1).abs().max()) <= 1e-4
    assert bool((lab1[:, :, -5:] == 255).all()) and bool((lab1[3] != 255).any())


def test_config_keys_and_run_identity() -> None:
    """pseudo/eval.crf_backend take auto | pydensecrf | torch and, like the device, leave the
    run's hash alone (the back-ends agree to float precision)."""
    from aakit.config import ConfigError, load_config

    default = load_config(None)
    assert default.pseudo.crf_backend == default.eval.crf_backend == "auto"
    torch_cfg = load_config(None, {"pseudo.crf_backend": "torch", "eval.crf_backend": "pydensecrf"})
    assert torch_cfg.pseudo.crf_backend == "torch" and torch_cfg.eval.crf_backend == "pydensecrf"
    assert torch_cfg.identity() == default.identity()
    with pytest.raises(ConfigError):
        load_config(None, {"pseudo.crf_backend": "cuda"})


@needs_pydensecrf
@pytest.mark.parametrize("rows, cols", [(50, 96), (96, 37), (1, 1), (2, 96)])
def test_non_square_and_tiny_images_agree(rows: int, cols: int) -> None:
    """x runs along the columns, y along the rows, as in pydensecrf (square cases hide a swap)."""
    image, _, prob = scene(96, 4, 3)
    image, prob = image[:rows, :cols], prob[:, :rows, :cols]
    for params in PARAMS.values():
        ref = dense_crf(image, prob, params, backend="pydensecrf")
        got = dense_crf(image, prob, params, backend="torch")
        assert np.abs(got - ref).max() <= 1e-4


def _labelled_batch(k: int = 6, size: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four images (one without any class) with blurred-mask CAMs of their present classes."""
    images, cams, labels = [], [], []
    for seed, present in ((50, [1]), (51, [0, 3]), (52, [2, 4, 5]), (53, [])):
        img, mask, _ = scene(size, len(present) + 1, seed)
        cam = np.zeros((k, size, size), np.float32)
        for i, c in enumerate(present):
            cam[c] = _blur((mask == i + 1).astype(np.float32), 3) * (2 + i)
        lab = np.zeros(k, np.float32)
        lab[present] = 1
        images.append(img), cams.append(cam), labels.append(lab)
    return np.stack(images), np.stack(cams), np.stack(labels)


@pytest.mark.parametrize("confidence", ["crf", "cam"])
def test_rule_on_tensors_equals_the_numpy_rule(confidence: str) -> None:
    """aakit.method.pseudo.rule_torch (labels made on the device) against aakit.method.pseudo's numpy rule, image by
    image, with the same (torch) CRF: the same labels and V, to float rounding."""
    from aakit.method.pseudo.rule_torch import pseudo_labels_on_device

    images, cams, labels = _labelled_batch()
    params = PseudoConfig(workers=0)
    valid = np.ones(images.shape[:3], bool)
    valid[:, :4] = False
    keeps = [np.flatnonzero(lab) for lab in labels]
    lab_t, conf_t = pseudo_labels_on_device(
        torch.from_numpy(images), torch.from_numpy(cams), [torch.from_numpy(k) for k in keeps], params=params,
        crf=CRFParams(), valid=torch.from_numpy(valid), confidence=confidence)
    for i in range(len(images)):
        ref_lab, ref_conf = pseudo_label_single(images[i], cams[i], labels[i], labels[i], params=params,
                                                crf=CRFParams(), valid=valid[i], confidence=confidence,
                                                crf_backend="torch")
        assert np.array_equal(lab_t[i].numpy(), ref_lab)  # measured: identical here, V within 6e-8
        assert float(np.abs(conf_t[i].numpy() - ref_conf).max()) <= 1e-6
    assert lab_t.dtype == torch.int64 and conf_t.dtype == torch.float32
    assert bool((lab_t[:, :4] == 255).all()) and bool((conf_t[:, :4] == 0).all())
    assert set(np.unique(lab_t[1].numpy())) <= {0, 1, 4, 255} and bool((lab_t[1] == 4).any())


def test_batched_torch_labels_never_turn_the_cams_into_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the torch back-end batched, the CAMs stay tensors (on their device) from the network
    to the labels: only the (B, K) image labels and scores are read on the host."""
    import dataclasses

    import aakit.method.pseudo.labeler as P

    images, cams, labels = _labelled_batch()
    cams_t = torch.from_numpy(cams)
    real = P._numpy

    def guarded(x: object) -> np.ndarray:
        assert x is not cams_t, "the CAMs were copied to numpy"
        return real(x)

    monkeypatch.setattr(P, "_numpy", guarded)
    params = dataclasses.replace(PseudoConfig(workers=0), crf_backend="torch")
    with PseudoLabeler(params, CRFParams(), batched=True) as labeler:
        lab, conf = labeler(torch.from_numpy(images), cams_t, labels, labels * 0.9)
    assert isinstance(lab, torch.Tensor) and lab.device == cams_t.device and lab.shape == (4, 48, 48)
    with PseudoLabeler(params, CRFParams(), batched=False) as labeler, pytest.raises(AssertionError, match="numpy"):
        labeler(torch.from_numpy(images), cams_t, labels, labels * 0.9)  # the per-image jobs do copy
