"""Networks: ResNet-38 layout and freezing, the small backbone, the heads, parameter groups."""
from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aakit.config import ModelConfig
from aakit.models import SingleStageNet, build_model, count_parameters
from aakit.models.resnet38d import ResNet38d


@pytest.fixture(scope="module")
def res38_net() -> Iterator[SingleStageNet]:
    """One ResNet-38 SingleStageNet for the module (~2 s and 420 MB; a narrow F^s saves 70 MB)."""
    torch.manual_seed(0)
    yield build_model(ModelConfig(backbone="resnet38d", embed_dim=16))
    gc.collect()  # free the 420 MB before the next test module


@pytest.fixture()
def small_net() -> SingleStageNet:
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone="small", backbone_args={"width": 32}, embed_dim=64, seg_dilation=2))


# ----------------------------------------------------------------------------- ResNet-38
def _expected_resnet38_parameters() -> int:
    """Parameter count of resnet38d from its definition (conv weights + BN gamma/beta)."""

    def bn(c: int) -> int:
        return 2 * c

    def res(i: int, m: int, o: int, stride: int = 1) -> int:
        proj = i * o if (i != o or stride != 1) else 0
        return bn(i) + 9 * i * m + bn(m) + 9 * m * o + proj

    def bottleneck(i: int, o: int) -> int:
        q, h = o // 4, o // 2
        return bn(i) + i * q + bn(q) + 9 * q * h + bn(h) + h * o + i * o

    total = 9 * 3 * 64  # conv1a
    total += res(64, 128, 128, 2) + 2 * res(128, 128, 128)
    total += res(128, 256, 256, 2) + 2 * res(256, 256, 256)
    total += res(256, 512, 512, 2) + 5 * res(512, 512, 512)
    total += res(512, 512, 1024) + 2 * res(1024, 512, 1024)
    total += bottleneck(1024, 2048) + bottleneck(2048, 4096)
    return total + bn(4096)  # bn7


def test_resnet38_parameter_count(res38_net: SingleStageNet) -> None:
    backbone = count_parameters(res38_net.backbone)
    assert backbone == _expected_resnet38_parameters()
    assert abs(backbone - 105.1e6) < 0.1e6
    # With ademxapp's ImageNet classifier (4096 -> 1000, with bias) it is 109.2 M.
    with_fc = backbone + 4096 * 1000 + 1000
    assert abs(with_fc - 109.17e6) < 0.01e6
    # The heads: 4096 -> 20 (no bias), 3x3 4096 -> embed_dim (16 here), 3x3 16 -> 21.
    heads = 4096 * 20 + (9 * 4096 * 16 + 16) + (9 * 16 * 21 + 21)
    assert count_parameters(res38_net) == backbone + heads


def test_resnet38_output_stride_8_and_heads(res38_net: SingleStageNet) -> None:
    res38_net.eval()
    x = torch.randn(1, 3, 64, 72)
    with torch.no_grad():
        feats = res38_net.backbone(x)
        out = res38_net(x)
    assert feats.shape == (1, 4096, 8, 9)
    assert (feats >= 0).all()  # bn7 + ReLU
    assert out["cls_logits"].shape == (1, 20)
    assert out["cam"].shape == (1, 20, 8, 9)
    assert out["embedding"].shape == (1, 16, 8, 9)
    assert out["seg_logits"].shape == (1, 21, 8, 9)
    with torch.no_grad():
        odd = res38_net.backbone(torch.randn(1, 3, 41, 41))
    assert odd.shape[-2:] == (6, 6)  # ceil(41 / 8): 321 -> 41 as in psa


def test_resnet38_batchnorm_and_conv1a_frozen(res38_net: SingleStageNet) -> None:
    net = res38_net
    net.train()
    backbone = net.backbone
    assert isinstance(backbone, ResNet38d)
    bns = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 1 + 2 * 15 + 3 * 2  # bn7, two per ResBlock, three per bottleneck
    assert all(not m.training for m in bns)
    assert all(not p.requires_grad for m in bns for p in m.parameters())
    assert not backbone.conv1a.weight.requires_grad
    assert backbone.b2.conv_branch2a.weight.requires_grad
    assert backbone.b6.dropout_2b1.training and net.dropout.training  # dropout does train

    # A training pass leaves the ImageNet statistics alone; the gradient still reaches b2
    # (autograd.grad for one weight: no 400 MB of .grad buffers).
    stats = backbone.bn7.running_mean.clone()
    out = net(torch.randn(1, 3, 32, 32))
    loss = out["cls_logits"].sum() + out["seg_logits"].mean()
    assert torch.equal(backbone.bn7.running_mean, stats)
    (grad,) = torch.autograd.grad(loss, [backbone.b2.conv_branch2a.weight])
    assert grad.abs().sum() > 0


def test_resnet38_freezing_can_be_turned_off() -> None:
    with torch.device("meta"):  # shapes only, no memory
        net = ResNet38d(freeze_bn=False, freeze_conv1a=False)
    net.train()
    assert net.conv1a.weight.requires_grad
    assert net.bn7.training and net.bn7.weight.requires_grad
    net.eval()
    assert not net.bn7.training


