"""The training engine end to end on a tiny benchmark: run directory, resume, DDP, eval."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from aakit.config import Config, load_config
from aakit.data.voc import load_info
from aakit.engine.explain import cam_rim_profile, heat, object_iou, rim_regions
from aakit.engine.train import epoch_batches, train
from aakit.runs import load_run, read_metrics

from conftest import REPO, tiny_overrides


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_two_epoch_training_writes_a_complete_run(tiny_config: Config, tmp_path: Path) -> None:
    run = train(tiny_config, results=tmp_path, progress=False, command=["test"])
    assert run.parent == tmp_path / "runs" and run.name.endswith(tiny_config.hash())
    for f in ("config.yaml", "provenance.json", "status.json", "metrics.jsonl", "summary.json", "checkpoints/last.pt"):
        assert (run / f).exists(), f
    records, errors = read_metrics(run / "metrics.jsonl")
    assert not errors
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["step"] for r in steps] == list(range(1, 9))  # 16 images / 4 per batch x 2 epochs
    assert set(steps[0]["losses"]) == {"cls", "total"}  # warm-up epoch: classification only
    assert set(steps[-1]["losses"]) == {"cls", "ce", "aa", "lr", "total"}  # LR in the last 2 epochs
    assert all(np.isfinite(r["losses"]["total"]) for r in steps)
    assert len(epochs) == 2 and "pseudo_miou" in epochs[1] and 0 <= epochs[1]["pseudo_miou"] <= 1
    s = _summary(run)
    assert s["status"] == "finished" and s["hash"] == tiny_config.hash()
    for key in ("val", "val_rfpc", "train", "train_rfpc"):
        m = s["metrics"][key]
        assert 0.0 <= m["miou"] <= 1.0 and len(m["iou"]) == 5 and m["protocol"] == "ss"
    assert s["metrics"]["val_rfpc"]["rfpc"] is True
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["command"] == ["test"] and prov["seed"] == 0 and "torch" in prov["versions"]
    assert load_run(run).status == "finished"
    preds = sorted(p.name for p in (run / "examples" / "pred").iterdir())
    pseudo = sorted(p.name for p in (run / "examples" / "pseudo").iterdir())
    assert len(preds) == 4 and set(preds) <= set(pseudo)  # eval.max_images = 4; Figure 5's examples
    # a second call with the same config finds the finished run and trains nothing
    before = (run / "metrics.jsonl").read_bytes()
    assert train(tiny_config, results=tmp_path, progress=False) == run
    assert (run / "metrics.jsonl").read_bytes() == before


def test_ablation_switches_change_the_objective(tiny_synth: Path, tmp_path: Path) -> None:
    over = tiny_overrides(tiny_synth) | {"train.epochs": 2, "train.cls_warmup_epochs": 1, "loss.lr_last_epochs": 1}
    cfg = load_config(REPO / "experiments/synthetic/baseline.yaml", over)
    run = train(cfg, results=tmp_path, progress=False)
    records, _ = read_metrics(run / "metrics.jsonl")
    last = [r for r in records if r["kind"] == "step"][-1]
    assert set(last["losses"]) == {"cls", "ce", "total"}
    cfg = load_config(REPO / "experiments/synthetic/sa.yaml", over)
    run = train(cfg, results=tmp_path, progress=False)
    records, _ = read_metrics(run / "metrics.jsonl")
    assert set([r for r in records if r["kind"] == "step"][-1]["losses"]) == {"cls", "ce", "aa", "total"}


def test_resume_gives_identical_numbers(tiny_config: Config, tmp_path: Path) -> None:
    ref = train(tiny_config, results=tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config, results=tmp_path / "b", progress=False, stop_after_steps=3)
    part = tmp_path / "b" / "runs" / ref.name
    assert json.loads((part / "status.json").read_text())["status"] == "interrupted"
    assert not (part / "summary.json").exists()
    done = train(tiny_config, results=tmp_path / "b", progress=False, resume=part)
    prov = json.loads((done / "provenance.json").read_text())
    assert prov["resumed_from_step"] == 3 and [r["step"] for r in prov["resumes"]] == [3]
    a, b = _summary(ref), _summary(done)
    assert a["metrics"] == b["metrics"]
    wa = torch.load(ref / "checkpoints/last.pt", weights_only=True)["model"]
    wb = torch.load(done / "checkpoints/last.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    ra, _ = read_metrics(ref / "metrics.jsonl")
    rb, _ = read_metrics(done / "metrics.jsonl")
    la = [r["losses"] for r in ra if r["kind"] == "step"]
    lb = [r["losses"] for r in rb if r["kind"] == "step"]
    assert la == lb  # every step's losses, before and after the interruption


def test_epoch_batches_shard_without_overlap() -> None:
    a = epoch_batches(20, 3, seed=1, epoch=0, rank=0, world=2)
    b = epoch_batches(20, 3, seed=1, epoch=0, rank=1, world=2)
    flat_a = [i for x in a for i in x]
    flat_b = [i for x in b for i in x]
    assert len(a) == len(b) == 3 and not set(flat_a) & set(flat_b)
    assert epoch_batches(20, 3, seed=1, epoch=1) != epoch_batches(20, 3, seed=1, epoch=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, overrides: dict, results: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    cfg = load_config(REPO / "experiments/synthetic/full.yaml", overrides)
    train(cfg, results=Path(results), progress=False)


def test_ddp_two_processes_keep_equal_weights(tiny_synth: Path, tmp_path: Path) -> None:
    over = tiny_overrides(tiny_synth) | {"train.batch_size": 2, "train.device": "cpu"}
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), over, str(tmp_path)), nprocs=2, join=True)
    (run,) = list((tmp_path / "runs").iterdir())
    s = _summary(run)
    sums = s["ddp_param_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    records, _ = read_metrics(run / "metrics.jsonl")
    steps = [r for r in records if r["kind"] == "step"]
    assert len(steps) == 8  # 16 images / (2 per rank x 2 ranks) x 2 epochs, logged once (rank 0)
    assert json.loads((run / "provenance.json").read_text())["world_size"] == 2


def test_training_never_opens_a_mask(tiny_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only evaluation may read masks: the training steps see images and image labels."""
    import aakit.engine.trainer as T  # the trainer draws the batches
    from PIL import Image

    opened: list[str] = []
    real_open = Image.open
    in_training = {"on": False}

    def spy(fp, *a, **k):  # noqa: ANN001, ANN002, ANN003
        if in_training["on"]:
            opened.append(str(fp))
        return real_open(fp, *a, **k)

    real_iter = T.iterate_epoch

    def iterate(*a, **k):  # noqa: ANN002, ANN003
        in_training["on"] = True
        try:
            for batch in real_iter(*a, **k):
                assert "mask" not in batch
                yield batch
        finally:
            in_training["on"] = False

    monkeypatch.setattr(Image, "open", spy)
    monkeypatch.setattr(T, "iterate_epoch", iterate)
    train(tiny_config, results=tmp_path, progress=False)
    assert opened and all("JPEGImages" in p for p in opened)


