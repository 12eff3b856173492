"""``aakit bench``: where the time of a training step goes, measured in one process.

Every figure is the median over ``repeats`` timed calls after one warm-up call, on the same
inputs, in the same run, so the ratios compare like with like; variants that are compared with
each other (step variants, worker counts, wrapper vs direct CRF, CAM scales) are timed
interleaved, so that drifting machine load hits them alike:

* the network forward + backward of one batch;
* the AA and LR terms of the method's objective, forward + backward, at the size of F^c / F^s;
* the multi-scale CAM of the batch, with one scale and with the four of METHOD.md;
* CAM + pseudo labels (both dense CRFs) for the batch, in process and with 1, 2, ... CRF workers;
* the dense-CRF wrapper against pydensecrf called directly on the same input;
* the dense CRF per image by back-end (``crf_{pydensecrf|torch}_{px}px_...``): pydensecrf in
  process, and the torch back-end one image at a time (and batched, on every CUDA device), at the preset's crop and at VOC's 321 px, with the torch back-end's peak memory; and
  the batch's pseudo labels made by the torch back-end in process (``pseudo_labels_torch_s``);
* the confusion-matrix accumulation (pixels / s);
* the AA loss's peak allocator memory (torch's profiler: bytes live at once during fwd + bwd);
* whole training steps (images / s) with and without AA + LR, and with the pseudo labels
  overlapped with the backward of L_cls (``pseudo.overlap``) or not.

Nothing here is asserted by the test suite: speed belongs in benchmarks, not in tests.
"""
from __future__ import annotations

import dataclasses
import functools
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aakit.config import Config, load_config
from aakit.labels import IGNORE_INDEX
from aakit.presets import presets_root



class Timing(float):
    """A median of seconds that remembers its calls: ``n``, the fastest ``lo`` and slowest ``hi``
    (a float everywhere else; JSON writes the median)."""

    n: int
    lo: float
    hi: float

    @classmethod
    def of(cls, times: list[float]) -> Timing:
        t = cls(statistics.median(times))
        t.n, t.lo, t.hi = len(times), min(times), max(times)
        return t

    def mark(self) -> str:
        """"†" for fewer than 3 calls (one slow call is not set apart), "*" where the slowest call
        took over 1.5x the fastest (an outlier or a loaded machine), else ""."""
        if self.n < 3:
            return "†"
        return "*" if self.hi > SPREAD_MARK * self.lo else ""


SPREAD_MARK = 1.5  # slowest / fastest call above which a figure is marked


def timeit(fn: Callable[[], Any], repeats: int) -> Timing:
    """Median seconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return Timing.of(times)


def timeit_many(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, Timing]:
    """Median seconds of each function, the calls interleaved round-robin after one warm-up each.

    Interleaving makes the figures that are compared with each other (variants of a step, worker
    counts) see the same machine load: on a shared machine, load drifts over minutes and would
    otherwise show up as a difference between whatever ran first and whatever ran last.
    """
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: Timing.of(v) for k, v in times.items()}


def _preset_config(preset: str) -> Config:
    if preset == "voc":
        return load_config(presets_root() / "voc/full.yaml", {"model.pretrained": None})
    return load_config(presets_root() / "synthetic/full.yaml")


def _synthetic_batch(cfg: Config, batch: int, seed: int = 0) -> dict[str, Any]:
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


FOUR_SCALES = (1.0, 0.5, 1.5, 2.0)  # METHOD.md 1: the training-time CAM of RRM


@dataclass
class _Bench:
    """What every stage of :func:`run_bench` measures on, and where it writes its figures."""

    cfg: Config
    model: torch.nn.Module
    data: dict[str, Any]  # the batch (see _synthetic_batch)
    repeats: int
    say: Callable[[str], None]
    fig: dict[str, Any]

    @property
    def batch(self) -> int:
        return int(self.data["image"].shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the batch's images."""
        return int(self.data["image"].shape[-2]), int(self.data["image"].shape[-1])