def test_psa_module_names(res38_net: SingleStageNet) -> None:
    keys = set(res38_net.backbone.state_dict())
    for key in (
        "conv1a.weight",
        "b2.conv_branch1.weight",
        "b2_2.bn_branch2b1.running_var",
        "b4_5.conv_branch2b1.weight",
        "b5.conv_branch1.weight",
        "b6.conv_branch2b2.weight",
        "b7.bn_branch2b2.weight",
        "bn7.running_mean",
    ):
        assert key in keys
    assert "b2_1.conv_branch1.weight" not in keys  # identity shortcut when the shape is kept
    assert res38_net.backbone.b5.conv_branch2a.dilation == (1, 1)
    assert res38_net.backbone.b5_1.conv_branch2a.dilation == (2, 2)
    assert res38_net.backbone.b7.conv_branch2b1.dilation == (4, 4)


# ----------------------------------------------------------------------------- parameter groups
def _check_groups(net: SingleStageNet) -> tuple[list[nn.Parameter], ...]:
    groups = net.param_groups()
    assert len(groups) == 4
    ids = [id(p) for g in groups for p in g]
    assert len(ids) == len(set(ids)), "a parameter appears twice"
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    assert set(ids) == trainable
    assert all(p.requires_grad for g in groups for p in g)
    return groups


def test_param_groups_resnet38(res38_net: SingleStageNet) -> None:
    w, b, new_w, new_b = _check_groups(res38_net)
    assert b == []  # ResNet-38 convs have no bias and the BN is frozen
    assert all(p.dim() == 4 for p in w)
    assert {id(p) for p in new_w} == {
        id(res38_net.classifier.weight),
        id(res38_net.seg_embed.weight),
        id(res38_net.seg_classifier.weight),
    }
    biases = {id(res38_net.seg_embed.bias), id(res38_net.seg_classifier.bias)}
    assert {id(p) for p in new_b} == biases
    assert id(res38_net.backbone.conv1a.weight) not in {id(p) for p in w}


def test_param_groups_small(small_net: SingleStageNet) -> None:
    w, b, new_w, new_b = _check_groups(small_net)
    norm = small_net.backbone.norm_out
    assert id(norm.bias) in {id(p) for p in b}
    assert id(norm.weight) in {id(p) for p in w}
    assert len(new_w) == 3 and len(new_b) == 2


# ----------------------------------------------------------------------------- small backbone
def test_small_backbone_41x41_at_164(small_net: SingleStageNet) -> None:
    small_net.eval()
    x = torch.randn(2, 3, 164, 164)
    with torch.no_grad():
        feats = small_net.backbone(x)
        out = small_net(x)
    assert feats.shape == (2, 128, 41, 41)
    assert out["cls_logits"].shape == (2, 20)
    assert out["cam"].shape == (2, 20, 41, 41)
    assert out["embedding"].shape == (2, 64, 41, 41)
    assert out["seg_logits"].shape == (2, 21, 41, 41)
    assert 0.3e6 <= count_parameters(small_net.backbone) <= 0.6e6
    gn = [m for m in small_net.backbone.modules() if isinstance(m, nn.GroupNorm)]
    assert gn and not any(isinstance(m, nn.BatchNorm2d) for m in small_net.backbone.modules())


def test_small_width_scales_channels() -> None:
    net = build_model(ModelConfig(backbone="small", backbone_args={"width": 16}, num_classes=5, embed_dim=8))
    out = net.eval()(torch.randn(1, 3, 64, 64))
    assert net.backbone.out_channels == 64
    assert out["cls_logits"].shape == (1, 4) and out["seg_logits"].shape == (1, 5, 16, 16)


# ----------------------------------------------------------------------------- heads
def test_cam_is_the_classifier_slid_over_the_features(small_net: SingleStageNet) -> None:
    small_net.eval()  # no dropout: pooled logits = spatial mean of the pre-ReLU class maps
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        feats = small_net.backbone(x)
        out = small_net(x)
        maps = F.conv2d(feats, small_net.classifier.weight)
        cam = small_net.forward_cam(x)
    torch.testing.assert_close(out["cls_logits"], maps.mean(dim=(2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["cam"], maps.clamp(min=0))
    torch.testing.assert_close(cam, out["cam"])
    torch.testing.assert_close(out["embedding"], F.relu(small_net.seg_embed(feats)))
    assert (out["embedding"] >= 0).all()


def test_dropout_only_touches_the_classification_branch(small_net: SingleStageNet) -> None:
    small_net.train()
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(1)
    a = small_net(x)
    torch.manual_seed(2)
    b = small_net(x)
    assert not torch.allclose(a["cls_logits"], b["cls_logits"])  # Dropout2d(0.5) differs
    torch.testing.assert_close(a["cam"], b["cam"])
    torch.testing.assert_close(a["seg_logits"], b["seg_logits"])


def test_build_model_loads_pretrained(tmp_path, small_net: SingleStageNet) -> None:
    path = tmp_path / "small.pth"
    torch.save(small_net.state_dict(), path)
    torch.manual_seed(123)
    net = build_model(
        ModelConfig(
            backbone="small", backbone_args={"width": 32}, embed_dim=64, seg_dilation=2, pretrained=str(path)
        )
    )
    for (k, v), (k2, v2) in zip(net.state_dict().items(), small_net.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    report = net.pretrained_report
    assert report is not None and report.missing == [] and report.new_layers == []
    assert "backbone.stem.0.weight" in report.loaded and "classifier.weight" in report.loaded
