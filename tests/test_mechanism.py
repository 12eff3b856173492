"""The mechanism record (issue 28): what AA changes against SA and what LR's gamma changes, measured
in every run (metrics.jsonl, summary.json), the oracle V that bounds what any V can do, and the
record's nulls with their reasons."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import REPO, run_cli, tiny_overrides

FULL = REPO / "experiments" / "synthetic" / "full.yaml"
ORACLE_MIN = {"loss.aa_confidence": "oracle", "loss.weighting": "min"}


def _cfg(root: Path, extra: dict[str, object] | None = None):  # noqa: ANN202
    from aakit.config import load_config

    return load_config(FULL, tiny_overrides(root) | {"eval.save_examples": 0} | (extra or {}))


@pytest.fixture(scope="module")
def runs(tiny_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny trainings: AA with V from the CRF (the paper's), and the oracle V with min."""
    from aakit.engine.train import train

    results = tmp_path_factory.mktemp("mechanism")
    return {name: train(_cfg(tiny_synth, extra), results=results, progress=False)
            for name, extra in (("crf", {}), ("oracle-min", ORACLE_MIN))}


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_aa_with_crf_v_does_not_engage_and_the_oracle_with_min_does(runs: dict[str, Path]) -> None:
    """The issue's bar: AA-crf's gradient is SA's to < 1 % of the total; the oracle with min
    weighting changes more than 10 times that. Both read from summary.json."""
    crf, oracle = (_summary(runs[k])["mechanism"] for k in ("crf", "oracle-min"))
    assert crf["settings"]["aa_confidence"] == "crf" and oracle["settings"] == crf["settings"] | {
        "aa_confidence": "oracle", "weighting": "min"}
    assert 0 <= crf["aa_vs_sa_grad_share"] < 0.01
    assert crf["aa_vs_sa_grad_cos"] > 0.999
    assert oracle["aa_vs_sa_grad_share"] > 10 * crf["aa_vs_sa_grad_share"]
    assert oracle["omega_wrong"] == 0.0  # min with the oracle: a pair with a wrong end weighs nothing
    assert crf["repel_in_gap"] <= oracle["repel_in_gap"]


def test_each_evaluation_logs_a_mechanism_line_and_the_summary_keeps_the_last(runs: dict[str, Path]) -> None:
    from aakit.runs import read_metrics

    for run in runs.values():
        records = read_metrics(run / "metrics.jsonl")[0]
        lines = [r for r in records if r["kind"] == "mechanism"]
        assert [r["epoch"] for r in lines] == [1, 2]  # eval.every_epochs 1: after each epoch
        last = {k: v for k, v in lines[-1].items() if k not in ("kind", "time")}
        assert _summary(run)["mechanism"] == last
        for r in lines:  # every key, and a reason for each null (none here: the tiny set has masks)
            assert {"aa_vs_sa_grad_share", "aa_vs_sa_grad_cos", "omega_right", "omega_wrong", "repel_active",
                    "repel_in_gap", "lr_alpha_median", "lr_alpha_q10", "lr_alpha_q90", "lr_gamma_vs_0_cos",
                    "lr_gamma_vs_0_norm_ratio", "lr_right_to_wrong", "lr_wrong_to_right"} <= set(r)
            assert {k for k, v in r.items() if v is None} == set(r["reasons"])
            assert r["seconds"] > 0 and r["images"] == 4