def test_pretrained_config_trains_its_run_once_and_shares_it(tiny_synth: Path, tmp_path: Path) -> None:
    """model.pretrained: a YAML config -> that run is trained first (same data/network, own seed), once."""
    cls_yaml = tmp_path / "cls.yaml"
    cls_yaml.write_text(f"_base_: {REPO / 'experiments/synthetic/cls.yaml'}\ntrain:\n  epochs: 1\n  batch_size: 4\n")
    over = tiny_overrides(tiny_synth) | {"model.pretrained": str(cls_yaml), "train.cls_warmup_epochs": 0, "train.epochs": 1}
    a = train(load_config(REPO / "experiments/synthetic/baseline.yaml", over), results=tmp_path / "res", progress=False)
    b = train(load_config(REPO / "experiments/synthetic/full.yaml", over | {"train.seed": 7}), results=tmp_path / "res", progress=False)
    runs = sorted(p.name for p in (tmp_path / "res" / "runs").iterdir() if not p.name.startswith("."))
    cls_runs = [r for r in runs if r.startswith("synth-cls-")]
    assert len(cls_runs) == 1 and len(runs) == 3
    cls_run = tmp_path / "res" / "runs" / cls_runs[0]
    cls_cfg = load_config(cls_run / "config.yaml")
    assert cls_cfg.data.root == str(tiny_synth) and cls_cfg.model.num_classes == 5 and cls_cfg.model.small_width == 8
    assert cls_cfg.train.seed == 0  # its own seed: the seed-7 run shared it, as seeds share ImageNet weights
    steps = [r for r in read_metrics(cls_run / "metrics.jsonl")[0] if r["kind"] == "step"]
    assert steps and set(steps[-1]["losses"]) == {"cls", "total"}  # classification only, no pseudo labels
    for run in (a, b):
        prov = json.loads((run / "provenance.json").read_text())
        assert str(cls_run / "checkpoints" / "last.pt") in prov["init"]
        ckpt = prov["init_checkpoint"]
        assert ckpt["run"] == cls_run.name and ckpt["step"] == steps[-1]["step"] and ckpt["epoch"] == 1
        assert len(ckpt["sha256"]) == 64


