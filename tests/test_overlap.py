"""Pseudo labels off the critical path: asynchronous CRF maps and the overlapped backward."""
from __future__ import annotations

import dataclasses
import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from aakit.config import Config, load_config
from aakit.method.crf import CRFPool
from aakit.method.pseudo import PseudoLabeler

from conftest import REPO, tiny_overrides

CALLS: list[int] = []  # in-process jobs record themselves here


def _record(x: int) -> int:
    CALLS.append(x)
    return 10 * x


def _wait_for_file(path: str) -> bool:
    """True if ``path`` appears within 20 s: the parent creates it after submit_map returned."""
    end = time.monotonic() + 20.0
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.01)
    return False


def _die_once(args: tuple[str, int]) -> int:
    """Kill the worker the first time (as the OOM killer would), answer 2x afterwards."""
    marker, x = args
    if not os.path.exists(marker):
        Path(marker).write_text("died")
        os.kill(os.getpid(), signal.SIGKILL)
    return 2 * x


def _die_always(x: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


# ----------------------------------------------------------------------------- CRFPool.submit_map
def test_submit_map_returns_before_the_jobs_finish(tmp_path: Path) -> None:
    flag = tmp_path / "go"
    with CRFPool(1, context="fork") as pool:
        pending = pool.submit_map(_wait_for_file, [str(flag)])
        flag.write_text("")  # only reachable if submit_map did not wait for the job
        assert pending.result() == [True]
        assert pending.result() == [True]  # asking twice gives the same list


def test_submit_map_keeps_input_order_with_two_workers() -> None:
    with CRFPool(2, context="fork") as pool:
        first = pool.submit_map(_record, range(7))
        second = pool.submit_map(_record, [5, 3])  # two maps in flight at once
        assert second.result() == [50, 30]
        assert first.result() == [10 * i for i in range(7)]


def test_in_process_submit_runs_the_jobs_when_asked() -> None:
    CALLS.clear()
    pending = CRFPool(0).submit_map(_record, [3, 1, 2])
    assert CALLS == []  # nothing runs in the background without workers
    assert pending.result() == [30, 10, 20]
    assert CALLS == [3, 1, 2]


def test_submit_map_retries_once_when_a_worker_dies(tmp_path: Path) -> None:
    marker = tmp_path / "died"
    with CRFPool(1, context="fork") as pool:
        executor = pool._executor
        pending = pool.submit_map(_die_once, [(str(marker), 1), (str(marker), 2)])
        assert pending.result() == [2, 4]
        assert marker.exists() and pool._executor is not executor  # it did die and restart
        assert pool.map(_die_once, [(str(marker), 5)]) == [10]  # the new workers serve on


def test_submit_map_raises_when_the_retry_dies_too() -> None:
    with CRFPool(1, context="fork") as pool:
        pending = pool.submit_map(_die_always, [1])
        with pytest.raises(BrokenProcessPool):
            pending.result()


def test_submit_after_close_is_refused() -> None:
    pool = CRFPool(1, context="fork")
    pool.close()
    with pytest.raises(RuntimeError, match="after close"):
        pool.submit_map(_record, [1])


# ----------------------------------------------------------------------------- PseudoLabeler.submit
def _label_inputs(b: int = 2, s: int = 32, k: int = 3) -> tuple[np.ndarray, ...]:
    g = np.random.default_rng(0)
    images = g.integers(0, 255, size=(b, s, s, 3), dtype=np.uint8)
    cams = np.zeros((b, k, s, s), dtype=np.float32)
    cams[:, 0, 4:20, 4:20] = 1.0
    cams[:, 1, 12:30, 14:30] = 0.8
    cams += g.random(cams.shape, dtype=np.float32) * 0.1
    labels = np.array([[1, 1, 0], [1, 0, 0]], dtype=np.float32)[:b]
    scores = np.full((b, k), 0.9, dtype=np.float32)
    return images, cams, labels, scores


@pytest.mark.parametrize("workers", [0, 1])
def test_pseudo_submit_equals_call_and_copies_its_inputs(workers: int) -> None:
    from aakit.config import CRFParams, PseudoConfig

    images, cams, labels, scores = _label_inputs()
    with PseudoLabeler(PseudoConfig(), CRFParams(), workers=workers, context="fork") as lab:
        want_label, want_conf = lab(images, cams, labels, scores)
        pending = lab.submit(images, cams, labels, scores)
        images[:] = 0  # the caller may reuse its buffers while the CRFs run
        cams[:] = 0
        got_label, got_conf = pending.result()
    assert (want_label != 255).any()  # a real labelling, not all ignored
    assert got_label.dtype == torch.int64 and got_conf.dtype == torch.float32
    torch.testing.assert_close(got_label, want_label, rtol=0, atol=0)
    torch.testing.assert_close(got_conf, want_conf, rtol=0, atol=0)


# ----------------------------------------------------------------------------- the overlapped step
def _batch(cfg: Config) -> dict[str, Any]:
    from aakit.data.voc import TrainDataset
    from aakit.engine.train import _collate

    d = cfg.data
    ds = TrainDataset(d.root, d.train_split, crop=d.crop, scale_range=d.scale_range, flip=d.flip,
                      mean=d.mean, std=d.std, max_images=d.max_images, supervision="image")
    return _collate([ds.sample(i, np.random.default_rng(i)) for i in range(cfg.train.batch_size)])


def _grads(model: torch.nn.Module, batch: dict[str, Any], cfg: Config, lab: PseudoLabeler,
           overlap: bool) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    from aakit.method import compute_losses

    seen: list[torch.Tensor] = []

    def early(loss: torch.Tensor) -> None:
        seen.append(loss.detach())
        loss.backward(retain_graph=True)

    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # same dropout draws in both runs
    out, scalars, extras = compute_losses(model, batch, cfg, epoch=cfg.train.epochs - 1, device=torch.device("cpu"),
                                          labeler=lab, early_backward=early if overlap else None)
    if overlap:  # L_cls went back early, the rest is returned
        assert len(seen) == 1 and float(seen[0]) == pytest.approx(scalars["cls"], rel=1e-6)
        assert float(out.detach()) == pytest.approx(scalars["total"] - scalars["cls"], rel=1e-5, abs=1e-6)
    else:
        assert not seen and float(out.detach()) == pytest.approx(scalars["total"], rel=1e-6)
    out.backward()
    assert "pseudo" in extras
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}, scalars