def run_bench(preset: str = "synthetic", repeats: int = 5, workers: tuple[int, ...] = (1, 2),
              batch: int | None = None, log: Callable[[str], None] | None = None,
              confusion_pixels: int = 4_000_000, crf_px: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Measure everything; returns a flat dict of figures (seconds unless named otherwise).

    Args:
        preset: "synthetic" (embedded preset, small backbone, 164 px) or "voc" (ResNet-38,
            321 px, random weights: speed does not depend on them).
        repeats: timed calls per figure (median), after one warm-up call; at most 2 on voc.
        workers: CRF worker counts to time the pseudo labels with (scaling figure).
        batch: images per batch; default the preset's batch size, 1 for voc (this bench runs
            on the CPU, where one ResNet-38 step at 321 px takes seconds).
        log: called with the name of each stage as it starts.
        confusion_pixels: pixels per confusion-matrix update.
        crf_px: image sizes of the CRF back-end figures (default: the crop and VOC's 321).
    """
    from aakit.models import build_model

    cfg = _preset_config(preset)
    if preset == "voc":
        repeats = min(repeats, 2)
    b = batch or (1 if preset == "voc" else cfg.train.batch_size)
    data = _synthetic_batch(cfg, b)
    model = build_model(dataclasses.replace(cfg.model, pretrained=None)).train()
    fig: dict[str, Any] = {"preset": preset, "batch": b, "crop": cfg.data.crop, "repeats": repeats,
                           "torch_threads": torch.get_num_threads(), "crf_workers": cfg.pseudo.workers,
                           "cam_scales": list(cfg.model.cam_scales)}
    ctx = _Bench(cfg, model, data, repeats, log or (lambda _m: None), fig)
    out = _bench_network(ctx)
    cams = _bench_cam(ctx, out)
    label, conf = _bench_pseudo_labels(ctx, out, cams, workers)
    _bench_dense_crf(ctx)
    _bench_crf_backends(ctx, crf_px or (ctx.size[0], 321))
    _bench_losses(ctx, out, label, conf)
    _bench_confusion(ctx, confusion_pixels)
    _bench_steps(ctx)
    fig["ratio_aa_lr_over_step"] = (fig["aa_fwd_bwd_s"] + fig["lr_fwd_bwd_s"]) / fig["step_full_s"]
    fig["ratio_pseudo_over_step"] = fig["pseudo_labels_step_s"] / fig["step_full_s"]
    fig["ratio_step_full_over_no_aa_lr"] = fig["step_full_s"] / fig["step_no_aa_lr_s"]
    fig["overlap_speedup"] = fig["step_full_s"] / fig["step_full_overlap_s"]
    return fig


def _bench_network(ctx: _Bench) -> dict[str, torch.Tensor]:
    """Forward + backward of the batch (time, peak memory); returns a no-grad forward's output."""
    ctx.say("network forward + backward")
    model, image = ctx.model, ctx.data["image"]

    def net_step() -> None:
        out = model(image)
        (out["seg_logits"].mean() + out["cls_logits"].mean() + out["embedding"].mean()).backward()

    ctx.fig["net_fwd_bwd_s"] = timeit(net_step, ctx.repeats)
    ctx.fig["net_peak_mb"] = _peak_alloc_mb(net_step)  # what the AA loss's memory compares with
    with torch.no_grad():
        out: dict[str, torch.Tensor] = model(image)
    return out


def _bench_cam(ctx: _Bench, out: dict[str, torch.Tensor]) -> torch.Tensor:
    """The CAM of the batch with one scale, four, and the preset's; returns the preset's."""
    from aakit.method import training_cam

    ctx.say("multi-scale CAM")
    image, fig = ctx.data["image"], ctx.fig
    size = ctx.size

    def cam(scales: tuple[float, ...]) -> torch.Tensor:
        return training_cam(ctx.model, image, out["cam"], scales, size)

    fig.update(timeit_many({"cam_1scale_s": lambda: cam((1.0,)), "cam_4scales_s": lambda: cam(FOUR_SCALES)},
                           ctx.repeats))
    preset_scales = tuple(ctx.cfg.model.cam_scales)
    fig["cam_s"] = {(1.0,): fig["cam_1scale_s"], FOUR_SCALES: fig["cam_4scales_s"]}.get(preset_scales)
    if fig["cam_s"] is None:
        fig["cam_s"] = timeit(lambda: cam(preset_scales), ctx.repeats)
    return cam(preset_scales)


def _bench_pseudo_labels(ctx: _Bench, out: dict[str, torch.Tensor], cams: torch.Tensor,
                         workers: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo labels in process and with each CRF worker count; returns the batch's labels."""
    from aakit.method import PseudoLabeler

    ctx.say("pseudo labels")
    cfg, fig, b = ctx.cfg, ctx.fig, ctx.batch
    scores = out["cls_logits"].sigmoid().numpy()
    args = (ctx.data["raw"].numpy(), cams.numpy(), ctx.data["labels"].numpy(), scores)
    # One CRF job per image: worker scaling needs at least 2 images per worker, so the scaling
    # figures label the step's batch repeated to ``pseudo_batch`` images (same sizes and classes).
    n = max(b, 2 * max(workers, default=1))
    tiled = tuple(np.resize(a, (n, *a.shape[1:])) for a in args)
    fig["pseudo_batch"] = n
    counts = sorted({0, *workers, cfg.pseudo.workers})
    labelers = {w: PseudoLabeler.from_config(cfg, workers=w) for w in counts}
    try:  # every pool alive at once (idle workers sleep), the calls interleaved
        timed: dict[str, Callable[[], Any]] = {
            ("pseudo_labels_inproc_s" if w == 0 else f"pseudo_labels_w{w}_s"): functools.partial(lab, *tiled)
            for w, lab in labelers.items() if w == 0 or w in workers}
        # the step's own batch, with the step's pool: what a training step waits for
        timed["pseudo_labels_step_s"] = lambda: labelers[cfg.pseudo.workers](*args)
        # ... and made by the torch back-end in this process, the whole batch at once
        on_device = PseudoLabeler.from_config(cfg, workers=0, crf_backend="torch", batched=True)
        labelers[-1] = on_device
        timed["pseudo_labels_torch_s"] = lambda: on_device(*args)
        fig.update(timeit_many(timed, ctx.repeats))
        label, conf = labelers[0](*args)
    finally:
        for lab in labelers.values():
            lab.close()
    fig["pseudo_per_image_s"] = fig["pseudo_labels_inproc_s"] / n
    if len(workers) > 1:
        fig["crf_speedup_2_vs_1"] = fig[f"pseudo_labels_w{workers[0]}_s"] / fig[f"pseudo_labels_w{workers[1]}_s"]
    return label, conf


def _bench_dense_crf(ctx: _Bench) -> None:
    """aakit's dense-CRF wrapper against pydensecrf called directly, on the same input."""
    from aakit.method import dense_crf

    from aakit.method import pydensecrf_available

    if not pydensecrf_available():  # the torch back-end's figures come from _bench_crf_backends
        return
    ctx.say("dense CRF: wrapper vs pydensecrf")
    size = ctx.size
    p = ctx.cfg.crf.train
    # both sides get the same C-ordered float32 input (pydensecrf refuses strided arrays)
    prob = np.ascontiguousarray(np.random.default_rng(0).dirichlet(np.ones(4), size=size).transpose(2, 0, 1),
                                dtype=np.float32)
    img = np.ascontiguousarray(ctx.data["raw"][0].numpy())
    ctx.fig.update(timeit_many({"crf_wrapper_s": lambda: dense_crf(img, prob, p),
                                "crf_direct_s": lambda: _direct_crf(img, prob, p)}, max(ctx.repeats, 5)))
    ctx.fig["crf_wrapper_overhead"] = ctx.fig["crf_wrapper_s"] / ctx.fig["crf_direct_s"]


def crf_devices() -> list[str]:
    """Where the torch CRF can run here: the CPU and every CUDA device."""
    return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def crf_torch_figures(img: np.ndarray, prob: np.ndarray, batch: int, device: str, repeats: int,
                      params: Any) -> tuple[float, float]:
    """Seconds per image (median) of :func:`aakit.method.crf.dense_crf_batch` on ``batch`` copies of one
    image, and its peak memory in MB (CUDA's allocator peak, or torch's CPU allocations)."""
    from aakit.method import dense_crf_batch

    images = torch.from_numpy(np.stack([img] * batch)).permute(0, 3, 1, 2).contiguous().to(device)
    probs = torch.from_numpy(np.stack([prob] * batch)).to(device)

    def run() -> None:
        dense_crf_batch(images, probs, params)
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

    seconds = timeit(run, repeats) / batch
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run()
        return seconds, (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return seconds, _peak_alloc_mb(run)


def _bench_crf_backends(ctx: _Bench, sizes: tuple[int, ...]) -> None:
    """The dense CRF per image by back-end and device, at each of ``sizes`` (px)."""
    from aakit.method import pydensecrf_available

    ctx.say("dense CRF: back-ends and devices")
    p, g = ctx.cfg.crf.train, np.random.default_rng(2)
    for px in sorted(set(sizes)):
        cfg = dataclasses.replace(ctx.cfg, data=dataclasses.replace(ctx.cfg.data, crop=px))
        img = np.ascontiguousarray(_synthetic_batch(cfg, 1, seed=px)["raw"][0].numpy())
        for labels in (4, 21):
            prob = np.ascontiguousarray(g.dirichlet(np.ones(labels), size=(px, px)).transpose(2, 0, 1),
                                        dtype=np.float32)
            key = f"crf_{{}}_{px}px_{labels}l"
            if pydensecrf_available():
                ctx.fig[key.format("pydensecrf") + "_s"] = timeit(lambda: _direct_crf(img, prob, p), ctx.repeats)
            for device in crf_devices():
                dev = device.replace(":", "")
                # batches are for the GPU: on the CPU a batch is not faster per image (docs/performance.md)
                for b in sorted({1, ctx.batch}) if device.startswith("cuda") else [1]:
                    s, mb = crf_torch_figures(img, prob, b, device, ctx.repeats, p)
                    ctx.fig[key.format(f"torch_{dev}_b{b}") + "_s"] = s
                    ctx.fig[key.format(f"torch_{dev}_b{b}") + "_peak_mb"] = mb


def _bench_losses(ctx: _Bench, out: dict[str, torch.Tensor], label: torch.Tensor, conf: torch.Tensor) -> None:
    """The AA and LR terms of the method's objective (:func:`aakit.method.build_objective`, as the
    step wires them: softmax, labels and V at stride, LR's beta), forward + backward, on random F^c
    and F^s; AA's peak memory. A config without AA (or LR) times the term it would have."""
    from aakit.method import LossInputs, build_objective

    ctx.say("AA and LR losses")
    seg = torch.randn_like(out["seg_logits"]).requires_grad_(True)
    emb = torch.randn_like(out["embedding"]).requires_grad_(True)
    L = ctx.cfg.loss
    cfg = dataclasses.replace(ctx.cfg, loss=dataclasses.replace(
        L, affinity="aa" if L.affinity == "none" else L.affinity, label_reassign=True))
    terms = {t.loss_name: t for t in build_objective(cfg).terms}

    def inputs() -> LossInputs:  # fresh per call: the softmax and the sampling at stride are timed too
        x = LossInputs({"seg_logits": seg, "embedding": emb}, ctx.data["labels"], tuple(label.shape[-2:]))
        x.labels, x.confidence = label, conf
        return x

    def aa() -> None:
        terms["aa"](inputs()).backward()

    def lr() -> None:
        terms["lr"](inputs()).backward()

    ctx.fig["aa_fwd_bwd_s"] = timeit(aa, ctx.repeats)
    ctx.fig["lr_fwd_bwd_s"] = timeit(lr, ctx.repeats)
    ctx.fig["aa_input_mb"] = seg.numel() * seg.element_size() / 2**20
    ctx.fig["aa_peak_mb"] = _peak_alloc_mb(aa)


def _bench_confusion(ctx: _Bench, pixels: int) -> None:
    """Confusion-matrix accumulation, in million pixels per second (20 % ignored)."""
    from aakit.metrics import ConfusionMeter

    ctx.say("evaluation throughput")
    k = ctx.cfg.model.num_classes
    g = np.random.default_rng(1)
    pred = g.integers(0, k, size=pixels, dtype=np.int64).astype(np.uint8)
    gt = pred.copy()
    gt[g.random(pixels) < 0.2] = IGNORE_INDEX
    meter = ConfusionMeter(k)
    ctx.fig["confusion_mpix_s"] = pixels / timeit(lambda: meter.update(pred, gt), ctx.repeats) / 1e6


def _bench_steps(ctx: _Bench) -> None:
    """Whole training steps: with and without AA + LR, overlapped, and with a 4-scale CAM."""
    from aakit.method import PseudoLabeler, build_objective, losses_of_batch

    ctx.say("training steps")
    cfg, model, data = ctx.cfg, ctx.model, ctx.data
    device = torch.device("cpu")
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    variants: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
        ("full", {}, {}, False),
        ("full_overlap", {}, {}, True),
        ("no_aa_lr", {"affinity": "none", "label_reassign": False}, {}, False),
    ]
    if tuple(cfg.model.cam_scales) != FOUR_SCALES:
        variants.append(("full_cam4", {}, {"cam_scales": FOUR_SCALES}, False))

    def early(loss: torch.Tensor) -> None:
        loss.backward(retain_graph=True)

    def make_step(c: Config, lab: Any, overlap: bool) -> Callable[[], None]:
        objective = build_objective(c)

        def step() -> None:  # as Trainer.run_step does it: the method's own step, then SGD
            opt.zero_grad(set_to_none=True)
            losses, _ = losses_of_batch(model, data, c, objective, epoch=c.train.epochs - 1, device=device,
                                        labeler=lab, early_backward=early if overlap else None)
            losses.pending().backward()
            opt.step()

        return step

    with PseudoLabeler.from_config(cfg) as lab:
        steps = {}
        for name, loss_over, model_over, overlap in variants:
            c = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, **loss_over),
                                    model=dataclasses.replace(cfg.model, **model_over))
            steps[f"step_{name}_s"] = make_step(c, lab, overlap)
        ctx.fig.update(timeit_many(steps, ctx.repeats))
    for name, *_ in variants:
        ctx.fig[f"step_{name}_img_s"] = ctx.batch / ctx.fig[f"step_{name}_s"]


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


