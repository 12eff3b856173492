"""ResNet-38 "resnet38d": the backbone of psa and RRM (METHOD.md section 1).

A wide ResNet of pre-activation blocks (Wu, Shen & van den Hengel, "Wider or Deeper"),
cut at output stride 8: the last stages trade stride for dilation so the 4096-channel
feature map keeps 1/8 of the input resolution (41 x 41 for a 321 crop).

Stage   blocks                              channels   stride  dilation
conv1a  3x3 conv                            64         1       1
b2      3 x ResBlock                        128        2       1
b3      3 x ResBlock                        256        4       1
b4      6 x ResBlock                        512        8       1
b5      3 x ResBlock                        1024       8       2
b6      1 x bottleneck (dropout 0.3)        2048       8       4
b7      1 x bottleneck (dropout 0.5)        4096       8       4
bn7     BatchNorm + ReLU                    4096

Module and parameter names follow psa's ``network/resnet38d.py`` (``conv1a``, ``b2``,
``b2_1``, ..., ``b4_5``, ``b5``, ``b5_1``, ``b5_2``, ``b6``, ``b7``, ``bn7``; inside a block
``bn_branch2a``, ``conv_branch2a``, ``bn_branch2b1``, ``conv_branch2b1``, ``conv_branch1``,
and for bottlenecks ``bn_branch2b2``, ``conv_branch2b2``), so a psa-layout state dict (or the
ImageNet MXNet file, converted by :mod:`aakit.models.weights`) loads without renaming.

As in psa and RRM, BatchNorm is frozen (always in eval mode, affine parameters without
gradient): the ImageNet statistics are kept, which matters with batches of 4 crops.
``conv1a`` is frozen too.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from aakit.files import atomic_write_bytes
from aakit.models.backbone import Backbone
from aakit.models.weights import (
    LoadReport,
    WeightsError,
    convert_mxnet_resnet38,
    is_imagenet_classifier,
    is_mxnet_params,
    plan_load,
    read_mxnet_params,
)


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias; padding = dilation keeps the size (at stride 1)."""
    return nn.Conv2d(in_ch, out_ch, 3, stride, padding=dilation, dilation=dilation, bias=False)


class ResBlock(nn.Module):
    """Pre-activation residual block of two 3x3 convolutions (psa's ``ResBlock``).

    ``y = shortcut + conv_2b1(relu(bn_2b1(conv_2a(relu(bn_2a(x))))))``. The shortcut is the
    identity when the shape is kept, otherwise a strided 1x1 convolution applied to the
    *pre-activated* input ``relu(bn_2a(x))`` (the "pre-activation" design).

    Args:
        in_ch: input channels.
        mid_ch: channels after the first 3x3 convolution.
        out_ch: output channels.
        stride: stride of the first convolution and of the projection shortcut.
        dilation: dilation of the second convolution (and of the first, unless
            ``first_dilation`` is given).
        first_dilation: dilation of the first convolution (b5 enters dilation 2 with 1).
    """

    def __init__(
        self,
        in_ch: int,
        mid_ch: int,
        out_ch: int,
        stride: int = 1,
        dilation: int = 1,
        first_dilation: int | None = None,
    ) -> None:
        super().__init__()
        first = dilation if first_dilation is None else first_dilation
        self.bn_branch2a = nn.BatchNorm2d(in_ch)
        self.conv_branch2a = _conv3x3(in_ch, mid_ch, stride, first)
        self.bn_branch2b1 = nn.BatchNorm2d(mid_ch)
        self.conv_branch2b1 = _conv3x3(mid_ch, out_ch, 1, dilation)
        self.conv_branch1: nn.Conv2d | None = None
        if in_ch != out_ch or stride != 1:
            self.conv_branch1 = nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn_branch2a(x))
        shortcut = x if self.conv_branch1 is None else self.conv_branch1(pre)
        y = self.conv_branch2a(pre)
        y = self.conv_branch2b1(F.relu(self.bn_branch2b1(y)))
        return shortcut + y