@pytest.mark.parametrize("workers", [0, 1])
def test_overlapped_backward_gives_the_same_gradient(tiny_synth: Path, workers: int) -> None:
    from aakit.models import build_model

    cfg = load_config(REPO / "experiments/synthetic/full.yaml", tiny_overrides(tiny_synth) | {"pseudo.workers": workers})
    batch = _batch(cfg)
    torch.manual_seed(1)
    model = build_model(dataclasses.replace(cfg.model, pretrained=None)).train()
    with PseudoLabeler(cfg.pseudo, cfg.crf.train, workers=workers, context="fork") as lab:
        plain, s_plain = _grads(model, batch, cfg, lab, overlap=False)
        early, s_early = _grads(model, batch, cfg, lab, overlap=True)
    assert set(s_plain) == set(s_early) == {"cls", "ce", "aa", "lr", "total"}  # every loss took part
    for k in s_plain:
        assert s_early[k] == pytest.approx(s_plain[k], rel=1e-6)
    assert s_plain["total"] == pytest.approx(sum(v for k, v in s_plain.items() if k != "total"), rel=1e-6)
    assert plain.keys() == early.keys() and len(plain) > 4
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in plain.values()))
    diff = torch.sqrt(sum(((plain[n] - early[n]).double() ** 2).sum() for n in plain))
    assert norm > 0 and float(diff / norm) < 2e-6  # measured ~5e-7: float32 summation order
    for n in plain:  # parameter by parameter, relative to that parameter's gradient
        scale = float(plain[n].abs().max())
        assert float((plain[n] - early[n]).abs().max()) <= 1e-5 * scale + 1e-12, n


def test_training_with_and_without_overlap_agree(tiny_synth: Path, tmp_path: Path) -> None:
    from aakit.engine.train import train
    from aakit.runs import read_metrics

    over = tiny_overrides(tiny_synth) | {"eval.train_iou": False, "eval.save_examples": 0, "eval.pseudo_images": 0}
    runs = {}
    for flag in (False, True):
        cfg = load_config(REPO / "experiments/synthetic/full.yaml", over | {"pseudo.overlap": flag})
        runs[flag] = train(cfg, results=tmp_path / str(flag), progress=False)
    steps = {f: [r for r in read_metrics(run / "metrics.jsonl")[0] if r["kind"] == "step"] for f, run in runs.items()}
    assert len(steps[True]) == len(steps[False]) == 8
    for a, b in zip(steps[False], steps[True]):
        assert a["losses"].keys() == b["losses"].keys()
        for k in a["losses"]:
            assert b["losses"][k] == pytest.approx(a["losses"][k], rel=1e-4, abs=1e-6), (a["step"], k)
        parts = sum(v for k, v in b["losses"].items() if k != "total")
        assert b["losses"]["total"] == pytest.approx(parts, rel=1e-6)  # total = cls + the rest
    assert set(steps[True][-1]["losses"]) == {"cls", "ce", "aa", "lr", "total"}
    wa = torch.load(runs[False] / "checkpoints/last.pt", weights_only=True)["model"]
    wb = torch.load(runs[True] / "checkpoints/last.pt", weights_only=True)["model"]
    keys = [k for k in wa if wa[k].is_floating_point()]
    diff = torch.cat([(wb[k].double() - wa[k].double()).flatten() for k in keys])
    size = torch.cat([wa[k].double().flatten() for k in keys])
    # rounding differences only (8 steps of float32 summed in another order)
    assert float(diff.norm()) < 1e-4 * float(size.norm()) and float(diff.abs().max()) < 1e-4