def _peak_alloc_mb(fn: Callable[[], None]) -> float:
    """Peak bytes (MB) allocated at once by torch while ``fn`` runs, above what was live before.

    torch's profiler records every CPU allocation and free ("[memory]" events); the running
    sum of their sizes, in time order, is what the allocator holds for ``fn`` at each moment.
    (Resident memory would hide reuse of freed pages and the allocator's caching.)
    """
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]  # type: ignore[union-attr]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()  # negative for a free
        peak = max(peak, live)
    return peak / 2**20


class _quiet_stderr:
    """Silence file descriptor 2 (the profiler's C++ start/stop notices) inside a block."""

    def __enter__(self) -> None:
        import os
        import sys

        sys.stderr.flush()
        self._saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc: Any) -> None:
        import os

        os.dup2(self._saved, 2)
        os.close(self._saved)


ROWS = [
    ("net_fwd_bwd_s", "network forward + backward (batch)", "s"),
    ("aa_fwd_bwd_s", "AA loss forward + backward", "s"),
    ("lr_fwd_bwd_s", "LR loss forward + backward", "s"),
    ("aa_peak_mb", "AA loss peak allocator memory (fwd + bwd)", "MB"),
    ("aa_input_mb", "  its input, softmax F^c", "MB"),
    ("net_peak_mb", "  network forward + backward, peak allocator memory", "MB"),
    ("cam_1scale_s", "CAM, scale 1 only (batch)", "s"),
    ("cam_4scales_s", "CAM, scales 1, 0.5, 1.5, 2 (batch)", "s"),
    ("pseudo_labels_step_s", "pseudo labels of the step's batch, its CRF pool", "s"),
    ("pseudo_batch", "images labelled in the scaling figures below", "img"),
    ("pseudo_labels_inproc_s", "  pseudo labels, in process", "s"),
    ("pseudo_labels_w1_s", "  pseudo labels, 1 CRF worker", "s"),
    ("pseudo_labels_w2_s", "  pseudo labels, 2 CRF workers", "s"),
    ("pseudo_per_image_s", "pseudo labels per image (2 CRFs), in process", "s"),
    ("crf_speedup_2_vs_1", "CRF speed-up, 2 workers vs 1", "x"),
    ("crf_wrapper_overhead", "dCRF wrapper / pydensecrf direct", "x"),
    ("confusion_mpix_s", "confusion matrix accumulation", "Mpix/s"),
    ("step_full_s", "training step, CLS+CE+AA+LR", "s"),
    ("step_full_overlap_s", "  same, CRFs overlapped with L_cls backward", "s"),
    ("step_no_aa_lr_s", "training step, CLS+CE", "s"),
    ("step_full_cam4_s", "training step, CLS+CE+AA+LR, 4-scale CAM", "s"),
    ("step_full_img_s", "training step, CLS+CE+AA+LR", "img/s"),
    ("step_full_overlap_img_s", "  same, overlapped", "img/s"),
    ("step_no_aa_lr_img_s", "training step, CLS+CE", "img/s"),
    ("ratio_aa_lr_over_step", "(AA + LR) / step", "ratio"),
    ("ratio_pseudo_over_step", "pseudo labels / step", "ratio"),
    ("ratio_step_full_over_no_aa_lr", "step with AA+LR / without", "ratio"),
    ("overlap_speedup", "step without overlap / with", "x"),
]


