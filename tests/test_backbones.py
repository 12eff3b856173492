"""Every registered backbone (issue 29), as timm's tests go over ``list_models``: it builds from
its settings, gives the features its class says (channels, output stride), loads weights (its
installed ImageNet weights where there are any, else its own state dict through a file), and a
bad setting is one line naming the key, exit 2, with nothing written."""
from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aakit.config import BACKBONES, ConfigError, ModelConfig, list_backbones, load_config
from aakit.models import Backbone, build_backbone, build_model, load_pretrained

REPO = Path(__file__).resolve().parents[1]
NAMES = list_backbones()
SIZE = 64  # a small input: every output stride divides it or rounds up


def test_the_registry_names_every_backbone_once() -> None:
    assert NAMES == ["resnet38d", "small", "mobilenet_v2"]
    for name, spec in BACKBONES.items():
        assert spec.name == name and issubclass(spec.load(), Backbone), name
        assert dataclasses.is_dataclass(spec.args) and spec.args() == spec.args(), name


@pytest.fixture(scope="module", params=NAMES)
def built(request: pytest.FixtureRequest) -> tuple[str, Backbone]:
    torch.manual_seed(0)
    return request.param, build_backbone(request.param).eval()


def test_builds_with_its_default_settings_and_gives_its_feature_size(built: tuple[str, Backbone]) -> None:
    name, backbone = built
    assert type(backbone) is BACKBONES[name].load()
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, SIZE, SIZE))
    side = math.ceil(SIZE / backbone.output_stride)
    assert tuple(out.shape) == (1, backbone.out_channels, side, side), name
    assert torch.isfinite(out).all()


def test_the_network_around_it_has_the_heads_on_its_channels(built: tuple[str, Backbone]) -> None:
    name, _ = built
    if name == "resnet38d":
        pytest.skip("the 105 M-parameter network is covered by test_models.py")
    net = build_model(ModelConfig(backbone=name, num_classes=3, embed_dim=8, seg_dilation=1)).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, SIZE, SIZE))
    side = math.ceil(SIZE / net.backbone.output_stride)
    assert tuple(out["cam"].shape) == (2, 2, side, side) and tuple(out["seg_logits"].shape) == (2, 3, side, side)
    assert net.classifier.in_channels == net.backbone.out_channels


def test_loads_weights(built: tuple[str, Backbone], tmp_path: Path) -> None:
    """Its installed ImageNet weights by name (where installed), else its own state dict through
    a ``.pth`` (what a run's ``model.pretrained`` file is): every tensor loaded, values equal."""
    name, backbone = built
    fresh = build_backbone(name)
    installed = type(backbone).installed_weights()
    if installed is not None:
        report = load_pretrained(fresh, installed)
        assert report.loaded and not report.missing, name
        return
    for p in backbone.state_dict().values():
        if p.dtype.is_floating_point:
            p.add_(0.25)  # differ from a fresh build
    torch.save(backbone.state_dict(), tmp_path / "w.pth")
    report = fresh.load_pretrained(fresh, tmp_path / "w.pth")
    assert report.loaded and not report.missing and not report.unexpected, name
    for k, v in backbone.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), (name, k)


@pytest.mark.parametrize("name", NAMES)
def test_settings_round_trip_through_the_config(name: str) -> None:
    cfg = load_config(None, {"model.backbone": name})
    assert cfg.model.backbone_args == BACKBONES[name].args()
    again = load_config(None, {"model": cfg.to_dict()["model"]})
    assert again.model == cfg.model and again.hash() == cfg.hash()


@pytest.mark.parametrize("name", NAMES)
def test_an_unknown_setting_names_the_key_and_the_known_ones(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"unknown key model\.backbone_args\.nonsense .*known under model\.backbone_args"):
        load_config(None, {"model.backbone": name, "model.backbone_args.nonsense": 1})
    first = dataclasses.fields(BACKBONES[name].args)[0]
    with pytest.raises(ConfigError, match=rf"model\.backbone_args\.{first.name} = 'x' should be"):
        load_config(None, {"model.backbone": name, f"model.backbone_args.{first.name}": "x"})


