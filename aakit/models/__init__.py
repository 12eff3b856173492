"""Networks: the registered backbones (ResNet-38, a small CPU backbone, MobileNetV2), RRM's
single-stage net, weights.

Example::

    from aakit.models import build_model
    model = build_model(cfg.model)   # loads cfg.model.pretrained if set
"""
from aakit.models.backbone import Backbone, build_backbone
from aakit.models.net import SingleStageNet, build_model, count_parameters
from aakit.models.weights import LoadReport, WeightsError, load_pretrained

__all__ = [
    "Backbone",
    "LoadReport",
    "SingleStageNet",
    "WeightsError",
    "build_backbone",
    "build_model",
    "count_parameters",
    "load_pretrained",
]