def test_eval_and_predict_commands(tiny_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`aakit eval` stores the protocol with the number; `aakit predict` writes palette masks."""
    import sys

    from PIL import Image

    from aakit import cli

    cfg = load_config(REPO / "experiments/synthetic/baseline.yaml",
                      tiny_overrides(Path(tiny_config.data.root)) | {"train.epochs": 1, "train.cls_warmup_epochs": 0})
    run = train(cfg, results=tmp_path, progress=False)

    def aakit(*argv: str) -> None:
        monkeypatch.setattr(sys, "argv", ["aakit", *argv])
        try:
            cli.main()
        except SystemExit as e:
            assert e.code in (0, None), capsys.readouterr().err

    aakit("eval", str(run), "--protocol", "msf", "--crf", "--max-images", "3", "--results", str(tmp_path))
    stored = json.loads((run / "eval" / "val-msf-crf.json").read_text())
    assert stored["protocol"] == "msf" and stored["crf"] is True and stored["images"] == 3 and not stored["rfpc"]
    assert json.loads((run / "eval" / "val-msf-crf-rfpc.json").read_text())["rfpc"] is True
    s = _summary(run)
    assert s["metrics"]["val-msf-crf"]["miou"] == stored["miou"] and "val" in s["metrics"]  # earlier entries kept
    assert f"{100 * stored['miou']:.2f}" in capsys.readouterr().out

    images = Path(tiny_config.data.root) / "JPEGImages"
    out = tmp_path / "pred"
    aakit("predict", str(run), str(sorted(images.iterdir())[0]), str(sorted(images.iterdir())[1]), "--out", str(out), "--results", str(tmp_path))
    masks = sorted(out.glob("*.png"))
    assert len(masks) == 2 and len(list(out.glob("*_overlay.jpg"))) == 2
    m = Image.open(masks[0])
    assert m.mode == "P" and m.size == Image.open(sorted(images.iterdir())[0]).size
    assert set(np.unique(np.array(m))) <= set(range(5))

    # --cams on a VOC-layout folder: photos.json labels one image, the other has a mask beside it
    photos = tmp_path / "photos"
    (photos / "JPEGImages").mkdir(parents=True)
    (photos / "SegmentationClass").mkdir()
    src = sorted(images.iterdir())[:2]
    for f in src:
        shutil.copyfile(f, photos / "JPEGImages" / f.name)
    names = load_info(tiny_config.data.root).class_names
    (photos / "photos.json").write_text(json.dumps({"darknet": {src[0].stem: {"objects": ["x"], "lab_classes": [names[2]]}}}))
    gt = np.array(Image.open(Path(tiny_config.data.root) / "SegmentationClass" / f"{src[1].stem}.png"))
    Image.fromarray(gt).save(photos / "SegmentationClass" / f"{src[1].stem}.png")
    seen = tmp_path / "seen"
    aakit("predict", str(run), str(photos / "JPEGImages"), "--out", str(seen), "--cams", "--results", str(tmp_path))
    doc = json.loads((seen / "predictions.json").read_text())
    one, two = doc["images"][src[0].stem], doc["images"][src[1].stem]
    assert one["labels"] == [names[2]] and one["labels_from"] == "photos.json" and "iou_object" not in one
    pseudo = np.array(Image.open(seen / f"{src[0].stem}_pseudo.png"))
    assert set(np.unique(pseudo)) <= {0, 2, 255}  # background, the one label, unlabelled
    kept = [c for c, v in two["scores"].items() if v > tiny_config.eval.cls_threshold]
    assert two["labels_from"] == "the network's kept classes" and two["labels"] == kept
    pred = np.array(Image.open(seen / f"{src[1].stem}.png"))
    assert two["iou_object"] == round(object_iou(pred, gt)["iou_object"], 4)
    assert abs(sum(two["prediction_share"].values()) - 1) < 1e-3
    assert (seen / "sheet.jpg").is_file() and len(list(seen.glob("*_cam.jpg"))) == 2
    aakit("predict", str(run), str(src[0]), "--out", str(tmp_path / "big"), "--cams", "--size", "96", "--results", str(tmp_path))
    assert max(Image.open(tmp_path / "big" / f"{src[0].stem}.png").size) == 96
    prof = cam_rim_profile(run, images=3)
    gts = [np.array(Image.open(Path(tiny_config.data.root) / "SegmentationClass" / f"{i}.png")) for i in
           (Path(tiny_config.data.root) / "ImageSets/Segmentation/val.txt").read_text().split()[:3]]
    instances = [(g, c) for g in gts for c in np.unique(g) if 0 < c < 255]
    assert prof["class_instances"] == len(instances) and prof["images"] == 3
    assert sum(prof["pixels"].values()) == sum(int((g != 255).sum()) for g, _ in instances)  # the regions tile each image
    assert all(0 <= v <= 1 for v in prof["mean_cam"].values())
    aakit("report", "--figures", "--photos", str(seen), "--out", str(tmp_path / "rep"), "--results", str(tmp_path))
    table = (tmp_path / "rep" / "figures" / "real_photos.md").read_text()
    assert (tmp_path / "rep" / "figures" / "real_photos.jpg").read_bytes() == (seen / "sheet.jpg").read_bytes()
    assert f"| {src[0].stem} | {names[2]} (photos.json) |" in table
    assert f"(object {100 * two['iou_object']:.1f})" in table
    for bad in (["--cams", "--crf"], ["--size", "96"]):
        monkeypatch.setattr(sys, "argv", ["aakit", "predict", str(run), str(src[0]), "--out", str(tmp_path / "no"), *bad, "--results", str(tmp_path)])
        with pytest.raises(SystemExit) as e:
            cli.main()
        assert e.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
        assert not (tmp_path / "no").exists()
    monkeypatch.setattr(sys, "argv", ["aakit", "report", "--photos", str(seen), "--out", str(tmp_path / "no"), "--results", str(tmp_path)])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2 and "give --figures too" in capsys.readouterr().err and not (tmp_path / "no").exists()


def test_object_iou_and_heat() -> None:
    """The class-agnostic object/background IoU ignores 255; the heat map runs blue to red."""
    pred = np.array([[0, 1, 2, 0]])
    gt = np.array([[0, 3, 0, 255]])
    iou = object_iou(pred, gt)
    assert iou["iou_object"] == 0.5 and iou["iou_background"] == 0.5 and iou["miou_object_vs_background"] == 0.5
    square = np.zeros((20, 20), bool)
    square[5:15, 5:15] = True
    regions = rim_regions(square, 2)
    assert sum(r.astype(int) for r in regions.values()).max() == 1 and sum(r.sum() for r in regions.values()) == 400
    assert regions["interior"].sum() == 36 and regions["inner_rim"].sum() == 64 and (regions["outer_rim"] & square).sum() == 0
    h = heat(np.array([[0.0, 0.5, 1.0]]))
    assert tuple(h[0, 0]) == (0, 0, 96) and tuple(h[0, 2]) == (230, 0, 0) and h[0, 1, 1] > 200


def test_provenance_names_the_program_not_its_install_path(tiny_config: Config) -> None:
    """Run summaries are committed: the recorded command must not carry a machine path."""
    from aakit.engine.rundir import provenance

    prov = provenance(tiny_config, command=["/opt/venv/bin/aakit", "grid", "t1.yaml"], overrides=[], device="cpu")
    assert prov["command"] == ["aakit", "grid", "t1.yaml"]


def test_provenance_names_the_data_set_version(tiny_config: Config) -> None:
    """A run records which embedded benchmark (name, version, seed, meta digest) it trained on."""
    from aakit.engine.rundir import provenance

    data = provenance(tiny_config, command=["aakit"], overrides=[], device="cpu")["data"]
    assert data["name"] == "aakit-synth" and data["version"] and data["seed"] is not None
    assert len(data["meta_sha256"]) == 16
    voc_like = dataclasses.replace(tiny_config, data=dataclasses.replace(tiny_config.data, root="no/such/dir"))
    assert provenance(voc_like, command=["aakit"], overrides=[], device="cpu")["data"] is None


def test_dependency_run_is_announced_with_its_length_and_retrained_without_checkpoint(
    tiny_synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12: a pre-training that must run first is said before it starts (epochs, ETA);
    a finished one whose checkpoint is absent (committed summaries carry none) is trained again."""
    cls_yaml = tmp_path / "cls.yaml"
    cls_yaml.write_text(f"_base_: {REPO / 'experiments/synthetic/cls.yaml'}\ntrain:\n  epochs: 1\n  batch_size: 4\n")
    over = tiny_overrides(tiny_synth) | {"model.pretrained": str(cls_yaml), "train.cls_warmup_epochs": 0, "train.epochs": 1}
    res = tmp_path / "res"
    train(load_config(REPO / "experiments/synthetic/baseline.yaml", over), results=res, progress=False)
    first = capsys.readouterr().err
    assert "(not trained yet); training it first: 1 epochs" in first and "no finished run of this configuration" in first
    (cls_run,) = [p for p in (res / "runs").iterdir() if p.name.startswith("synth-cls-")]
    train(load_config(REPO / "experiments/synthetic/baseline.yaml", over | {"train.seed": 1}), results=res, progress=False)
    assert "training it first" not in capsys.readouterr().err  # finished, with its weights: used as is
    (cls_run / "checkpoints" / "last.pt").unlink()
    train(load_config(REPO / "experiments/synthetic/baseline.yaml", over | {"train.seed": 2}), results=res, progress=False)
    again = capsys.readouterr().err
    assert "finished, but its weights are not here" in again and "1 epochs, about" in again
    assert f"({cls_run.name} took " in again  # the ETA of the same configuration, not another network's
    assert (cls_run / "checkpoints" / "last.pt").exists()


def test_a_run_stays_loadable_when_its_data_set_moved(tiny_config: Config, tmp_path: Path) -> None:
    """The checkpoint is checked against the hash the run was created under (provenance)."""
    import shutil

    import yaml

    from aakit.engine.inference import load_run_model

    cfg = load_config(REPO / "experiments/synthetic/baseline.yaml",
                      tiny_overrides(Path(tiny_config.data.root)) | {"train.epochs": 1, "train.cls_warmup_epochs": 0})
    run = train(cfg, results=tmp_path / "res", progress=False)
    moved = tmp_path / "moved-run"
    shutil.copytree(run, moved)
    data = yaml.safe_load((moved / "config.yaml").read_text())
    data["data"]["root"] = str(tmp_path / "data-now-elsewhere")
    (moved / "config.yaml").write_text(yaml.safe_dump(data))
    assert load_config(moved / "config.yaml").hash() != cfg.hash()  # no digest without the data
    loaded, _model, _device = load_run_model(moved)
    assert loaded.data.root.endswith("data-now-elsewhere")


def test_provenance_calls_a_checkout_dirty_for_code_not_for_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A running grid rewrites results/grids/NAME/grid.json; that alone must not mark its runs dirty."""
    import subprocess

    from aakit.config import Config
    from aakit.engine import rundir

    repo = tmp_path / "checkout"
    (repo / "results" / "grids").mkdir(parents=True)
    (repo / "aakit").mkdir()
    (repo / "results" / "grids" / "grid.json").write_text("{}\n")
    (repo / "aakit" / "losses.py").write_text("A = 1\n")

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                       capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    monkeypatch.setattr(rundir, "source_checkout", lambda: repo)
    (repo / "results" / "grids" / "grid.json").write_text('{"points": []}\n')
    prov = rundir.provenance(Config(), command=["aakit"], overrides=[], device="cpu")
    assert prov["git_commit"] and prov["git_dirty"] is False and prov["git_diff"] == ""
    (repo / "aakit" / "losses.py").write_text("A = 2\n")
    prov = rundir.provenance(Config(), command=["aakit"], overrides=[], device="cpu")
    assert prov["git_dirty"] is True and "aakit/losses.py" in prov["git_diff"] and "grid.json" not in prov["git_diff"]
