"""The config schema: defaults of METHOD.md, _base_ inheritance, overrides, every refusal."""
from __future__ import annotations

from pathlib import Path

import pytest

from aakit.config import Config, ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_method_md() -> None:
    c = Config()
    assert c.loss.dilations == (4, 8, 12, 24)
    assert c.loss.margin_aa == 3.0 and c.loss.margin_lr == 1.0 and c.loss.gamma == 2.0
    assert c.loss.lambda_aa == 0.1 and c.loss.lambda_lr == 0.1 and c.loss.lr_last_epochs == 2
    assert c.loss.weighting == "max" and c.loss.kl == "binary"
    assert (c.pseudo.alpha_low, c.pseudo.alpha_high, c.pseudo.min_crf_prob) == (4.0, 32.0, 0.8)
    assert c.crf.train.bilateral_sxy == 80 and c.crf.train.bilateral_srgb == 13 and c.crf.train.bilateral_compat == 10
    assert c.crf.test.bilateral_sxy == 83 and c.crf.test.bilateral_srgb == 5 and c.crf.test.bilateral_compat == 4
    assert c.optim.lr == 1e-4 and c.optim.weight_decay == 5e-4 and c.optim.poly_power == 0.9
    assert c.data.crop == 321 and c.data.scale_range == (0.7, 1.3)
    assert c.train.batch_size == 4 and c.train.epochs == 8
    assert c.model.embed_dim == 512 and c.model.num_classes == 21 and c.model.seg_dilation == 12


def test_base_inheritance_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("loss:\n  gamma: 0.5\n  margin_aa: 2.0\ntrain:\n  epochs: 3\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("_base_: ../a.yaml\nloss:\n  gamma: 1.0\n")
    c = load_config(tmp_path / "sub" / "b.yaml", ["loss.lambda_aa=0.2", "loss.dilations=[4,8]"])
    assert c.loss.gamma == 1.0  # child wins
    assert c.loss.margin_aa == 2.0  # inherited
    assert c.train.epochs == 3
    assert c.loss.lambda_aa == 0.2 and c.loss.dilations == (4, 8)
    assert isinstance(c.loss.lambda_aa, float)


def test_hash_changes_with_values_not_name() -> None:
    a = load_config(None, ["name=x"])
    b = load_config(None, ["name=y"])
    c = load_config(None, ["loss.gamma=1.0"])
    assert a.hash() == b.hash() != c.hash()


@pytest.mark.parametrize(
    "text, key",
    [
        ("loss:\n  gama: 1\n", "loss.gama"),
        ("loss:\n  gamma: -1\n", "loss.gamma"),
        ("loss:\n  margin_aa: -0.5\n", "loss.margin_aa"),
        ("loss:\n  lambda_aa: -0.1\n", "loss.lambda_aa"),
        ("loss:\n  lambda_lr: -1\n", "loss.lambda_lr"),
        ("loss:\n  dilations: [4, 0]\n", "loss.dilations"),
        ("loss:\n  dilations: []\n", "loss.dilations"),
        ("loss:\n  weighting: median\n", "loss.weighting"),
        ("loss:\n  gamma: two\n", "loss.gamma"),
        ("train:\n  epochs: 2.5\n", "train.epochs"),
        ("train:\n  batch_size: 0\n", "train.batch_size"),
        ("model:\n  backbone: vgg\n", "model.backbone"),
        ("data:\n  scale_range: [1.3, 0.7]\n", "data.scale_range"),
        ("data:\n  scale_range: [0.7]\n", "data.scale_range"),
        ("optim:\n  lr: 0\n", "optim.lr"),
        ("loss: 3\n", "loss"),
        ("pseudo:\n  min_crf_prob: 1.5\n", "pseudo.min_crf_prob"),
        ("train:\n  flip: true\n", "train.flip"),
    ],
)
def test_bad_values_name_key_and_file(tmp_path: Path, text: str, key: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert key in msg and str(p) in msg
    assert "\n" not in msg


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("loss:\n  gamma: 1\n  margin: [1, 2\n")
    with pytest.raises(ConfigError, match=r"s\.yaml.*line \d+.*YAML"):
        load_config(p)


def test_base_cycle_and_missing(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "c.yaml").write_text("_base_: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config(tmp_path / "c.yaml")


def test_bad_override() -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(None, ["loss.gamma"])
    with pytest.raises(ConfigError, match="loss.nope"):
        load_config(None, ["loss.nope=1"])
    with pytest.raises(ConfigError, match="loss.gamma"):
        load_config(None, ["loss.gamma=-2"])


def test_shipped_configs_load() -> None:
    files = sorted((REPO / "experiments").glob("*/*.yaml"))
    files = [f for f in files if f.parent.name in ("voc", "synthetic")]
    assert len(files) >= 8
    for f in files:
        c = load_config(f)
        assert c.preset == f.parent.name


def test_roundtrip_to_dict() -> None:
    from aakit.config import from_dict

    c = load_config(None, ["loss.gamma=0.5", "model.pretrained=x.pth"])
    assert from_dict(c.to_dict()).hash() == c.hash()


def test_voc_recipe_uses_the_momentum_of_the_authors_code() -> None:
    """psa/RRM's PolyOptimizer puts the weight decay into SGD's momentum slot (issue 12)."""
    voc = sorted(Path("experiments/voc").glob("*.yaml"))
    assert len(voc) >= 7
    for path in voc:
        want = 0.9 if path.name == "full_momentum09.yaml" else 0.0005
        assert load_config(path).optim.momentum == want, path
    plain = load_config("experiments/voc/full.yaml").to_dict()
    textbook = load_config("experiments/voc/full_momentum09.yaml").to_dict()
    plain["optim"].pop("momentum"), textbook["optim"].pop("momentum")
    plain.pop("name"), textbook.pop("name")
    assert plain == textbook  # the variant changes nothing else


def test_momentum_grid_crosses_the_two_momenta() -> None:
    from aakit.experiment.grid import load_grid

    grid = load_grid(Path("experiments/grids/voc/momentum.yaml"))
    assert sorted(p.config.optim.momentum for p in grid.points) == [0.0005, 0.9]
    assert {p.table for p in grid.points} == {0}
    for grid_file in Path("experiments/grids/voc").glob("table*.yaml"):
        assert {p.config.optim.momentum for p in load_grid(grid_file).points} == {0.0005}, grid_file
