"""Weights: the MXNet NDArray-list format, ademxapp -> psa renaming, loading and its errors."""
from __future__ import annotations

import gc
import json
import struct
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from aakit.errors import AakitError
from aakit.models import SingleStageNet, WeightsError, load_pretrained
from aakit.models.resnet38d import ResNet38d, convert_file
from aakit.models.weights import (
    apply_pretrained,
    convert_mxnet_resnet38,
    is_imagenet_classifier,
    mxnet_to_psa_name,
    read_mxnet_params,
    write_mxnet_params,
)

_MX_BN = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_var",
}


def ademxapp_name(key: str) -> str:
    """The ademxapp array name of a psa key, written independently of the code under test."""
    if key == "conv1a.weight":
        return "arg:conv1a_weight"
    parts = key.split(".")
    prefix = "aux:" if parts[-1].startswith("running") else "arg:"
    if parts[0] == "bn7":
        return f"{prefix}bn7_{_MX_BN[parts[1]]}"
    block, layer, param = parts
    stage, _, k = block[1:].partition("_")
    unit = f"{stage}b{k}" if k else f"{stage}a"
    kind, branch = layer.split("_", 1)  # conv_branch2a -> conv, branch2a
    if kind == "conv":
        return f"arg:res{unit}_{branch}_weight"
    return f"{prefix}bn{unit}_{branch}_{_MX_BN[param]}"


@pytest.fixture(scope="module")
def resnet() -> Iterator[ResNet38d]:
    """One real ResNet-38 for the module (~400 MB, ~2 s)."""
    yield ResNet38d()
    gc.collect()  # tracebacks kept by pytest.raises hold it in cycles: free it now


@pytest.fixture(scope="module")
def psa_shapes() -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        net = ResNet38d()
    return {k: tuple(v.shape) for k, v in net.state_dict().items() if "num_batches" not in k}


