"""The sources of a run's noise, each under its own seed (issue 30, "the noise floor").

What ``train.seed`` decides in a run, and the key that takes one source away from it:

=====================  ==========================================================  ======================
source                 where it is drawn                                           key (None: train.seed)
=====================  ==========================================================  ======================
new-layer init         the layers the first weights do not train (below)           ``train.init_seed``
data order             each epoch's permutation, ``(seed, epoch)`` (batches.py)    ``train.data_seed``
augmentation           each image's crop, scale, flip, ``(seed, epoch, index)``    ``train.aug_seed``
=====================  ==========================================================  ======================

``train.seed`` also seeds torch's and numpy's global generators before the network is built
(:func:`aakit.engine.train.seed_everything`): the network's default initialisation, and dropout
during training (``model.cls_dropout``; 0 in the synthetic preset). A run that starts from
another run's checkpoint (the synthetic preset's ``cls.yaml``) takes *every* layer from it, so
there the seed draws no initialisation at all: the segmentation head keeps the pre-training's
draw, which all seeds share. ``train.init_seed`` therefore redraws the layers trained from
scratch by this run, RRM's initialisation (Xavier-uniform weights, zero biases), from its own
generator, after the first weights are loaded: the segmentation head (``seg_embed``,
``seg_classifier``) when the first weights come from a run's checkpoint (whose classifier is
trained), every head layer (:meth:`~aakit.models.net.SingleStageNet.head_modules`) otherwise.
Unset, nothing is redrawn and the run is what it was before the key existed.

``train.perturb_first_batch`` moves every pixel of the run's first batch one ulp up
(``nextafter`` towards +inf) before the network sees it: two runs that differ by it differ by
the smallest change a float32 input can take, so their spread is the training's own chaos.

The CRF worker count (``pseudo.workers``) is no source: each image's CRF is the same
computation in whichever process runs it, and the labels come back in input order
(tests/test_noise.py checks the weights bit for bit).
"""
from __future__ import annotations

from typing import Any

import torch

from aakit.config import Config, TrainConfig


def init_seed(t: TrainConfig) -> int:
    """The seed of the new layers' initialisation (``train.init_seed``, else ``train.seed``)."""
    return t.seed if t.init_seed is None else t.init_seed


def data_seed(t: TrainConfig) -> int:
    """The seed of every epoch's image order (``train.data_seed``, else ``train.seed``)."""
    return t.seed if t.data_seed is None else t.data_seed


def aug_seed(t: TrainConfig) -> int:
    """The seed of every image's augmentation (``train.aug_seed``, else ``train.seed``)."""
    return t.seed if t.aug_seed is None else t.aug_seed


def new_layers(model: torch.nn.Module, from_run: bool) -> list[torch.nn.Conv2d]:
    """The layers this run trains from scratch: the segmentation head after a run's checkpoint
    (its classifier is trained), every head layer otherwise."""
    core: Any = model.module if hasattr(model, "module") else model
    if from_run:
        return [core.seg_embed, core.seg_classifier]
    return list(core.head_modules())


def reinit_new_layers(model: torch.nn.Module, cfg: Config, *, from_run: bool) -> bool:
    """``train.init_seed``: redraw the new layers (Xavier-uniform weights, zero biases) from a
    generator of their own; returns whether anything was redrawn (nothing while it is unset). The
    global generators are not touched, so the rest of the run draws what it drew before."""
    if cfg.train.init_seed is None:
        return False
    g = torch.Generator().manual_seed(cfg.train.init_seed)
    with torch.no_grad():
        for conv in new_layers(model, from_run):
            w = torch.empty(conv.weight.shape, dtype=conv.weight.dtype)
            torch.nn.init.xavier_uniform_(w, generator=g)
            conv.weight.copy_(w)
            if conv.bias is not None:
                conv.bias.zero_()
    return True


def perturb(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with every pixel of ``image`` one ulp up (``nextafter`` towards +inf)."""
    image = batch["image"]
    return {**batch, "image": torch.nextafter(image, torch.full_like(image, float("inf")))}