@pytest.mark.parametrize("name", NAMES)
def test_a_bad_setting_is_one_line_exit_2_nothing_written(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from aakit import cli

    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"_base_: synthetic/full\nmodel:\n  backbone: {name}\n  backbone_args:\n    nonsense: 1\n")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(sys, "argv", ["aakit", "train", str(cfg), "--results", str(tmp_path / "res")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert e.value.code == 2 and len(lines) == 1, err
    assert "model.backbone_args.nonsense" in lines[0] and "bad.yaml" in lines[0], lines[0]
    assert not (tmp_path / "res").exists() and not any((tmp_path / "cwd").iterdir())


def test_a_range_check_of_a_backbone_names_its_setting() -> None:
    with pytest.raises(ConfigError, match=r"model\.backbone_args\.width = 2 must be >= 4"):
        load_config(None, {"model.backbone": "small", "model.backbone_args.width": 2})
    with pytest.raises(ConfigError, match=r"model\.backbone_args\.output_stride = 6 must be 4, 8, 16 or 32"):
        load_config(None, {"model.backbone": "mobilenet_v2", "model.output_stride": 6})  # the old spelling too
    with pytest.raises(ConfigError, match=r"model\.backbone = 'vgg16' should be 'resnet38d' \| 'small' \| 'mobilenet_v2'"):
        load_config(None, {"model.backbone": "vgg16"})


# ----------------------------------------------------------------------------- the old flat fields
def test_old_flat_fields_load_into_the_backbones_settings() -> None:
    small = load_config(None, {"model.backbone": "small", "model.small_width": 8, "model.output_stride": 16})
    assert small.model.backbone_args == BACKBONES["small"].args(width=8)  # output_stride: not small's, ignored
    mnv2 = load_config(None, {"model.backbone": "mobilenet_v2", "model.output_stride": 4, "model.last_block": 13,
                              "model.freeze_bn": False, "model.small_width": 16})
    assert dataclasses.asdict(mnv2.model.backbone_args) == {"output_stride": 4, "last_block": 13, "freeze_bn": False}
    assert mnv2.model.output_stride == 4 and mnv2.model.small_width == 32  # read-only, as before
    res = load_config(None, {"model.freeze_conv1a": False})
    assert res.model.backbone_args == BACKBONES["resnet38d"].args(freeze_conv1a=False)


def test_each_layer_overrides_the_one_below_in_either_spelling(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("model:\n  backbone: small\n  small_width: 32\n")
    (tmp_path / "new.yaml").write_text("_base_: base.yaml\nmodel:\n  backbone_args: {width: 16}\n")
    (tmp_path / "old.yaml").write_text("_base_: new.yaml\nmodel:\n  small_width: 8\n")
    (tmp_path / "other.yaml").write_text("_base_: new.yaml\nmodel:\n  backbone: mobilenet_v2\n  last_block: 13\n")
    assert load_config(tmp_path / "new.yaml").model.backbone_args.width == 16
    assert load_config(tmp_path / "old.yaml").model.backbone_args.width == 8
    assert load_config(tmp_path / "new.yaml", ["model.small_width=4"]).model.backbone_args.width == 4
    assert load_config(tmp_path / "old.yaml", ["model.backbone_args.width=12"]).model.backbone_args.width == 12
    assert load_config(tmp_path / "old.yaml", {"model.backbone_args": {"width": 20}}).model.backbone_args.width == 20
    # another backbone drops the settings of the one below (they were small's)
    other = load_config(tmp_path / "other.yaml").model
    assert other.backbone == "mobilenet_v2" and other.backbone_args.last_block == 13
    switched = load_config(tmp_path / "new.yaml", ["model.backbone=mobilenet_v2", "model.output_stride=4"]).model
    assert switched.backbone_args == BACKBONES["mobilenet_v2"].args(output_stride=4)
    (tmp_path / "both.yaml").write_text("model:\n  backbone: small\n  small_width: 8\n  backbone_args: {width: 16}\n")
    with pytest.raises(ConfigError, match=r"model\.small_width = 8 \(the old name of model\.backbone_args\.width\).*disagree"):
        load_config(tmp_path / "both.yaml")


def test_the_identity_keeps_the_flat_layout_of_before() -> None:
    """A run's hash is that of its computation in the layout of before issue 29: the flat fields,
    each backbone's value or the old default, and no ``backbone_args`` (tests/test_run_identity.py
    checks it over every committed run)."""
    ident = load_config(None, {"model.backbone": "small", "model.backbone_args.width": 8}).identity()["model"]
    assert "backbone_args" not in ident
    assert {k: ident[k] for k in ("small_width", "output_stride", "last_block", "freeze_bn", "freeze_conv1a")} == {
        "small_width": 8, "output_stride": 8, "last_block": 18, "freeze_bn": True, "freeze_conv1a": True}
    assert load_config(None, {"model.backbone": "small", "model.small_width": 8}).hash() == \
        load_config(None, {"model.backbone": "small", "model.backbone_args.width": 8}).hash()


def test_reading_a_config_imports_no_torch_and_old_names_still_import() -> None:
    """The registry names classes by their module path: loading a config (the report, the TUI)
    imports neither torch nor the models. The names moved in issue 29 still import."""
    code = ("import sys\nfrom aakit.config import load_config\n"
            "load_config(None, {'model.backbone': 'mobilenet_v2', 'model.output_stride': 4}).hash()\n"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith('aakit.models'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == ""
    from aakit.models.resnet38d import convert_file
    from aakit.models.weights import convert_file as old_convert_file
    from aakit.runs import atomic_write_json, read_json  # noqa: F401 - aakit.files' helpers, old home

    assert old_convert_file is convert_file