def test_runs_show_and_the_tui_run_screen_show_the_record(runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from aakit.tui.data import RunTracker

    code, out, _ = run_cli(["runs", "show", str(runs["oracle-min"])], monkeypatch, capsys)
    assert code == 0 and "mechanism probe of 4 train images" in out and "AA vs SA   gradient share" in out
    tracker = RunTracker(runs["oracle-min"])
    tracker.update()
    lines = tracker.detail(tracker.row()).mechanism
    assert any(line.startswith("AA vs SA") for line in lines) and any("alpha median" in line for line in lines)


# ----------------------------------------------------------------------------- measure_mechanism itself
@pytest.fixture()
def probe(tiny_config):  # noqa: ANN001, ANN201
    """An untrained tiny network, the run's labeler (CRFs in process) and the probe batch."""
    import dataclasses

    from aakit.method.targets import make_labeler
    from aakit.engine.train import _build_data
    from aakit.mechanism import probe_batch
    from aakit.models import build_model

    torch.manual_seed(0)
    model = build_model(dataclasses.replace(tiny_config.model, pretrained=None))
    labeler = make_labeler(tiny_config, workers=0)
    yield model, probe_batch(_build_data(tiny_config).train, 4), labeler
    labeler.close()


def _state_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode() + v.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def test_measuring_changes_no_weight_no_grad_no_mode_and_no_random_stream(tiny_config, probe) -> None:  # noqa: ANN001
    from aakit.mechanism import measure_mechanism

    model, batch, labeler = probe
    model.train()
    before, rng = _state_digest(model), torch.get_rng_state()
    first = measure_mechanism(model, batch, tiny_config, labeler, torch.device("cpu"))
    second = measure_mechanism(model, batch, tiny_config, labeler, torch.device("cpu"))
    assert first == second  # the probe is fixed: no augmentation, eval mode
    assert _state_digest(model) == before and torch.equal(torch.get_rng_state(), rng)
    assert model.training and all(p.grad is None for p in model.parameters())


def test_an_sa_run_without_lr_records_what_aa_and_lr_would_change(tiny_config, probe) -> None:  # noqa: ANN001
    import dataclasses

    from aakit.mechanism import measure_mechanism

    model, batch, labeler = probe
    cfg = dataclasses.replace(tiny_config, loss=dataclasses.replace(tiny_config.loss, affinity="sa",
                                                                     label_reassign=False, weighting="min"))
    rec = measure_mechanism(model, batch, cfg, labeler, torch.device("cpu"))
    assert rec["settings"]["affinity"] == "sa" and rec["reasons"] == {}
    assert isinstance(rec["aa_vs_sa_grad_share"], float) and isinstance(rec["lr_gamma_vs_0_cos"], float)
    zero = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, gamma=0.0))
    rec0 = measure_mechanism(model, batch, zero, labeler, torch.device("cpu"))
    assert rec0["lr_gamma_vs_0_cos"] == pytest.approx(1.0) and rec0["lr_gamma_vs_0_norm_ratio"] == pytest.approx(1.0)
    assert rec0["lr_alpha_median"] == 1.0  # gamma 0: alpha = 1 everywhere


def test_without_masks_the_truth_dependent_keys_are_null_with_a_reason(tiny_config, probe) -> None:  # noqa: ANN001
    import dataclasses

    from aakit.mechanism import measure_mechanism

    model, batch, labeler = probe
    bare = {k: v for k, v in batch.items() if k != "mask"}
    rec = measure_mechanism(model, bare, tiny_config, labeler, torch.device("cpu"))
    for key in ("omega_right", "omega_wrong", "pairs_right", "pairs_wrong", "lr_right_to_wrong", "lr_wrong_to_right"):
        assert rec[key] is None and rec["reasons"][key] == "no mask"
    assert isinstance(rec["aa_vs_sa_grad_share"], float) and isinstance(rec["repel_active"], float)
    oracle = dataclasses.replace(tiny_config, loss=dataclasses.replace(tiny_config.loss, aa_confidence="oracle"))
    rec = measure_mechanism(model, bare, oracle, labeler, torch.device("cpu"))
    assert rec["aa_vs_sa_grad_share"] is None and "oracle needs masks" in rec["reasons"]["aa_vs_sa_grad_share"]
    assert isinstance(rec["lr_gamma_vs_0_cos"], float)  # LR does not need V


