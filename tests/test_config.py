"""The config schema: defaults of METHOD.md, _base_ inheritance, overrides, every refusal."""
from __future__ import annotations

from pathlib import Path

import pytest

from aakit.config import Config, ConfigError, load_config, load_yaml_file
from aakit.errors import AakitError

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


def test_load_yaml_file_one_line_errors_of_the_callers_kind(tmp_path: Path) -> None:
    class OwnError(AakitError):
        pass

    p = tmp_path / "g.yaml"
    p.write_text("rows: [{a: 1\n")
    with pytest.raises(ConfigError, match=r"g\.yaml: line \d+ YAML syntax error: ") as info:
        load_yaml_file(p)
    assert "\n" not in str(info.value)
    with pytest.raises(OwnError, match="YAML syntax error"):
        load_yaml_file(p, OwnError)
    p.write_bytes(b"a: \xff\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_yaml_file(p)
    p.write_text("")
    assert load_yaml_file(p) is None
    p.write_text("a: [1, 2]\n")
    assert load_yaml_file(p) == {"a": [1, 2]}


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


def test_hash_ignores_how_a_run_is_run_but_not_what_it_computes(tmp_path: Path) -> None:
    """Issue 12: moving the data set or changing worker counts must not make a run look new."""
    base = load_config(None)
    same = ["data.root=/elsewhere/VOC2012", "data.num_workers=9", "pseudo.workers=7", "pseudo.overlap=true",
            "train.log_every=50", "train.checkpoint_every=100", "train.device=cpu", "eval.save_examples=0"]
    for item in same:
        assert load_config(None, [item]).hash() == base.hash(), item
    for item in ["loss.gamma=1.0", "optim.momentum=0.5", "data.crop=300", "eval.crf=true", "train.seed=3"]:
        assert load_config(None, [item]).hash() != base.hash(), item


def test_hash_follows_the_data_digest_not_the_path(tmp_path: Path) -> None:
    import shutil

    from aakit.data.identity import data_digest

    a = tmp_path / "a"
    (a / "ImageSets/Segmentation").mkdir(parents=True)
    (a / "ImageSets/Segmentation/train_aug.txt").write_text("x1\nx2\n")
    (a / "ImageSets/Segmentation/val.txt").write_text("v1\n")
    (a / "cls_labels.json").write_text('{"x1": [1], "x2": [2], "v1": [3]}')
    b = tmp_path / "moved" / "b"
    shutil.copytree(a, b)
    ca, cb = load_config(None, [f"data.root={a}"]), load_config(None, [f"data.root={b}"])
    assert data_digest(a, ("train_aug", "val")) == data_digest(b, ("train_aug", "val")) is not None
    assert ca.hash() == cb.hash() != load_config(None, [f"data.root={tmp_path / 'none'}"]).hash()
    (b / "cls_labels.json").write_text('{"x1": [1], "x2": [2, 4], "v1": [3]}')  # other labels
    assert load_config(None, [f"data.root={b}"]).hash() != ca.hash()
    (b / "cls_labels.json").write_text((a / "cls_labels.json").read_text())
    (b / "ImageSets/Segmentation/val.txt").write_text("v1\nv2\n")  # another split
    assert load_config(None, [f"data.root={b}"]).hash() != ca.hash()
    (b / "meta.json").write_text('{"name": "synth", "version": 1}')  # the benchmark: meta.json alone
    c = tmp_path / "c"
    c.mkdir()
    (c / "meta.json").write_text('{"name": "synth", "version": 1}')
    assert load_config(None, [f"data.root={b}"]).hash() == load_config(None, [f"data.root={c}"]).hash()


def test_a_run_config_is_read_as_the_run_was_trained(tmp_path: Path) -> None:
    """Keys added after a run was written take the value the run used (LEGACY_VALUES), not the
    new default: a run from before data.pad_mode padded black and ignored the padding."""
    import yaml

    from aakit.config import LEGACY_VALUES, load_run_config

    old = load_config(None).to_dict()
    del old["data"]["pad_mode"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    assert load_config(tmp_path / "config.yaml").data.pad_mode == "rrm"  # a new config: the default
    assert load_run_config(tmp_path / "config.yaml").data.pad_mode == LEGACY_VALUES["data.pad_mode"] == "ignore"
    old["data"]["pad_mode"] = "rrm"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    assert load_run_config(tmp_path / "config.yaml").data.pad_mode == "rrm"  # stated: kept
    assert load_run_config(tmp_path / "config.yaml", ["train.seed=4"]).train.seed == 4
    older = [p for p in sorted(Path("results/runs").glob("*/config.yaml")) if "pad_mode" not in p.read_text()]
    assert len(older) >= 50 and all(load_run_config(p).data.pad_mode == "ignore" for p in older)  # issue 8's runs


def test_unknown_key_suggests_the_near_one() -> None:
    with pytest.raises(ConfigError, match=r"unknown key loss.lamda_aa \(did you mean loss.lambda_aa\?"):
        load_config(None, ["loss.lamda_aa=0.2"])
    with pytest.raises(ConfigError) as e:
        load_config(None, ["loss.zzz=1"])
    assert "did you mean" not in str(e.value)


def test_the_config_package_keeps_every_name_of_the_old_module() -> None:
    """Issue 29 split config.py into aakit/config/ (schema, loading, backbones): every name the
    module had is importable from aakit.config as before, and is the one of its new home."""
    import aakit.config as pkg
    from aakit.config import loading, schema

    old = ["ConfigError", "ModelConfig", "PseudoConfig", "CRFParams", "CRFConfig", "LossConfig", "OptimConfig",
           "DataConfig", "TrainConfig", "EvalConfig", "NOT_RESULTS", "LoggingConfig", "Config", "validate",
           "list_example", "load_yaml_file", "read_yaml", "parse_override", "read_set_file", "apply_overrides",
           "from_dict", "load_config", "LEGACY_VALUES", "load_run_config", "save_config", "key_hyperparameters",
           "copy_preset", "_test_crf"]
    for name in old:
        home = schema if hasattr(schema, name) else loading
        assert getattr(pkg, name) is getattr(home, name), name
    assert set(pkg.__all__) >= set(old)
