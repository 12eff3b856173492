"""What the single-stage network needs of a backbone, and building one by its registered name.

A backbone is one class in one file (``aakit/models/<name>.py``), a subclass of
:class:`Backbone`, registered with its settings in :mod:`aakit.config.backbones`. It maps
(B, 3, H, W) images to (B, ``out_channels``, H / ``output_stride``, W / ``output_stride``)
features (rounded up), is built from its settings (:meth:`Backbone.from_args`) and loads its
own first weights (:meth:`Backbone.load_pretrained`: psa's MXNet / ``.pth`` layout unless the
backbone says otherwise).

Example::

    backbone = build_backbone("mobilenet_v2", MobileNetV2Args(output_stride=4, last_block=13))
    backbone.out_channels, backbone.output_stride  # 96, 4
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from aakit.config.backbones import BACKBONES, backbone_args
from aakit.models.weights import LoadReport, load_weights_file


class Backbone(nn.Module):
    """Base of the registered backbones.

    Attributes:
        out_channels: channels of the features (set by the subclass).
        output_stride: input pixels per feature pixel (4, 8, ...).
    """

    out_channels: int
    output_stride: int

    @classmethod
    def from_args(cls, args: Any) -> Backbone:
        """The backbone of its settings (a dataclass of :mod:`aakit.config.backbones`), by keyword."""
        return cls(**dataclasses.asdict(args))

    def load_pretrained(self, model: nn.Module, path: str | Path) -> LoadReport:
        """Load first weights into ``model`` (this backbone, or the network holding it as
        ``model.backbone``): ademxapp's MXNet ``.params`` or a ``.pth`` state dict in psa's key
        layout (:func:`aakit.models.weights.load_weights_file`).

        Raises:
            WeightsError: unreadable file, neither format, shape mismatch, or no matching key.
        """
        return load_weights_file(model, path)

    @classmethod
    def installed_weights(cls) -> str | None:
        """A ``model.pretrained`` value whose weights are installed here, or None (the registry's
        test loads it)."""
        return None


def build_backbone(name: str, args: Any = None) -> Backbone:
    """The registered backbone ``name`` with its settings ``args`` (None: its defaults; a mapping
    is read as its settings dataclass).

    Raises:
        KeyError: ``name`` is not registered (a config names it as ``model.backbone``).
    """
    if name not in BACKBONES:
        raise KeyError(f"unknown backbone {name!r} (registered: {', '.join(BACKBONES)})")
    cls = BACKBONES[name].load()
    return cls.from_args(backbone_args(name, args))
