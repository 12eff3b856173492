"""Fidelity to RRM's code: crop padding (data.pad_mode) and the evaluation protocol."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aakit.config import Config, CRFParams, PseudoConfig, load_config
from aakit.data.transforms import TrainTransform, mean_colour
from aakit.method.pseudo import pseudo_label_single

from conftest import REPO, run_cli, tiny_overrides

IMAGENET_MEAN_COLOUR = (123, 116, 103)  # RRM: ((0 * std + mean) * 255).astype(np.uint8)


# ----------------------------------------------------------------------------- padding
def _small_image() -> np.ndarray:
    """A 20x30 image of one colour that is neither black nor the mean colour."""
    return np.full((20, 30, 3), (200, 10, 60), dtype=np.uint8)


def _crop(pad_mode: str, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    t = TrainTransform(crop=48, scale_range=(1.0, 1.0), flip=False, pad_mode=pad_mode)  # type: ignore[arg-type]
    return t(_small_image(), mask, rng=np.random.default_rng(5))


def test_mean_colour_is_rrms() -> None:
    assert tuple(mean_colour((0.485, 0.456, 0.406))) == IMAGENET_MEAN_COLOUR


@pytest.mark.parametrize("pad_mode", ["rrm", "ignore"])
def test_padded_pixels_of_the_crop(pad_mode: str) -> None:
    """Network input 0 (the mean) in both modes; the CRF's image and the label mask differ."""
    mask = np.ones((20, 30), dtype=np.uint8)
    out = _crop(pad_mode, mask)
    image_px = (out["raw"] == (200, 10, 60)).all(-1)
    pad = ~image_px
    assert image_px.sum() == 20 * 30 and pad.sum() == 48 * 48 - 600
    assert np.all(out["image"][pad] == 0.0)  # normalised: the mean colour, as RRM's zero container
    assert np.all(out["mask"][pad] == 255) and np.all(out["mask"][image_px] == 1)  # full supervision ignores it
    np.testing.assert_array_equal(out["valid"], image_px)  # where the image is, in both modes
    if pad_mode == "rrm":
        assert np.all(out["raw"][pad] == IMAGENET_MEAN_COLOUR)  # the CRF sees the mean colour
    else:
        assert np.all(out["raw"][pad] == 0)


def test_both_modes_draw_the_same_crop() -> None:
    a, b = _crop("rrm"), _crop("ignore")
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["valid"], b["valid"])
    np.testing.assert_array_equal(a["raw"][a["valid"]], b["raw"][b["valid"]])


def test_unknown_pad_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="pad_mode"):
        TrainTransform(pad_mode="zero")  # type: ignore[arg-type]
    from aakit.config import ConfigError

    with pytest.raises(ConfigError, match="pad_mode"):
        load_config(REPO / "experiments/synthetic/full.yaml", {"data.pad_mode": "zero"})


def test_rrm_padding_is_labelled_background_ignore_padding_is_255() -> None:
    """A red square on blue padded with the mean colour; the CAM is 0 on the padding."""
    h = w = 40
    yy, xx = np.mgrid[:h, :w]
    scene = np.full((h, w, 3), (20, 30, 200), dtype=np.uint8)
    scene[12:28, 12:28] = (220, 20, 20)
    cam = np.zeros((3, h, w), dtype=np.float32)
    cam[1] = 3.0 * np.maximum(0.0, 1.0 - np.hypot(yy - 19.5, xx - 19.5) / 14.0)
    crop = 56
    raw = np.empty((crop, crop, 3), dtype=np.uint8)
    raw[...] = IMAGENET_MEAN_COLOUR
    raw[:h, 8:8 + w] = scene
    cams = np.zeros((3, crop, crop), dtype=np.float32)
    cams[:, :h, 8:8 + w] = cam
    pad = np.ones((crop, crop), dtype=bool)
    pad[:h, 8:8 + w] = False
    kw = dict(params=PseudoConfig(), crf=CRFParams())
    labels, scores = np.array([0, 1, 0]), np.array([0.01, 0.9, 0.02], dtype=np.float32)
    rrm, conf = pseudo_label_single(raw, cams, labels, scores, **kw)  # type: ignore[arg-type]
    assert (rrm[pad] == 0).mean() > 0.95 and np.all(conf[pad][rrm[pad] == 0] >= 0.8)  # trained as background
    assert rrm[20, 28] == 2  # the object is still found
    ign, conf_i = pseudo_label_single(raw, cams, labels, scores, valid=~pad, **kw)  # type: ignore[arg-type]
    assert np.all(ign[pad] == 255) and np.all(conf_i[pad] == 0)


