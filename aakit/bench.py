"""``aakit bench``: where the time of a training step goes, measured in one process.

Every figure is the median over ``repeats`` timed calls after one warm-up call, on the same
inputs, in the same run, so the ratios compare like with like:

* the network forward + backward of one batch;
* the AA loss and the LR loss, forward + backward, at the size of F^c / F^s;
* CAM + pseudo labels (both dense CRFs) for the batch, with 1, 2, ... CRF workers;
* the dense-CRF wrapper against pydensecrf called directly on the same input;
* the confusion-matrix accumulation (pixels / s);
* whole training steps (images / s) with and without AA + LR.

Nothing here is asserted by the test suite: speed belongs in benchmarks, not in tests.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aakit.config import Config, load_config

REPO = Path(__file__).resolve().parents[1]


def timeit(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _preset_config(preset: str) -> Config:
    if preset == "voc":
        return load_config(REPO / "experiments/voc/full.yaml", {"model.pretrained": None})
    return load_config(REPO / "experiments/synthetic/full.yaml")


def _synthetic_batch(cfg: Config, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch of random-but-structured images with 1-3 image labels each (no data set needed)."""
    g = np.random.default_rng(seed)
    s, k = cfg.data.crop, cfg.model.num_classes - 1
    raw = np.zeros((batch, s, s, 3), dtype=np.uint8)
    labels = np.zeros((batch, k), dtype=np.float32)
    yy, xx = np.mgrid[:s, :s]
    for b in range(batch):
        raw[b] = g.integers(60, 120, size=3)
        for c in g.choice(k, size=g.integers(1, 4), replace=False):
            cy, cx, r = g.integers(s // 4, 3 * s // 4, size=2).tolist() + [int(g.integers(s // 8, s // 4))]
            raw[b][(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = g.integers(0, 255, size=3)
            labels[b, c] = 1
    raw = np.clip(raw.astype(np.int16) + g.integers(-8, 9, size=raw.shape), 0, 255).astype(np.uint8)
    mean, std = np.asarray(cfg.data.mean), np.asarray(cfg.data.std)
    image = ((raw / 255.0 - mean) / std).astype(np.float32).transpose(0, 3, 1, 2)
    return {
        "image": torch.from_numpy(image),
        "raw": torch.from_numpy(raw),
        "valid": torch.ones(batch, s, s, dtype=torch.bool),
        "labels": torch.from_numpy(labels),
        "id": [str(i) for i in range(batch)],
    }


def run_bench(preset: str = "synthetic", repeats: int = 5, workers: tuple[int, ...] = (1, 2),
              batch: int | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure everything; returns a flat dict of figures (seconds unless named otherwise)."""
    from aakit import losses
    from aakit.crf import dense_crf
    from aakit.engine.train import compute_losses, training_cam
    from aakit.metrics import ConfusionMeter
    from aakit.models import build_model
    from aakit.pseudo import PseudoLabeler, downsample_labels

    say = log or (lambda _m: None)
    cfg = _preset_config(preset)
    if preset == "voc":
        repeats = min(repeats, 2)
    b = batch or cfg.train.batch_size
    data = _synthetic_batch(cfg, b)
    device = torch.device("cpu")
    model = build_model(dataclasses.replace(cfg.model, pretrained=None)).train()
    fig: dict[str, Any] = {"preset": preset, "batch": b, "crop": cfg.data.crop, "repeats": repeats,
                           "torch_threads": torch.get_num_threads()}

    say("network forward + backward")

    def net_step() -> None:
        out = model(data["image"])
        (out["seg_logits"].mean() + out["cls_logits"].mean() + out["embedding"].mean()).backward()

    fig["net_fwd_bwd_s"] = timeit(net_step, repeats)

    with torch.no_grad():
        out = model(data["image"])
    size = tuple(data["image"].shape[-2:])
    say("CAM + pseudo labels")
    cams = training_cam(model, data["image"], out["cam"], tuple(cfg.model.cam_scales), size)
    fig["cam_s"] = timeit(lambda: training_cam(model, data["image"], out["cam"], tuple(cfg.model.cam_scales), size), repeats)
    scores = out["cls_logits"].sigmoid().numpy()
    args = (data["raw"].numpy(), cams.numpy(), data["labels"].numpy(), scores)
    for w in workers:
        with PseudoLabeler(cfg.pseudo, cfg.crf.train, workers=w) as lab:
            fig[f"pseudo_labels_w{w}_s"] = timeit(lambda: lab(*args), repeats)
            if w == workers[0]:
                label, conf = lab(*args)
    with PseudoLabeler(cfg.pseudo, cfg.crf.train, workers=0) as lab:
        fig["pseudo_labels_inproc_s"] = timeit(lambda: lab(*args), repeats)
    fig["pseudo_per_image_s"] = fig["pseudo_labels_inproc_s"] / b
    if len(workers) > 1:
        fig["crf_speedup_2_vs_1"] = fig[f"pseudo_labels_w{workers[0]}_s"] / fig[f"pseudo_labels_w{workers[1]}_s"]

    say("dense CRF: wrapper vs pydensecrf")
    prob = np.random.default_rng(0).dirichlet(np.ones(4), size=size).transpose(2, 0, 1).astype(np.float32)
    img = np.ascontiguousarray(data["raw"][0].numpy())
    fig["crf_wrapper_s"] = timeit(lambda: dense_crf(img, prob, cfg.crf.train), repeats)
    fig["crf_direct_s"] = timeit(lambda: _direct_crf(img, prob, cfg.crf.train), repeats)
    fig["crf_wrapper_overhead"] = fig["crf_wrapper_s"] / fig["crf_direct_s"]

    say("AA and LR losses")
    seg = torch.randn_like(out["seg_logits"]).requires_grad_(True)
    emb = torch.randn_like(out["embedding"]).requires_grad_(True)
    small, small_conf = downsample_labels(label, conf, tuple(seg.shape[-2:]))
    L = cfg.loss

    def aa() -> None:
        losses.affinity_loss(seg.softmax(1), small, dilations=tuple(L.dilations), margin=L.margin_aa,
                             confidence=small_conf, weighting=L.weighting, kl=L.kl).backward()

    def lr() -> None:
        beta = seg.detach().softmax(1).gather(1, small.clamp(0, seg.shape[1] - 1).unsqueeze(1)).squeeze(1)
        losses.label_reassign_loss(emb, small, beta, margin=L.margin_lr, gamma=L.gamma).backward()

    fig["aa_fwd_bwd_s"] = timeit(aa, repeats)
    fig["lr_fwd_bwd_s"] = timeit(lr, repeats)
    fig["aa_peak_mb"] = _peak_mb(aa)

    say("evaluation throughput")
    n_pix = 4_000_000
    g = np.random.default_rng(1)
    pred = g.integers(0, cfg.model.num_classes, size=n_pix, dtype=np.int64).astype(np.uint8)
    gt = pred.copy()
    gt[g.random(n_pix) < 0.2] = 255
    meter = ConfusionMeter(cfg.model.num_classes)
    fig["confusion_mpix_s"] = n_pix / timeit(lambda: meter.update(pred, gt), repeats) / 1e6

    say("training steps with and without AA + LR")
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    for name, over in (("full", {}), ("no_aa_lr", {"affinity": "none", "label_reassign": False})):
        c = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, **over))
        with PseudoLabeler(c.pseudo, c.crf.train, workers=c.pseudo.workers) as lab:
            def step() -> None:
                total, _, _ = compute_losses(model, data, c, epoch=c.train.epochs - 1, device=device, labeler=lab)
                opt.zero_grad()
                total.backward()
                opt.step()

            fig[f"step_{name}_s"] = timeit(step, repeats)
        fig[f"step_{name}_img_s"] = b / fig[f"step_{name}_s"]
    fig["ratio_aa_lr_over_step"] = (fig["aa_fwd_bwd_s"] + fig["lr_fwd_bwd_s"]) / fig["step_full_s"]
    fig["ratio_pseudo_over_step"] = fig[f"pseudo_labels_w{cfg.pseudo.workers}_s"] / fig["step_full_s"] if f"pseudo_labels_w{cfg.pseudo.workers}_s" in fig else None
    fig["ratio_step_full_over_no_aa_lr"] = fig["step_full_s"] / fig["step_no_aa_lr_s"]
    return fig


def _direct_crf(img: np.ndarray, prob: np.ndarray, p: Any) -> np.ndarray:
    """pydensecrf called directly, the way its README shows (for the overhead figure)."""
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    c, h, w = prob.shape
    d = dcrf.DenseCRF2D(w, h, c)
    d.setUnaryEnergy(unary_from_softmax(prob))
    d.addPairwiseGaussian(sxy=p.gaussian_sxy, compat=p.gaussian_compat)
    d.addPairwiseBilateral(sxy=p.bilateral_sxy, srgb=p.bilateral_srgb, rgbim=img, compat=p.bilateral_compat)
    return np.array(d.inference(p.iterations)).reshape(c, h, w)


def _peak_mb(fn: Callable[[], None]) -> float | None:
    """Peak resident-memory growth (MB) while ``fn`` runs, from the allocator's view."""
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return None
    import gc
    import threading

    gc.collect()
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.001)

    t = threading.Thread(target=watch)
    t.start()
    try:
        fn()
    finally:
        done.set()
        t.join()
    return (peak[0] - base) / 2**20


ROWS = [
    ("net_fwd_bwd_s", "network forward + backward (batch)", "s"),
    ("aa_fwd_bwd_s", "AA loss forward + backward", "s"),
    ("lr_fwd_bwd_s", "LR loss forward + backward", "s"),
    ("aa_peak_mb", "AA loss peak memory growth", "MB"),
    ("cam_s", "multi-scale CAM (batch)", "s"),
    ("pseudo_labels_inproc_s", "pseudo labels, in process (batch)", "s"),
    ("pseudo_labels_w1_s", "pseudo labels, 1 CRF worker (batch)", "s"),
    ("pseudo_labels_w2_s", "pseudo labels, 2 CRF workers (batch)", "s"),
    ("pseudo_per_image_s", "pseudo labels per image (2 CRFs)", "s"),
    ("crf_speedup_2_vs_1", "CRF speed-up, 2 workers vs 1", "x"),
    ("crf_wrapper_overhead", "dCRF wrapper / pydensecrf direct", "x"),
    ("confusion_mpix_s", "confusion matrix accumulation", "Mpix/s"),
    ("step_full_img_s", "training step, CLS+CE+AA+LR", "img/s"),
    ("step_no_aa_lr_img_s", "training step, CLS+CE", "img/s"),
    ("ratio_aa_lr_over_step", "(AA + LR) / step", "ratio"),
    ("ratio_pseudo_over_step", "pseudo labels / step", "ratio"),
    ("ratio_step_full_over_no_aa_lr", "step with AA+LR / without", "ratio"),
]


def cli_run(*, preset: str, json_out: Path | None, repeats: int, echo: Callable[[str], None]) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    if repeats < 1:
        from aakit.errors import AakitError

        raise AakitError(f"--repeats {repeats}: must be >= 1")
    console = Console()
    with console.status("benchmarking ...") as status:
        fig = run_bench(preset, repeats, log=lambda m: status.update(f"benchmarking: {m}"))
    table = Table(title=f"aakit bench --preset {preset} (batch {fig['batch']}, crop {fig['crop']}, "
                        f"median of {fig['repeats']}, {fig['torch_threads']} torch threads)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for key, label, unit in ROWS:
        v = fig.get(key)
        if v is None:
            continue
        table.add_row(label, f"{v:.4g}", unit)
    console.print(table)
    if json_out is not None:
        from aakit.runs import atomic_write_json

        atomic_write_json(json_out, fig)
        echo(f"wrote {json_out}")
    return fig
