"""The sources of noise taken one at a time (aakit.engine.noise; issue 30): each key changes
only its own source, and at its default nothing (the run's hash and its weights)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from conftest import REPO, tiny_overrides

from aakit.config import Config, load_config
from aakit.engine.batches import epoch_batches
from aakit.engine.noise import aug_seed, data_seed, init_seed, new_layers, perturb, reinit_new_layers
from aakit.experiment.grid import GridError, seed_relative


def _train(tmp: Path, root: Path, **extra: object) -> dict[str, torch.Tensor]:
    from aakit.engine.rundir import load_checkpoint_file
    from aakit.engine.train import train

    over = tiny_overrides(root) | {"eval.save_examples": 0, "eval.mechanism": False,
                                   "logging.backends": ["jsonl"]} | extra
    cfg = load_config(REPO / "experiments/synthetic/full.yaml", over)
    run = train(cfg, results=tmp, progress=False)
    return load_checkpoint_file(run / "checkpoints" / "last.pt")["model"]


def _digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def test_each_source_defaults_to_train_seed() -> None:
    cfg = load_config(None, {"train.seed": 7})
    assert (init_seed(cfg.train), data_seed(cfg.train), aug_seed(cfg.train)) == (7, 7, 7)
    cfg = load_config(None, {"train.seed": 7, "train.data_seed": 9})
    assert (init_seed(cfg.train), data_seed(cfg.train), aug_seed(cfg.train)) == (7, 9, 7)


def test_new_keys_at_their_default_leave_the_hash_alone() -> None:
    base = Config()
    same = load_config(None, {"train.init_seed": None, "train.perturb_first_batch": False,
                              "eval.weights": "last", "eval.ema_decay": 0.5, "eval.swa_epochs": 5})
    assert same.hash() == base.hash()  # the averaging's parameters are not read while weights is last
    for key, value in (("train.init_seed", 3), ("train.data_seed", 0), ("train.aug_seed", 0),
                       ("train.perturb_first_batch", True), ("eval.weights", "ema")):
        assert load_config(None, {key: value}).hash() != base.hash(), key
    ema = load_config(None, {"eval.weights": "ema"})
    assert load_config(None, {"eval.weights": "ema", "eval.ema_decay": 0.9}).hash() != ema.hash()


def test_bad_values_are_refused() -> None:
    from aakit.config import ConfigError

    for key, value in (("eval.ema_decay", 1.0), ("eval.ema_decay", 0.0), ("eval.swa_epochs", 0),
                       ("train.init_seed", -1), ("eval.weights", "best")):
        with pytest.raises(ConfigError, match=key.split(".")[1]):
            load_config(None, {key: value})


def test_data_seed_changes_the_order_only() -> None:
    a = epoch_batches(40, 4, seed=data_seed(load_config(None, {"train.seed": 1}).train), epoch=0)
    b = epoch_batches(40, 4, seed=data_seed(load_config(None, {"train.seed": 1, "train.data_seed": 2}).train), epoch=0)
    assert sorted(sum(a, [])) == sorted(sum(b, [])) and a != b


def test_init_seed_redraws_the_new_layers_only() -> None:
    from aakit.models import build_model

    cfg = load_config(None, {"model.backbone": "small", "model.num_classes": 5, "model.embed_dim": 16,
                             "model.small_width": 8})
    torch.manual_seed(0)
    model = build_model(cfg.model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert not reinit_new_layers(model, cfg, from_run=True)  # unset: nothing
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    rng = torch.get_rng_state()
    reinit_new_layers(model, load_config(None, {"train.init_seed": 5}), from_run=True)
    assert torch.equal(rng, torch.get_rng_state())  # the global generator is not drawn from
    changed = {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    assert changed == {"seg_embed.weight", "seg_classifier.weight"}  # biases were already 0
    assert {id(c) for c in new_layers(model, from_run=False)} > {id(c) for c in new_layers(model, from_run=True)}


def test_perturb_moves_every_pixel_by_one_ulp() -> None:
    x = torch.tensor([[0.0, 1.0, -2.5]])
    y = perturb({"image": x, "id": ["a"]})["image"]
    assert torch.all(y > x)
    assert torch.equal(torch.nextafter(y, torch.full_like(y, -float("inf"))), x)
    assert y[0, 1].item() == 1.0 + 2.0**-23


def test_seed_relative_values_in_a_grid() -> None:
    assert seed_relative({"train.init_seed": "{seed} + 1000", "train.aug_seed": "{seed}", "x": 1}, 4, "g") == \
        {"train.init_seed": 1004, "train.aug_seed": 4, "x": 1}
    with pytest.raises(GridError, match="seed-relative"):
        seed_relative({"train.init_seed": "{seed} * 2"}, 4, "g")


def test_each_source_changes_the_weights_and_the_crf_workers_do_not(tmp_path: Path, tiny_synth: Path) -> None:
    ref = _digest(_train(tmp_path / "a", tiny_synth))
    assert _digest(_train(tmp_path / "b", tiny_synth, **{"pseudo.workers": 2})) == ref
    assert _digest(_train(tmp_path / "c", tiny_synth, **{"train.data_seed": 0})) == ref  # = train.seed
    for key, value in (("train.init_seed", 1), ("train.data_seed", 1), ("train.aug_seed", 1),
                       ("train.perturb_first_batch", True)):
        assert _digest(_train(tmp_path / key, tiny_synth, **{key: value})) != ref, key