class _Recorder:
    """A PseudoLabeler stand-in that keeps what the CRF workers would be given."""

    def __init__(self, inner: object) -> None:
        self.inner, self.calls = inner, []

    def submit(self, raw: np.ndarray, cams: np.ndarray, labels: np.ndarray, scores: np.ndarray,
               valid: np.ndarray | None = None) -> object:
        self.calls.append({"raw": raw.copy(), "valid": None if valid is None else valid.copy()})
        return self.inner.submit(raw, cams, labels, scores, valid=valid)  # type: ignore[attr-defined]


@pytest.mark.parametrize("pad_mode", ["rrm", "ignore"])
def test_training_step_gives_the_crf_the_padded_crop(tiny_synth: Path, pad_mode: str) -> None:
    """The CRF input and the pseudo labels of a real training step, in both padding modes."""
    from aakit.engine.train import _build_data, _collate
    from aakit.method import compute_losses
    from aakit.models import build_model
    from aakit.method.pseudo import PseudoLabeler

    over = tiny_overrides(tiny_synth) | {"data.crop": 80, "data.scale_range": [1.0, 1.0], "data.pad_mode": pad_mode,
                                         "train.cls_warmup_epochs": 0}
    cfg: Config = load_config(REPO / "experiments/synthetic/full.yaml", over)
    train_set = _build_data(cfg)[0]
    batch = _collate([train_set.sample(i, np.random.default_rng(i)) for i in range(2)])
    pad = ~batch["valid"]  # 64-px images in 80-px crops
    assert pad.float().mean() > 0.3 and torch.all(batch["image"].permute(0, 2, 3, 1)[pad] == 0)
    torch.manual_seed(0)
    model = build_model(cfg.model)
    with PseudoLabeler(cfg.pseudo, cfg.crf.train, workers=0) as inner:
        rec = _Recorder(inner)
        _, _, extras = compute_losses(model, batch, cfg, epoch=0, device=torch.device("cpu"), labeler=rec)
    raw, valid = rec.calls[0]["raw"], rec.calls[0]["valid"]
    pseudo = extras["pseudo"]
    if pad_mode == "rrm":
        assert np.all(raw[pad.numpy()] == IMAGENET_MEAN_COLOUR) and valid is None  # RRM trains the padding
    else:
        assert np.all(raw[pad.numpy()] == 0) and np.array_equal(valid, ~pad.numpy())
        assert torch.all(pseudo[pad] == 255)


