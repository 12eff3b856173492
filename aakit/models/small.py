"""A small CPU backbone for the embedded benchmark (``model.backbone: small``).

It stands in for ResNet-38 where a 100 M-parameter network is out of reach: the same
pre-activation residual design, but about 0.4 M parameters at the default width 32 and an
output stride of **4**, so a 164-pixel crop gives a 41 x 41 feature map, the size ResNet-38
gives for VOC's 321 crops at stride 8. (METHOD.md says "output stride 8" for the small net;
stride 4 keeps the feature maps, and thus the affinity dilations 4-8-12-24 of the AA loss,
at VOC's scale on images small enough for a CPU.)

Layout for ``width = w`` (input 164 -> output 41):

stage   block                                     channels  stride  dilation
stem    3x3 conv s2 -> norm -> ReLU -> 3x3 conv   w         2       1
stage1  pre-activation block, two 3x3             2w        4       1
stage2  pre-activation block, two 3x3             4w        4       2
stage3  pre-activation bottleneck                 4w        4       4
stage4  pre-activation bottleneck                 4w        4       8
out     norm -> ReLU                              4w

The dilations 2-4-8 give a receptive field of about 150 pixels, most of the 164 crop.
Normalisation is GroupNorm (8 groups, trainable): unlike BatchNorm it does not depend on the
batch, so the small batches of a CPU run, the no-grad multi-scale CAM passes and evaluation
all see the same normalisation, and there are no running statistics to lag behind.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aakit.models.backbone import Backbone


def group_norm(channels: int, groups: int = 8) -> nn.GroupNorm:
    """GroupNorm with up to ``groups`` groups (fewer if ``channels`` is not divisible)."""
    return nn.GroupNorm(math.gcd(groups, channels), channels)


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride, padding=dilation, dilation=dilation, bias=False)


class PreActBlock(nn.Module):
    """Pre-activation block: ``shortcut + conv(relu(norm(conv(relu(norm(x))))))``.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        stride: stride of the first convolution and of the projection shortcut.
        dilation: dilation of both 3x3 convolutions.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = _conv3x3(in_ch, out_ch, stride, dilation)
        self.norm2 = group_norm(out_ch)
        self.conv2 = _conv3x3(out_ch, out_ch, 1, dilation)
        self.shortcut: nn.Conv2d | None = None
        if in_ch != out_ch or stride != 1:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.norm1(x))
        skip = x if self.shortcut is None else self.shortcut(pre)
        y = self.conv2(F.relu(self.norm2(self.conv1(pre))))
        return skip + y


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck ``ch -> ch/2 (1x1) -> ch/2 (3x3, dilated) -> ch (1x1)``.

    Args:
        channels: input and output channels (identity shortcut).
        dilation: dilation of the 3x3 convolution.
    """

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        mid = channels // 2
        self.norm1 = group_norm(channels)
        self.conv1 = nn.Conv2d(channels, mid, 1, bias=False)
        self.norm2 = group_norm(mid)
        self.conv2 = _conv3x3(mid, mid, 1, dilation)
        self.norm3 = group_norm(mid)
        self.conv3 = nn.Conv2d(mid, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(self.norm1(x)))
        y = self.conv2(F.relu(self.norm2(y)))
        y = self.conv3(F.relu(self.norm3(y)))
        return x + y


class SmallBackbone(Backbone):
    """Small residual backbone, output stride 4: ``(B, 3, 164, 164) -> (B, 4w, 41, 41)``.

    Args:
        width: base width ``w`` (``model.backbone_args.width``); output channels are ``4w``.

    Attributes:
        out_channels: channels of the output features (4 * width).
        output_stride: 4.
    """

    output_stride: int = 4

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        if width < 4:
            raise ValueError(f"small backbone width must be >= 4, got {width}")
        w = width
        self.out_channels = 4 * w
        self.stem = nn.Sequential(
            _conv3x3(3, w, stride=2), group_norm(w), nn.ReLU(inplace=True), _conv3x3(w, w)
        )
        self.stage1 = PreActBlock(w, 2 * w, stride=2)
        self.stage2 = PreActBlock(2 * w, 4 * w, dilation=2)
        self.stage3 = PreActBottleneck(4 * w, dilation=4)
        self.stage4 = PreActBottleneck(4 * w, dilation=8)
        self.norm_out = group_norm(4 * w)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of shape (B, 4w, ceil(H/4), ceil(W/4))."""
        x = self.stem(x)
        x = self.stage4(self.stage3(self.stage2(self.stage1(x))))
        return F.relu(self.norm_out(x))
