"""The method's seams (issue 29): every registered CRF back-end and every registered refiner, run
through what the config and the label rule ask of it (as timm's tests run over ``list_models``)."""
from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pytest
import torch

from aakit.config import Config, CRFParams, EvalConfig, PseudoConfig
from aakit.method.crf import BACKENDS, CRFBackEnd, crf_backend, dense_crf, resolve_backend
from aakit.method.pseudo import REFINERS, PseudoLabeler, Refiner, build_refiner, pseudo_label_single
from test_crf import H, W, noisy_unary, two_region_image


def _literal(cls: type, name: str) -> set[str]:
    return set(typing.get_args(typing.get_type_hints(cls)[name]))


def _runnable(name: str) -> str:
    if not BACKENDS[name].available():
        pytest.skip(f"the {name} CRF back-end is not installed here")
    return name


# ----------------------------------------------------------------------------- CRF back-ends
def test_the_config_offers_exactly_the_registered_crf_backends() -> None:
    assert _literal(PseudoConfig, "crf_backend") == {"auto", *BACKENDS}
    assert _literal(EvalConfig, "crf_backend") == {"auto", *BACKENDS}


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_crf_backend_refines_a_noisy_unary_into_a_distribution(name: str) -> None:
    backend = crf_backend(_runnable(name))
    assert isinstance(backend, CRFBackEnd) and backend.name == name
    image, truth = two_region_image()
    prob = noisy_unary(truth, 0.2)
    q = dense_crf(image, prob, CRFParams(), backend=name)
    assert q.shape == (2, H, W) and q.dtype == np.float32
    np.testing.assert_allclose(q.sum(axis=0), 1.0, atol=1e-4)
    assert np.mean(prob.argmax(0) != truth) > 0.15 and np.mean(q.argmax(0) != truth) < 0.01


@pytest.mark.parametrize("name", sorted(n for n, cls in BACKENDS.items() if cls.batched))
def test_batched_crf_backend_gives_each_image_its_own_result(name: str) -> None:
    backend = crf_backend(_runnable(name))
    image, truth = two_region_image()
    probs = [noisy_unary(truth, 0.2, seed=s) for s in (1, 2)]
    images = torch.from_numpy(np.stack([image, image[:, ::-1].copy()])).permute(0, 3, 1, 2).contiguous()
    batch = backend.run_batch(images, torch.from_numpy(np.stack([probs[0], probs[1][:, :, ::-1].copy()])), CRFParams())
    alone = backend.run(image, probs[0], CRFParams())
    np.testing.assert_allclose(batch[0].numpy(), alone, atol=1e-5)
    assert not np.allclose(batch[1].numpy(), alone, atol=1e-3)


def test_auto_picks_a_batched_backend_on_cuda_and_unknown_names_are_refused() -> None:
    assert BACKENDS[resolve_backend("auto", "cuda:0")].batched
    assert resolve_backend("auto", "cpu") in BACKENDS
    with pytest.raises(ValueError, match="unknown CRF back-end 'nope'.*torch"):
        resolve_backend("nope")
    with pytest.raises(ValueError, match="unknown back-end"):
        dense_crf(*two_region_image()[:1], noisy_unary(two_region_image()[1], 0.2), CRFParams(), backend="nope")


# ----------------------------------------------------------------------------- refiners
def test_the_config_offers_exactly_the_registered_refiners() -> None:
    assert _literal(PseudoConfig, "refine") == set(REFINERS)
    assert PseudoConfig().refine == "crf" and "crf" in REFINERS  # the paper's, the default


def _backend_here() -> str:
    return resolve_backend("auto", "cpu")


@pytest.mark.parametrize("name", sorted(REFINERS))
def test_refiner_turns_scores_into_marginals_on_one_image(name: str) -> None:
    refiner = build_refiner(name, dataclasses.replace(PseudoConfig(), refine=name), CRFParams(), _backend_here())
    assert isinstance(refiner, Refiner) and refiner.name == name
    image, truth = two_region_image()
    q = refiner.refine(image, noisy_unary(truth, 0.2))
    assert q.shape == (2, H, W) and q.dtype == np.float32
    np.testing.assert_allclose(q.sum(axis=0), 1.0, atol=1e-4)
    assert np.mean(q.argmax(0) != truth) < np.mean(noisy_unary(truth, 0.2).argmax(0) != truth)


@pytest.mark.parametrize("name", sorted(REFINERS))
def test_refiner_labels_a_batch_the_same_in_the_workers_and_on_the_device(name: str) -> None:
    """Both paths of the labeller, with the refiner the config names: the per-image jobs (numpy rule,
    ``refine``) and the batched one (torch rule, ``refine_batch``) agree."""
    from test_crf_torch import _labelled_batch

    images, cams, labels = _labelled_batch()
    cfg = Config()
    cfg = dataclasses.replace(cfg, pseudo=dataclasses.replace(cfg.pseudo, refine=name, crf_backend="torch"))
    with PseudoLabeler.from_config(cfg, workers=0, batched=False) as per_image, \
            PseudoLabeler.from_config(cfg, workers=0, batched=True) as batched:
        if not per_image.refiner().batched:
            pytest.skip(f"refiner {name} has no batched path on the torch back-end")
        a = per_image(images, cams, labels, labels * 0.9)
        b = batched(torch.from_numpy(images), torch.from_numpy(cams), labels, labels * 0.9)
    agree = (a[0] == b[0]).float().mean()
    assert agree > 0.999 and bool((a[0] != 255).any())
    np.testing.assert_allclose(a[1].numpy(), b[1].numpy(), atol=1e-3)


