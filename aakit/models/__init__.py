"""Networks: ResNet-38 (psa's resnet38d), a small CPU backbone, RRM's single-stage net, weights.

Example::

    from aakit.models import build_model
    model = build_model(cfg.model)   # loads cfg.model.pretrained if set
"""
from aakit.models.net import SingleStageNet, build_model, count_parameters
from aakit.models.weights import LoadReport, WeightsError, load_pretrained

__all__ = [
    "LoadReport",
    "SingleStageNet",
    "WeightsError",
    "build_model",
    "count_parameters",
    "load_pretrained",
]