def test_the_pair_counts_on_a_hand_made_map() -> None:
    """Two columns labelled 1 | 2 whose probabilities give W = 2.51 across (binary KL, below m = 3):
    with min and V = 0 on the right column every repulsion pair has Omega m = 0 <= W < m (in the
    gap: active in SA only); with max, Omega m = 3 > W (active in both)."""
    from aakit.mechanism import affinity_pair_counts

    label = torch.tensor([[[1, 2], [1, 2]]])
    prob = torch.empty((1, 3, 2, 2))
    prob[0, :, :, 0], prob[0, :, :, 1] = torch.tensor([0.1, 0.8, 0.1])[:, None], torch.tensor([0.1, 0.1, 0.8])[:, None]
    conf = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    truth = torch.tensor([[[1, 1], [1, 1]]])  # the right column is wrong
    kw = {"dilations": (1,), "margin": 3.0, "kl": "binary"}
    c = affinity_pair_counts(prob, label, conf, truth, weighting="min", **kw)
    assert c["pairs"] == 12 and c["repel"] == 8  # 2 horizontal + 2 diagonal pairs across, both orders
    assert (c["repel_active"], c["repel_in_gap"]) == (0, 8)
    assert (c["right"], c["wrong"]) == (4, 8)  # same-label pairs agree with the truth, the others not
    assert c["omega_wrong_sum"] == 0 and c["omega_right_sum"] == 2  # the two left-column pairs (both orders)
    c = affinity_pair_counts(prob, label, conf, truth, weighting="max", **kw)
    assert (c["repel_active"], c["repel_in_gap"]) == (8, 0)


def test_the_oracle_v_is_whether_the_label_is_right() -> None:
    from aakit.method.targets import oracle_confidence

    label = torch.tensor([[0, 1, 2, 255]])
    mask = torch.tensor([[0, 2, 255, 1]])
    assert oracle_confidence(label, mask).tolist() == [[1.0, 0.0, 1.0, 0.0]]


# ----------------------------------------------------------------------------- the oracle needs masks
def test_the_oracle_is_refused_before_training_where_the_training_images_have_no_mask(
        tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from aakit.data.voc import DataError, read_split
    from aakit.engine.train import train
    from aakit.mechanism import probe_batch

    root = tmp_path / "set"
    shutil.copytree(tiny_synth, root)
    for image_id in read_split(root, "train_aug"):
        for folder in ("SegmentationClassAug", "SegmentationClass"):
            (root / folder / f"{image_id}.png").unlink(missing_ok=True)
    extra = ORACLE_MIN | {"eval.pseudo_images": 0, "eval.train_iou": False}
    with pytest.raises(DataError, match="oracle needs the ground-truth mask of every training image: 16 of 16"):
        train(_cfg(root, extra), results=tmp_path / "results", progress=False)
    assert not (tmp_path / "results" / "runs").exists() or not any((tmp_path / "results" / "runs").iterdir())
    sets = [f"{k}={json.dumps(v)}" for k, v in (tiny_overrides(root) | extra).items()]
    code, _, err = run_cli(["train", str(FULL), "--results", str(tmp_path / "results"),
                            *(a for s in sets for a in ("--set", s))], monkeypatch, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "oracle" in err
    from aakit.engine.train import _build_data

    assert "mask" not in probe_batch(_build_data(_cfg(root, {"eval.pseudo_images": 0})).train, 4)


# ----------------------------------------------------------------------------- identity and resume
def test_the_mechanism_keys_leave_every_config_hash_alone(tiny_synth: Path) -> None:
    """The keys are how-to-run settings: the tiny full config keeps the hash it had before them
    (5bada9a1, measured with the code before issue 28), whatever they are set to."""
    assert _cfg(tiny_synth).hash() == "5bada9a1"
    assert _cfg(tiny_synth, {"eval.mechanism": False, "eval.mechanism_images": 9}).hash() == "5bada9a1"
    assert "mechanism" not in _cfg(tiny_synth).identity()["eval"]


def test_a_resume_drops_the_mechanism_lines_of_the_epochs_it_redoes(tiny_config, tmp_path: Path) -> None:  # noqa: ANN001
    from aakit.engine.rundir import RunWriter
    from aakit.runs import read_metrics

    writer = RunWriter(tmp_path, tiny_config)
    writer.path.mkdir(parents=True)
    for epoch, step in ((1, 4), (2, 8)):
        writer.log({"kind": "epoch", "epoch": epoch, "step": step})
        writer.log({"kind": "mechanism", "epoch": epoch, "step": step})
    writer.truncate_metrics(keep_until_step=4, keep_epochs=1)
    kept = [(r["kind"], r["epoch"]) for r in read_metrics(writer.metrics_path)[0]]
    assert kept == [("epoch", 1), ("mechanism", 1)]