# ----------------------------------------------------------------------------- evaluation protocol
def test_eval_protocol_is_built_in_one_place(tiny_config: Config) -> None:
    from aakit.engine.evaluate import eval_protocol
    from aakit.errors import AakitError

    p = eval_protocol(tiny_config, protocol="msf", crf=True, rfpc=True, max_images=1449)
    assert p.key == "msf+crf+rfpc@1449" and p.name == "msf-crf-rfpc"
    assert p.scales == tuple(tiny_config.eval.scales) and p.flip and p.crf_params == tiny_config.crf.test
    ss = eval_protocol(tiny_config)  # the run's own: ss, no CRF, eval.max_images = 4
    assert ss.key == "ss@4" and ss.scales == (1.0,) and not ss.flip and not ss.crf
    assert eval_protocol(tiny_config, max_images=None).key == "ss@all"
    for bad in ({"max_images": 0}, {"protocol": "xx"}):
        with pytest.raises(AakitError):
            eval_protocol(tiny_config, **bad)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def crf_run(tiny_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 1-epoch run whose protocol has the test CRF on (eval.crf: true)."""
    from aakit.engine.train import train

    over = tiny_overrides(tiny_synth) | {"train.epochs": 1, "train.cls_warmup_epochs": 0, "eval.crf": True,
                                         "eval.train_iou": False}
    results = tmp_path_factory.mktemp("fidelity") / "results"
    run = train(load_config(REPO / "experiments/synthetic/baseline.yaml", over), results=results, progress=False)
    return run, results


def test_training_with_eval_crf_applies_the_test_crf(crf_run: tuple[Path, Path]) -> None:
    """summary.json's val is the CRF evaluation (it was the plain one, labelled crf: true)."""
    import json

    from aakit.data.voc import EvalDataset
    from aakit.engine.evaluate import eval_protocol, evaluate
    from aakit.engine.inference import load_run_model
    from aakit.runs import read_metrics

    run, _ = crf_run
    metrics = json.loads((run / "summary.json").read_text())["metrics"]
    assert metrics["val"]["crf"] is True and metrics["val"]["key"] == "ss+crf@4"
    assert metrics["val_rfpc"]["key"] == "ss+crf+rfpc@4"
    cfg, model, device = load_run_model(run)
    d = cfg.data
    val = EvalDataset(d.root, d.val_split, mean=d.mean, std=d.std, max_images=4)
    with_crf = evaluate(model, val, eval_protocol(cfg), num_classes=5, device=device)
    without = evaluate(model, val, eval_protocol(cfg, crf=False), num_classes=5, device=device)
    assert metrics["val"]["miou"] == with_crf["plain"]["miou"]
    assert metrics["val_rfpc"]["miou"] == with_crf["rfpc"]["miou"]
    assert with_crf["plain"]["miou"] != without["plain"]["miou"]  # the CRF changes the number here
    epoch = [r for r in read_metrics(run / "metrics.jsonl")[0] if r["kind"] == "epoch"][-1]
    assert epoch["miou"] == without["plain"]["miou"]  # the per-epoch curve stays ss without CRF


def test_an_evaluation_on_no_image_is_refused(crf_run: tuple[Path, Path]) -> None:
    from aakit.engine.evaluate import eval_protocol, evaluate
    from aakit.engine.inference import load_run_model
    from aakit.errors import AakitError

    cfg, model, device = load_run_model(crf_run[0])
    with pytest.raises(AakitError, match="no image"):
        evaluate(model, [], eval_protocol(cfg), num_classes=5, device=device)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_eval_command_keeps_results_from_more_images(crf_run: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """--max-images 0 and fewer images than stored: one line, exit 2, nothing written; --force replaces."""
    import json

    run, results = crf_run

    def aakit(*argv: str) -> tuple[int, str]:
        code, out, err = run_cli(["eval", str(run), "--results", str(results), *argv], monkeypatch, capsys)
        return code, out + err if code == 0 else err

    def stored() -> dict:
        return json.loads((run / "eval" / "val-ss.json").read_text())

    before = _files(run)
    code, err = aakit("--max-images", "0")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--max-images 0" in err
    assert _files(run) == before
    code, out = aakit("--max-images", "3")
    assert code == 0 and "ss@3" in out and stored()["images"] == 3 and stored()["key"] == "ss@3"
    assert json.loads((run / "eval" / "val-ss-rfpc.json").read_text())["key"] == "ss+rfpc@3"
    before = _files(run)
    code, err = aakit("--max-images", "2")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--force" in err and "ss@3" in err
    assert _files(run) == before
    code, _ = aakit("--max-images", "4")  # more images: replaces
    assert code == 0 and stored()["key"] == "ss@4"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metrics"]["val-ss"]["key"] == "ss@4" and summary["metrics"]["val"]["key"] == "ss+crf@4"
    code, _ = aakit("--max-images", "2", "--force")
    assert code == 0 and stored()["key"] == "ss@2"


def test_eval_honours_the_runs_max_images_shows_progress_and_warns_on_an_unfinished_run(
        crf_run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 33: `aakit eval RUN` evaluated every image whatever the run's eval.max_images, said
    nothing without a terminal, and evaluated an interrupted run without a word."""
    import json
    import shutil

    src, _ = crf_run
    results = tmp_path / "results"
    run = results / "runs" / src.name
    shutil.copytree(src, run)
    (run / "eval").exists() and shutil.rmtree(run / "eval")

    def aakit(*argv: str) -> tuple[int, str, str]:
        return run_cli(["eval", str(run), "--results", str(results), "--protocol", "ss", *argv], monkeypatch, capsys)

    code, out, err = aakit()
    stored = json.loads((run / "eval" / "val-ss.json").read_text())
    assert code == 0 and stored["images"] == 4, (stored["key"], err)  # the run's eval.max_images, of 8
    progress = [line for line in err.splitlines() if "/4 images" in line]
    assert progress and progress[-1].split(": ")[-1].startswith("4/4 images (100%)"), err
    assert "warning" not in err

    code, out, err = aakit("--all-images")
    assert code == 0 and json.loads((run / "eval" / "val-ss.json").read_text())["images"] == 8
    code, out, err = aakit("--all-images", "--max-images", "2")
    assert code == 2 and len(err.strip().splitlines()) == 1

    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps(status | {"status": "interrupted", "step": 3}))
    code, out, err = aakit("--all-images", "--force")
    assert code == 0 and f"warning: {run.name} is interrupted at step 3, not finished" in err
