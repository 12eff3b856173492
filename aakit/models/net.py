"""RRM's single-stage network: one backbone, a classification head and a segmentation head.

METHOD.md section 1. From the backbone features ``f`` (B, C, h, w):

* classification: ``Dropout2d(0.5) -> global average pooling -> 1x1 conv C -> K`` (no bias),
  K = num_classes - 1 object classes; these logits feed the multilabel soft-margin loss;
* CAM: the same 1x1 weights slid over the *undropped* features, ``relu(conv(f, W))``;
  the CAM gives the online pseudo labels;
* segmentation: ``3x3 conv (dilation 12) C -> embed_dim + ReLU`` = **F^s** (the embedding of
  the LR loss), then ``3x3 conv (dilation 12) embed_dim -> num_classes`` = **F^c** logits
  (softmax gives the probabilities of the CE and AA losses).

Example::

    model = build_model(cfg.model)
    out = model(images)             # dict: cls_logits, cam, embedding, seg_logits
    groups = model.param_groups()   # lr 1x, 2x, 10x, 20x
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from aakit.models.backbone import build_backbone as make_backbone

if TYPE_CHECKING:
    from aakit.config import ModelConfig


class SingleStageNet(nn.Module):
    """Backbone + classification head + segmentation head (RRM).

    Args:
        backbone: module mapping (B, 3, H, W) images to (B, feat_channels, h, w) features.
        feat_channels: channels of the backbone features (4096 for ResNet-38).
        num_classes: classes including background (21 for VOC); the classifier has
            ``num_classes - 1`` outputs.
        embed_dim: channels of F^s (C1 = 512).
        seg_dilation: dilation (and padding) of both 3x3 segmentation convolutions.

    Attributes:
        classifier: the 1x1 classification convolution (RRM's ``fc8``).
        seg_embed: the first segmentation convolution, giving F^s (``fc8_seg_conv1``).
        seg_classifier: the second one, giving the F^c logits (``fc8_seg_conv2``).
        pretrained_report: the :class:`~aakit.models.weights.LoadReport` of the weights
            loaded by :func:`build_model`, or None.
    """

    def __init__(
        self,
        backbone: nn.Module,
        feat_channels: int,
        num_classes: int = 21,
        embed_dim: int = 512,
        seg_dilation: int = 12,
        cls_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes counts the background: need >= 2, got {num_classes}")
        self.backbone = backbone
        self.num_classes = num_classes
        self.dropout = nn.Dropout2d(cls_dropout)
        self.classifier = nn.Conv2d(feat_channels, num_classes - 1, 1, bias=False)
        d = seg_dilation
        self.seg_embed = nn.Conv2d(feat_channels, embed_dim, 3, padding=d, dilation=d)
        self.seg_classifier = nn.Conv2d(embed_dim, num_classes, 3, padding=d, dilation=d)
        # New layers start as in RRM: Xavier-uniform weights (biases at zero here).
        for conv in self.head_modules():
            nn.init.xavier_uniform_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        self.pretrained_report = None

    def head_modules(self) -> list[nn.Conv2d]:
        """The layers trained from scratch (RRM's ``from_scratch_layers``)."""
        return [self.classifier, self.seg_embed, self.seg_classifier]

    def cam_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Class activation maps ``relu(conv(features, W_cls))``, shape (B, K, h, w)."""
        return F.relu(F.conv2d(features, self.classifier.weight))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run both heads on one batch.

        Args:
            x: normalised images (B, 3, H, W).

        Returns:
            ``cls_logits`` (B, K) image-level logits (features dropped out in training);
            ``cam`` (B, K, h, w) ReLU'd CAM from the undropped features;
            ``embedding`` (B, embed_dim, h, w) F^s (after ReLU);
            ``seg_logits`` (B, num_classes, h, w) F^c logits.
        """
        features = self.backbone(x)
        pooled = F.adaptive_avg_pool2d(self.dropout(features), 1)
        cls_logits = self.classifier(pooled).flatten(1)
        embedding = F.relu(self.seg_embed(features))
        return {
            "cls_logits": cls_logits,
            "cam": self.cam_from_features(features),
            "embedding": embedding,
            "seg_logits": self.seg_classifier(embedding),
        }

    def forward_cam(self, x: torch.Tensor) -> torch.Tensor:
        """CAM only (no segmentation head): the extra scales of the multi-scale CAM."""
        return self.cam_from_features(self.backbone(x))

    def param_groups(self) -> tuple[list[nn.Parameter], ...]:
        """Trainable parameters in RRM's four learning-rate groups.

        Returns:
            ``(backbone weights, backbone biases, new weights, new biases)``, trained at
            1x, 2x, 10x and 20x the base learning rate; biases go without weight decay.
            A parameter named ``bias`` is a bias; every other one (convolution and
            normalisation weights) is a weight. Frozen parameters are left out.
        """
        groups: tuple[list[nn.Parameter], ...] = ([], [], [], [])
        for name, p in self.backbone.named_parameters():
            if p.requires_grad:
                groups[1 if name.endswith("bias") else 0].append(p)
        for conv in self.head_modules():
            for name, p in conv.named_parameters():
                if p.requires_grad:
                    groups[3 if name == "bias" else 2].append(p)
        return groups


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as BatchNorm statistics not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def build_backbone(cfg: "ModelConfig") -> tuple[nn.Module, int]:
    """The backbone named by ``cfg.backbone`` (the registry, :mod:`aakit.config.backbones`) with
    its settings ``cfg.backbone_args``, and its number of output channels."""
    net = make_backbone(cfg.backbone, cfg.backbone_args)
    return net, net.out_channels


def build_model(cfg: "ModelConfig") -> SingleStageNet:
    """Build the network of a :class:`~aakit.config.ModelConfig` and load its weights.

    The backbone is ``cfg.backbone`` with its own settings ``cfg.backbone_args``. If
    ``cfg.pretrained`` is set, the backbone loads it (its ``load_pretrained`` method, through
    :func:`~aakit.models.weights.load_pretrained`) and the report is kept in
    ``model.pretrained_report``.

    Raises:
        WeightsError: the pretrained file is unreadable or does not fit the network.
    """
    backbone, channels = build_backbone(cfg)
    model = SingleStageNet(
        backbone,
        channels,
        num_classes=cfg.num_classes,
        embed_dim=cfg.embed_dim,
        seg_dilation=cfg.seg_dilation,
        cls_dropout=cfg.cls_dropout,
    )
    if cfg.pretrained:
        from aakit.models.weights import load_pretrained

        model.pretrained_report = load_pretrained(model, cfg.pretrained)
    return model