def crf_rows(fig: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Table rows of the CRF back-end figures (their keys depend on the sizes and devices)."""
    rows = [("pseudo_labels_torch_s", "  pseudo labels, torch CRF batched in process", "s")]
    for key in fig:
        m = re.fullmatch(r"crf_(pydensecrf|torch_(\w+?)_b(\d+))_(\d+)px_(\d+)l_(s|peak_mb)", key)
        if m:
            who = "pydensecrf" if m[1] == "pydensecrf" else f"torch CRF, {m[2]}, batch {m[3]}"
            what = "per image" if m[6] == "s" else "peak memory"
            rows.append((key, f"dense CRF {m[4]} px, {m[5]} labels: {who}, {what}", "s" if m[6] == "s" else "MB"))
    return rows


def spread_legend(marks: set[str]) -> list[str]:
    """The lines that explain the marks a table shows."""
    lines = []
    if "†" in marks:
        lines.append("† fewer than 3 timed calls: a single call can be an outlier (--repeats 5)")
    if "*" in marks:
        lines.append(f"* the slowest call took over {SPREAD_MARK}x the fastest: an outlier or a loaded machine")
    return lines


def cli_run(*, preset: str, json_out: Path | None, repeats: int, echo: Callable[[str], None],
            batch: int | None = None) -> dict[str, Any]:
    """``aakit bench``: run the benchmark, print the table, optionally write the JSON."""
    from rich.console import Console
    from rich.table import Table

    from aakit.errors import AakitError

    if repeats < 1:
        raise AakitError(f"--repeats {repeats}: must be >= 1")
    if batch is not None and batch < 1:
        raise AakitError(f"--batch {batch}: must be >= 1")
    console = Console()
    with console.status("benchmarking ...") as status:
        fig = run_bench(preset, repeats, batch=batch, log=lambda m: status.update(f"benchmarking: {m}"))
    table = Table(title=f"aakit bench --preset {preset} (batch {fig['batch']}, crop {fig['crop']}, "
                        f"median of {fig['repeats']}, {fig['torch_threads']} torch threads)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("unit")
    marks = set()
    for key, label, unit in [*ROWS, *crf_rows(fig)]:
        v = fig.get(key)
        if v is None:
            continue
        mark = v.mark() if isinstance(v, Timing) else ""
        marks.add(mark)
        table.add_row(label, (str(v) if isinstance(v, int) else f"{v:.4g}") + mark, unit)
    console.print(table)
    for line in spread_legend(marks):
        echo(line)
    if json_out is not None:
        from aakit.files import atomic_write_json

        atomic_write_json(json_out, fig)
        echo(f"wrote {json_out}")
    return fig