class _Sharpen(Refiner):
    """A test refiner: the scores normalised per pixel and squared (no CRF at all)."""

    name = "sharpen"
    calls: typing.ClassVar[list[tuple[int, ...]]] = []

    @property
    def batched(self) -> bool:
        return True

    def refine(self, image: np.ndarray, scores: np.ndarray) -> np.ndarray:
        _Sharpen.calls.append(scores.shape)
        q = scores.astype(np.float32) ** 2
        return q / q.sum(0, keepdims=True)

    def refine_batch(self, images: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        _Sharpen.calls.append(tuple(scores.shape))
        q = scores.float() ** 2
        return q / q.sum(1, keepdim=True)


def test_a_new_refiner_is_one_class_plus_its_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The label rule asks the registered refiner, not the dense CRF: with a refiner that runs no
    CRF the labels are the rule's on that refiner's scores, on both paths."""
    from test_crf_torch import _labelled_batch

    monkeypatch.setitem(REFINERS, "sharpen", _Sharpen)
    monkeypatch.setattr(_Sharpen, "calls", [])
    images, cams, labels = _labelled_batch()
    params = dataclasses.replace(PseudoConfig(workers=0), refine="sharpen", min_crf_prob=0.0)
    label, _ = pseudo_label_single(images[1], cams[1], labels[1], labels[1] * 0.9, params=params, crf=CRFParams())
    assert _Sharpen.calls == [(3, 48, 48), (3, 48, 48)]  # the low- and the high-alpha scores of 2 classes
    with PseudoLabeler(params, CRFParams(), batched=True) as lab:
        on_device, _ = lab(torch.from_numpy(images), torch.from_numpy(cams), labels, labels * 0.9)
    assert np.array_equal(on_device[1].numpy(), label.astype(np.int64))
    # one refine_batch call per class count, the low- and high-alpha maps of its images stacked
    assert {(2, 2, 48, 48), (2, 3, 48, 48), (2, 4, 48, 48)} <= set(_Sharpen.calls)
    with_crf, _ = pseudo_label_single(images[1], cams[1], labels[1], labels[1] * 0.9,
                                      params=dataclasses.replace(params, refine="crf"), crf=CRFParams(),
                                      crf_backend="torch")
    assert not np.array_equal(with_crf, label)  # the CRF's labels differ: the seam is really taken


def test_unknown_refiner_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown refiner 'nope' \\(registered: crf"):
        build_refiner("nope", PseudoConfig(), CRFParams(), "torch")


def test_pseudo_refine_at_its_default_leaves_the_identity_of_earlier_runs() -> None:
    cfg = Config()
    assert "refine" not in cfg.identity()["pseudo"]
    other = dataclasses.replace(cfg, pseudo=dataclasses.replace(cfg.pseudo, refine="par"))  # type: ignore[arg-type]
    assert other.identity()["pseudo"]["refine"] == "par" and other.hash() != cfg.hash()


# ----------------------------------------------------------------------------- the old paths
def test_the_old_module_paths_still_give_the_method() -> None:
    """One release of shims: each old path gives the moved objects (one import of each)."""
    import aakit.crf
    import aakit.crf_torch
    import aakit.engine.targets
    import aakit.losses
    import aakit.method.crf.lattice
    import aakit.method.losses
    import aakit.method.objective
    import aakit.method.pseudo.rule_torch
    import aakit.method.targets
    import aakit.objective
    import aakit.pseudo
    import aakit.pseudo_torch

    assert aakit.losses is aakit.method.losses and aakit.objective is aakit.method.objective
    assert aakit.pseudo.PseudoLabeler is PseudoLabeler and aakit.pseudo.pseudo_label_single is pseudo_label_single
    assert aakit.crf.dense_crf is dense_crf and aakit.crf.resolve_backend is resolve_backend
    assert aakit.crf_torch.dense_crf_batch is aakit.method.crf.lattice.dense_crf_batch
    assert aakit.pseudo_torch.pseudo_labels_on_device is aakit.method.pseudo.rule_torch.pseudo_labels_on_device
    assert aakit.engine.targets.make_labeler is aakit.method.targets.make_labeler


@pytest.mark.parametrize(("source", "expected"), [("crf", "crf"), ("cam", "cam"), ("net", "crf"), ("oracle", "crf")])
def test_from_config_is_where_aa_confidence_chooses_the_labels_v(source: str, expected: str) -> None:
    cfg = Config()
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, aa_confidence=source))
    with PseudoLabeler.from_config(cfg, workers=0, crf_backend="torch") as lab:
        assert lab.confidence == expected and lab.pool.workers == 0
        assert lab.params.crf_backend == "torch" and cfg.pseudo.crf_backend == "auto"
        assert lab.refiner("cpu").name == cfg.pseudo.refine and lab.refiner("cpu").backend == "torch"