def _subset_arrays(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Random ademxapp-named arrays for conv1a, the b2 block and bn7, plus the classifier."""
    rng = np.random.default_rng(seed)
    keys = [k for k in shapes if k.startswith(("conv1a.", "b2.", "bn7."))]
    arrays = {ademxapp_name(k): rng.standard_normal(shapes[k]).astype(np.float32) for k in keys}
    arrays["arg:linear1000_weight"] = rng.standard_normal((1000, 4096)).astype(np.float32)
    arrays["arg:linear1000_bias"] = rng.standard_normal(1000).astype(np.float32)
    return arrays


def _constant(value: float, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of ``shape`` filled with ``value`` that takes 4 bytes (zero strides)."""
    base = np.full(1, value, np.float32)
    return np.lib.stride_tricks.as_strided(base, shape, (0,) * len(shape), writeable=True)


# ----------------------------------------------------------------------------- MXNet format
@pytest.mark.parametrize("version", ["legacy", "v1", "v2", "v3"])
def test_mxnet_round_trip(tmp_path, version: str) -> None:
    rng = np.random.default_rng(1)
    arrays = {
        "arg:res2a_branch1_weight": rng.standard_normal((8, 4, 1, 1)).astype(np.float32),
        "arg:bn2a_branch2a_gamma": rng.standard_normal(4).astype(np.float32),
        "aux:bn2a_branch2a_moving_mean": rng.standard_normal(4).astype(np.float32),
        "aux:bn7_moving_var": rng.random(3).astype(np.float64),
        "arg:counts": rng.integers(-5, 5, (2, 3)).astype(np.int32),
        "arg:mask": rng.integers(0, 255, (5,)).astype(np.uint8),
        "arg:half": rng.standard_normal((2, 2)).astype(np.float16),
        "arg:empty": np.zeros((0, 3), np.float32),
    }
    path = tmp_path / "small.params"
    write_mxnet_params(path, arrays, version=version)
    back = read_mxnet_params(path)
    assert list(back) == list(arrays)
    for name, a in arrays.items():
        assert back[name].dtype == a.dtype and back[name].shape == a.shape, name
        np.testing.assert_array_equal(back[name], a)


def test_reader_follows_the_mxnet_layout_byte_by_byte(tmp_path) -> None:
    """A file assembled by hand from NDArray::Save's layout, independent of the writer."""
    v2 = np.arange(6, dtype=np.float32).reshape(2, 3)
    legacy = np.array([1.5, -2.0], dtype=np.float32)
    blob = struct.pack("<QQQ", 0x112, 0, 2)
    # V2: magic, dense storage, int32 ndim + int64 dims, cpu(0), float32 flag, data
    blob += struct.pack("<Iiiqq", 0xF993FAC9, 0, 2, 2, 3) + struct.pack("<iii", 1, 0, 0)
    blob += v2.tobytes()
    # legacy (MXNet 0.x): uint32 ndim in place of the magic, uint32 dims, context on GPU 1
    blob += struct.pack("<II", 1, 2) + struct.pack("<iii", 2, 1, 0) + legacy.tobytes()
    names = [b"arg:conv1a_weight", b"aux:bn7_moving_mean"]
    blob += struct.pack("<Q", 2) + b"".join(struct.pack("<Q", len(n)) + n for n in names)
    path = tmp_path / "hand.params"
    path.write_bytes(blob)
    back = read_mxnet_params(path)
    assert list(back) == ["arg:conv1a_weight", "aux:bn7_moving_mean"]
    np.testing.assert_array_equal(back["arg:conv1a_weight"], v2)
    np.testing.assert_array_equal(back["aux:bn7_moving_mean"], legacy)


def test_unnamed_list_and_sparse(tmp_path) -> None:
    a = np.ones(3, np.float32)
    blob = struct.pack("<QQQ", 0x112, 0, 1) + struct.pack("<Iiiq", 0xF993FAC9, 0, 1, 3)
    blob += struct.pack("<iii", 1, 0, 0) + a.tobytes() + struct.pack("<Q", 0)
    path = tmp_path / "unnamed.params"
    path.write_bytes(blob)
    np.testing.assert_array_equal(read_mxnet_params(path)["0"], a)
    sparse = struct.pack("<QQQ", 0x112, 0, 1) + struct.pack("<Ii", 0xF993FAC9, 1) + b"\0" * 64
    path.write_bytes(sparse)
    with pytest.raises(WeightsError, match="row-sparse"):
        read_mxnet_params(path)


# ----------------------------------------------------------------------------- renaming
def test_name_mapping_covers_every_resnet38_key(psa_shapes) -> None:
    # conv1a + 4 ResBlocks with a projection (2 BN x 4 + 3 convs) + 11 without
    # + 2 bottlenecks (3 BN x 4 + 4 convs) + bn7
    assert len(psa_shapes) == 1 + 4 * 11 + 11 * 10 + 2 * 16 + 4
    for key in psa_shapes:
        name = ademxapp_name(key)
        assert mxnet_to_psa_name(name) == key, name
        assert mxnet_to_psa_name(name.split(":", 1)[1]) == key  # without arg:/aux:
    examples = {
        "arg:res4b5_branch2b1_weight": "b4_5.conv_branch2b1.weight",
        "aux:bn2a_branch2a_moving_var": "b2.bn_branch2a.running_var",
        "arg:bn5b2_branch2b1_beta": "b5_2.bn_branch2b1.bias",
        "arg:res6a_branch2b2_weight": "b6.conv_branch2b2.weight",
        "arg:res7a_branch1_weight": "b7.conv_branch1.weight",
        "arg:bn7_gamma": "bn7.weight",
        "aux:bn7_moving_mean": "bn7.running_mean",
    }
    for mx, psa in examples.items():
        assert mxnet_to_psa_name(mx) == psa
    for name in ("arg:linear1000_weight", "arg:linear1000_bias", "fc.weight"):
        assert is_imagenet_classifier(name) and mxnet_to_psa_name(name) is None
    assert mxnet_to_psa_name("arg:something_else") is None
    assert not is_imagenet_classifier("fc8.weight")  # RRM's VOC classifier is not ImageNet's


def test_full_conversion_loads_every_key(resnet: ResNet38d, psa_shapes) -> None:
    """All ademxapp arrays of ResNet-38 (zero-stride constants: no 400 MB of memory)."""
    arrays: dict[str, np.ndarray] = {}
    value_of: dict[str, float] = {}
    for i, (key, shape) in enumerate(psa_shapes.items()):
        value_of[key] = (i + 1) / 1000.0
        arrays[ademxapp_name(key)] = _constant(value_of[key], shape)
    for name, shape in (("arg:linear1000_weight", (1000, 4096)), ("arg:linear1000_bias", (1000,))):
        arrays[name] = _constant(0.0, shape)
    state = convert_mxnet_resnet38(arrays)
    assert set(state) == set(psa_shapes)
    report = apply_pretrained(resnet, state, "fake.params", "mxnet", ["arg:linear1000_weight"])
    assert report.missing == [] and report.unexpected == [] and report.new_layers == []
    assert sorted(report.loaded) == sorted(psa_shapes)
    current = resnet.state_dict()
    for key, v in value_of.items():
        assert bool((current[key] == v).all()), key


# ----------------------------------------------------------------------------- loading files
def test_params_file_loads_into_resnet(tmp_path, resnet: ResNet38d, psa_shapes) -> None:
    arrays = _subset_arrays(psa_shapes)
    path = tmp_path / "ilsvrc-subset.params"
    write_mxnet_params(path, arrays)
    report = load_pretrained(resnet, path)
    expected = {mxnet_to_psa_name(n) for n in arrays} - {None}
    assert set(report.loaded) == expected
    assert sorted(report.ignored) == ["arg:linear1000_bias", "arg:linear1000_weight"]
    assert "b3.conv_branch2a.weight" in report.missing
    assert not any("num_batches_tracked" in k for k in report.missing)
    assert report.unexpected == [] and report.format == "mxnet"
    state = resnet.state_dict()
    for name, a in arrays.items():
        key = mxnet_to_psa_name(name)
        if key:
            np.testing.assert_array_equal(state[key].numpy(), a)
    assert f"loaded {len(expected)} tensors" in report.summary() and len(expected) == 1 + 11 + 4


def test_convert_file_writes_psa_layout(tmp_path, resnet: ResNet38d, psa_shapes) -> None:
    arrays = _subset_arrays(psa_shapes, seed=5)
    src, dst = tmp_path / "in.params", tmp_path / "out" / "res38.pth"
    write_mxnet_params(src, arrays, version="legacy")
    report = convert_file(src, dst)
    saved = torch.load(dst, map_location="cpu", weights_only=True)
    assert set(saved) == {mxnet_to_psa_name(n) for n in arrays} - {None}
    assert len(report.missing) == len(psa_shapes) - len(saved)
    np.testing.assert_array_equal(
        saved["b2.conv_branch1.weight"].numpy(), arrays["arg:res2a_branch1_weight"]
    )
    loaded = load_pretrained(resnet, dst)
    assert loaded.format == "pth" and set(loaded.loaded) == set(saved)
    assert torch.equal(resnet.bn7.running_var, saved["bn7.running_var"])


def test_pth_into_single_stage_net_maps_rrm_heads(tmp_path, resnet: ResNet38d) -> None:
    net = SingleStageNet(resnet, 4096, num_classes=21, embed_dim=8, seg_dilation=12)
    state = {
        "conv1a.weight": torch.randn(64, 3, 3, 3),
        "module.b2.bn_branch2a.running_mean": torch.randn(64),
        "fc8.weight": torch.randn(20, 4096, 1, 1),  # psa's VOC classifier (res38_cls.pth)
        "fc.weight": torch.randn(1000, 4096),  # an ImageNet classifier: ignored
        "foo.bar": torch.zeros(2),
    }
    path = tmp_path / "res38_cls.pth"
    torch.save({"state_dict": state}, path)
    report = load_pretrained(net, path)
    assert torch.equal(net.classifier.weight, state["fc8.weight"])
    assert torch.equal(net.backbone.conv1a.weight, state["conv1a.weight"])
    assert torch.equal(
        net.backbone.b2.bn_branch2a.running_mean, state["module.b2.bn_branch2a.running_mean"]
    )
    assert set(report.loaded) == {
        "backbone.conv1a.weight",
        "backbone.b2.bn_branch2a.running_mean",
        "classifier.weight",
    }
    assert report.ignored == ["fc.weight"] and report.unexpected == ["foo.bar"]
    assert "seg_embed.weight" in report.new_layers and "classifier.weight" not in report.new_layers
    assert "backbone.b7.conv_branch1.weight" in report.missing


# ----------------------------------------------------------------------------- user mistakes
def _one_line_error(excinfo: pytest.ExceptionInfo, path) -> str:
    msg = str(excinfo.value)
    assert isinstance(excinfo.value, AakitError)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_wrong_files_raise_weights_error(tmp_path, resnet: ResNet38d, psa_shapes) -> None:
    rng = np.random.default_rng(0)
    random_file = tmp_path / "random.params"
    random_file.write_bytes(rng.bytes(4096))
    json_file = tmp_path / "weights.pth"
    json_file.write_text(json.dumps({"conv1a.weight": [1, 2, 3]}))
    good = tmp_path / "good.params"
    write_mxnet_params(good, {k: v for k, v in list(_subset_arrays(psa_shapes).items())[:6]})
    truncated = tmp_path / "truncated.params"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    junk_after_magic = tmp_path / "junk.params"
    junk_after_magic.write_bytes(struct.pack("<QQQ", 0x112, 0, 3) + rng.bytes(200))
    pth = tmp_path / "net.pth"
    torch.save({"conv1a.weight": torch.zeros(64, 3, 3, 3)}, pth)
    truncated_pth = tmp_path / "truncated.pth"
    truncated_pth.write_bytes(pth.read_bytes()[:300])
    not_state = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_state)
    no_match = tmp_path / "other.pth"
    torch.save({"encoder.layer1.weight": torch.zeros(3)}, no_match)

    cases = {
        random_file: "neither an MXNet",
        json_file: "neither an MXNet",
        truncated: "truncated",
        junk_after_magic: "",
        truncated_pth: "neither an MXNet",
        not_state: "not a state dict",
        no_match: "no array matches",
        tmp_path / "absent.params": "not found",
    }
    for path, words in cases.items():
        with pytest.raises(WeightsError) as excinfo:
            load_pretrained(resnet, path)
        assert words in _one_line_error(excinfo, path), path
    with pytest.raises(WeightsError) as excinfo:
        convert_file(json_file, tmp_path / "x.pth")
    assert "not an MXNet .params file" in _one_line_error(excinfo, json_file)
    assert not (tmp_path / "x.pth").exists()


def test_wrong_shape_names_the_key(tmp_path, resnet: ResNet38d) -> None:
    before = resnet.conv1a.weight.clone()
    path = tmp_path / "bad.pth"
    bad = {"conv1a.weight": torch.ones(64, 3, 3, 3), "b2.conv_branch2a.weight": torch.zeros(3, 3)}
    torch.save(bad, path)
    with pytest.raises(WeightsError) as excinfo:
        load_pretrained(resnet, path)
    msg = _one_line_error(excinfo, path)
    assert "b2.conv_branch2a.weight" in msg and "(3, 3)" in msg and "(128, 64, 3, 3)" in msg
    assert torch.equal(resnet.conv1a.weight, before)  # nothing is loaded from a bad file

    mx = tmp_path / "bad.params"
    write_mxnet_params(mx, {"arg:bn7_gamma": np.ones(10, np.float32)})
    with pytest.raises(WeightsError, match=r"bn7\.weight"):
        load_pretrained(resnet, mx)
    with pytest.raises(WeightsError, match=r"bn7\.weight"):
        convert_file(mx, tmp_path / "bad-out.pth")