class BottleneckBlock(nn.Module):
    """Pre-activation bottleneck 1x1 -> 3x3 -> 1x1 with channel dropout (psa's ``ResBlock_bot``).

    Channels go ``in -> out/4 -> out/2 -> out``; ``Dropout2d(dropout)`` precedes the 3x3 and
    the last 1x1 convolution. The shortcut is always a 1x1 projection of the pre-activated
    input (in b6 and b7 the channel count changes).

    Args:
        in_ch: input channels.
        out_ch: output channels.
        stride: stride of the first 1x1 convolution and of the shortcut.
        dilation: dilation of the 3x3 convolution.
        dropout: drop probability of both ``Dropout2d`` layers.
    """

    def __init__(
        self, in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.bn_branch2a = nn.BatchNorm2d(in_ch)
        self.conv_branch2a = nn.Conv2d(in_ch, out_ch // 4, 1, stride, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(out_ch // 4)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = _conv3x3(out_ch // 4, out_ch // 2, 1, dilation)
        self.bn_branch2b2 = nn.BatchNorm2d(out_ch // 2)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(out_ch // 2, out_ch, 1, bias=False)
        self.conv_branch1 = nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn_branch2a(x))
        shortcut = self.conv_branch1(pre)
        y = self.conv_branch2a(pre)
        y = self.conv_branch2b1(self.dropout_2b1(F.relu(self.bn_branch2b1(y))))
        y = self.conv_branch2b2(self.dropout_2b2(F.relu(self.bn_branch2b2(y))))
        return shortcut + y


class ResNet38d(Backbone):
    """ResNet-38 cut at output stride 8: ``(B, 3, H, W) -> (B, 4096, ceil(H/8), ceil(W/8))``.

    Args:
        freeze_bn: keep every BatchNorm in eval mode with frozen affine parameters
            (psa/RRM); False gives ordinary trainable BatchNorm.
        freeze_conv1a: freeze the first convolution (psa's ``not_training``).

    Attributes:
        out_channels: 4096, the channels of the output features.
        output_stride: 8.
    """

    out_channels: int = 4096
    output_stride: int = 8

    def __init__(self, freeze_bn: bool = True, freeze_conv1a: bool = True) -> None:
        super().__init__()
        self.freeze_bn = freeze_bn
        self.freeze_conv1a = freeze_conv1a

        self.conv1a = _conv3x3(3, 64)

        self.b2 = ResBlock(64, 128, 128, stride=2)
        self.b2_1 = ResBlock(128, 128, 128)
        self.b2_2 = ResBlock(128, 128, 128)

        self.b3 = ResBlock(128, 256, 256, stride=2)
        self.b3_1 = ResBlock(256, 256, 256)
        self.b3_2 = ResBlock(256, 256, 256)

        self.b4 = ResBlock(256, 512, 512, stride=2)
        self.b4_1 = ResBlock(512, 512, 512)
        self.b4_2 = ResBlock(512, 512, 512)
        self.b4_3 = ResBlock(512, 512, 512)
        self.b4_4 = ResBlock(512, 512, 512)
        self.b4_5 = ResBlock(512, 512, 512)

        # From here on the stride stays 8: dilation enlarges the receptive field instead.
        self.b5 = ResBlock(512, 512, 1024, dilation=2, first_dilation=1)
        self.b5_1 = ResBlock(1024, 512, 1024, dilation=2)
        self.b5_2 = ResBlock(1024, 512, 1024, dilation=2)

        self.b6 = BottleneckBlock(1024, 2048, dilation=4, dropout=0.3)
        self.b7 = BottleneckBlock(2048, 4096, dilation=4, dropout=0.5)

        self.bn7 = nn.BatchNorm2d(4096)

        self._init_weights()
        if freeze_conv1a:
            self.conv1a.weight.requires_grad_(False)
        if freeze_bn:
            for bn in self.batchnorms():
                bn.requires_grad_(False)
            self.train(self.training)  # puts the BatchNorms in eval mode

    def _init_weights(self) -> None:
        """He initialisation for a start without ImageNet weights (then overwritten)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def batchnorms(self) -> list[nn.BatchNorm2d]:
        """Every BatchNorm layer of the network."""
        return [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)]

    def train(self, mode: bool = True) -> "ResNet38d":
        """Set train/eval mode; frozen BatchNorms stay in eval mode whatever ``mode`` is."""
        super().train(mode)
        if self.freeze_bn:
            for bn in self.batchnorms():
                bn.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``relu(bn7(b7(...)))`` of shape (B, 4096, ceil(H/8), ceil(W/8))."""
        x = self.conv1a(x)
        for name in _BLOCK_NAMES:
            x = getattr(self, name)(x)
        return F.relu(self.bn7(x))


# The blocks in forward order, named as psa names them.
_BLOCK_NAMES: tuple[str, ...] = (
    "b2", "b2_1", "b2_2",
    "b3", "b3_1", "b3_2",
    "b4", "b4_1", "b4_2", "b4_3", "b4_4", "b4_5",
    "b5", "b5_1", "b5_2",
    "b6", "b7",
)  # fmt: skip


def convert_file(src: str | Path, dst: str | Path) -> LoadReport:
    """Convert ademxapp's MXNet ResNet-38 to a psa-layout ``.pth`` (``aakit weights convert``).

    The arrays are checked against ResNet-38's shapes (built on the meta device, so without
    memory); only the arrays that fit are written. ``dst`` is written atomically.

    Returns:
        The report of the check (``missing``: ResNet-38 keys absent from the file).

    Raises:
        WeightsError: ``src`` is not an MXNet list file, or its shapes do not fit ResNet-38.
    """
    src = Path(src)
    if not src.is_file():
        raise WeightsError(f"{src}: weights file not found")
    if not is_mxnet_params(src):
        raise WeightsError(f"{src}: not an MXNet .params file (no NDArray-list magic 0x112)")
    arrays = read_mxnet_params(src)
    ignored = [n for n in arrays if is_imagenet_classifier(n)]
    with torch.device("meta"):
        reference = ResNet38d()
    assign, report = plan_load(reference, convert_mxnet_resnet38(arrays), str(src), "mxnet", ignored)
    buf = io.BytesIO()
    torch.save({k: v.contiguous() for k, v in assign.items()}, buf)
    atomic_write_bytes(Path(dst), buf.getvalue())
    return report
