"""`aakit bench` smoke test: every figure is measured and sensible. No timing assertions."""
from __future__ import annotations

import json
import math
import subprocess
import sys

from aakit.bench import ROWS, crf_rows, run_bench

from conftest import REPO

# Figures every synthetic-preset run must produce (seconds, MB, ratios, throughputs).
POSITIVE = [
    "net_fwd_bwd_s", "net_peak_mb", "aa_fwd_bwd_s", "lr_fwd_bwd_s", "aa_peak_mb", "aa_input_mb",
    "cam_1scale_s", "cam_4scales_s", "cam_s",
    "pseudo_labels_step_s", "pseudo_labels_inproc_s", "pseudo_labels_w1_s", "pseudo_labels_w2_s", "pseudo_per_image_s",
    "crf_speedup_2_vs_1", "crf_wrapper_s", "crf_direct_s", "crf_wrapper_overhead", "confusion_mpix_s",
    "step_full_s", "step_full_overlap_s", "step_no_aa_lr_s", "step_full_cam4_s",
    "step_full_img_s", "step_full_overlap_img_s", "step_no_aa_lr_img_s", "step_full_cam4_img_s",
    "ratio_aa_lr_over_step", "ratio_pseudo_over_step", "ratio_step_full_over_no_aa_lr", "overlap_speedup",
]


def test_run_bench_reports_every_figure() -> None:
    fig = run_bench(preset="synthetic", repeats=1, batch=2, confusion_pixels=200_000, crf_px=(48,))
    assert fig["preset"] == "synthetic" and fig["batch"] == 2 and fig["crop"] == 164 and fig["repeats"] == 1
    assert fig["pseudo_batch"] == 4  # 2 images per worker for the scaling figures
    for key in POSITIVE:
        v = fig.get(key)
        assert isinstance(v, float) and math.isfinite(v) and v > 0, (key, v)
    for key, _, _ in ROWS:  # the printed table shows only measured figures
        assert key in fig, key
    # derived figures are what they claim to be
    assert fig["step_full_img_s"] == fig["batch"] / fig["step_full_s"]
    assert fig["crf_speedup_2_vs_1"] == fig["pseudo_labels_w1_s"] / fig["pseudo_labels_w2_s"]
    assert fig["overlap_speedup"] == fig["step_full_s"] / fig["step_full_overlap_s"]
    assert fig["ratio_pseudo_over_step"] == fig["pseudo_labels_step_s"] / fig["step_full_s"]
    assert fig["pseudo_per_image_s"] == fig["pseudo_labels_inproc_s"] / fig["pseudo_batch"]
    assert fig["cam_s"] == fig["cam_1scale_s"]  # the synthetic preset's CAM uses scale 1 only
    # the AA loss needs at least its pair tensors: more memory than its own input
    assert fig["aa_peak_mb"] > fig["aa_input_mb"]
    # the dense CRF by back-end: pydensecrf and the torch CRF one image at a time (batched on a GPU only)
    from aakit.method.crf import pydensecrf_available

    for who in ("pydensecrf", "torch_cpu_b1")[0 if pydensecrf_available() else 1:]:
        for labels in (4, 21):
            v = fig[f"crf_{who}_48px_{labels}l_s"]
            assert isinstance(v, float) and math.isfinite(v) and v > 0, (who, labels)
    assert fig["crf_torch_cpu_b1_48px_21l_peak_mb"] > 0 and fig["pseudo_labels_torch_s"] > 0
    assert "crf_torch_cpu_b2_48px_21l_s" not in fig  # batches only on a GPU
    assert {k for k, _, _ in crf_rows(fig)} >= {k for k in fig if k.startswith("crf_") and "px_" in k}
    json.dumps(fig)  # --json writes exactly this


def test_benchmark_script_is_a_plain_runner() -> None:
    script = REPO / "benchmarks" / "bench.py"
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "synthetic" in out.stdout and "--voc" in out.stdout


def test_a_figure_from_too_few_calls_or_with_a_wide_spread_is_marked() -> None:
    """Issue 33: `bench --repeats 1` showed its figures as if they were medians of many calls."""
    import json

    from aakit.bench import Timing, spread_legend, timeit

    one = timeit(lambda: None, 1)
    assert one.n == 1 and one.mark() == "†"
    steady, outlier = Timing.of([1.0, 1.1, 1.05]), Timing.of([1.0, 1.0, 2.0])
    assert (steady, steady.mark()) == (1.05, "") and (outlier, outlier.mark()) == (1.0, "*")
    assert json.loads(json.dumps({"x": outlier})) == {"x": 1.0}  # still a plain number in the JSON
    legend = spread_legend({one.mark(), outlier.mark(), ""})
    assert len(legend) == 2 and legend[0].startswith("†") and legend[1].startswith("*")
    assert spread_legend({""}) == []


def test_bench_times_the_methods_own_terms_and_step(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Issue 29: the loss figures come from the objective's AA and LR terms and the step figures from
    the method's losses_of_batch (what Trainer.run_step calls), not from a copy of their wiring."""
    import dataclasses

    import torch

    import aakit.bench as B
    import aakit.method.step as step_module
    from aakit.method.objective import AffinityLoss, LabelReassignLoss
    from aakit.models import build_model

    seen: list[str] = []
    for cls in (AffinityLoss, LabelReassignLoss):
        real = cls.loss
        monkeypatch.setattr(cls, "loss", lambda self, x, real=real: seen.append(self.loss_name) or real(self, x))
    real_step = step_module.losses_of_batch
    monkeypatch.setattr(step_module, "losses_of_batch", lambda *a, **k: seen.append("step") or real_step(*a, **k))
    cfg = B._preset_config("synthetic")
    cfg = dataclasses.replace(cfg, pseudo=dataclasses.replace(cfg.pseudo, workers=0))
    data = B._synthetic_batch(cfg, 2)
    model = build_model(dataclasses.replace(cfg.model, pretrained=None)).train()
    ctx = B._Bench(cfg, model, data, 1, lambda _m: None, {})
    out = model(data["image"])
    h, w = data["image"].shape[-2:]
    label = torch.randint(0, 3, (2, h, w))
    B._bench_losses(ctx, out, label, torch.rand(2, h, w))
    assert seen.count("aa") >= 2 and seen.count("lr") >= 2 and "step" not in seen
    seen.clear()
    B._bench_steps(ctx)
    assert seen.count("step") >= 2 and seen.count("aa") >= 2  # each step variant runs the method's step
