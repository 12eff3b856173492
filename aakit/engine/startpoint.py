"""The rows of a grid at their starting point, measured without training (issue 28).

``aakit grid FILE --preflight`` (:mod:`aakit.experiment.preflight`) asks, before any seed is
spent, whether the two rows of each comparison follow different gradients at all. A row's
starting point is the network a run of it starts from: built from its seed as
:func:`aakit.engine.train.train` builds it, with the first weights of ``model.pretrained``.
Those come from the shared pre-training's checkpoint where one is here (``results/runs`` or the
local copies in ``results/local/runs``); nothing is trained to get them unless asked
(``pretrain=True``): committed runs carry no weights, so without it the rows are measured at
the untrained start (random initialisation), and :class:`Start` says so.

What is measured on each probe batch (the first training images, centre crop, no augmentation:
:func:`aakit.mechanism.probe_batch`), with the row's own pseudo labels and V:

* the gradient of the row's whole objective (every term on, as in its last epoch; each with its
  weight) w.r.t. the network's outputs F^c (segmentation logits) and F^s (LR's embedding),
  :func:`objective_gradient` — two rows' gradients are compared by :func:`gradient_gap`;
* the row's own mechanism record, :func:`aakit.mechanism.measure_mechanism` (what AA changes
  against SA, what LR's gamma changes), averaged over the batches.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from aakit.config import Config
from aakit.engine.rundir import RunWriter
from aakit.engine.train import dependency_config, load_initial_weights, local_results, seed_everything, select_device
from aakit.errors import AakitError


@dataclass(frozen=True)
class Start:
    """Where a row's network starts: ``weights`` in words, the file loaded (``load``: None =
    random initialisation), whether that is the untrained start (random weights), whether it
    is the row's own starting point (``own``) and, where it is not, why (``note``)."""

    weights: str
    untrained: bool
    own: bool = True
    load: str | None = None
    note: str | None = None
    record: dict[str, Any] | None = None  # the checkpoint's run, step, epoch and sha256, once loaded


def _relative(path: Path) -> str:
    """A path as the repository names it (relative to the working directory where it is under it)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def starting_point(cfg: Config, results: Path, *, pretrain: bool = False) -> Start:
    """Where ``cfg``'s run starts, without training anything (``pretrain``: train the shared
    pre-training first where its checkpoint is missing, as ``aakit grid`` would)."""
    source = cfg.model.pretrained
    if not source:
        return Start("random initialisation (model.pretrained: none)", untrained=True)
    if source == "imagenet":
        return Start("imagenet (model.pretrained)", untrained=False, load=source)
    path = Path(source)
    if path.suffix not in (".yaml", ".yml"):
        ckpt = path / "checkpoints" / "last.pt" if path.is_dir() else path
        if ckpt.exists():
            return Start(f"{_relative(ckpt)} (model.pretrained)", untrained=False, load=str(ckpt))
        return Start("random initialisation", untrained=True, own=False,
                     note=f"model.pretrained {source} is not here: measured at the untrained start")
    dep = dependency_config(path, cfg)
    for root in (Path(results), local_results(Path(results))):
        writer = RunWriter(root, dep)
        if writer.is_finished() and writer.ckpt_path.exists():
            return Start(f"checkpoint {_relative(writer.ckpt_path)} (the shared pre-training, {source})",
                         untrained=False, load=str(writer.ckpt_path))
    if pretrain:
        return Start(f"the shared pre-training {source}, trained first", untrained=False, load=str(path))
    name = f"{dep.name}-{dep.hash()}"
    return Start("random initialisation", untrained=True, own=False,
                 note=f"the shared pre-training {name} ({source}) has no checkpoint here (committed runs carry "
                      "no weights): measured at the untrained start; --pretrain trains it first (a run)")


def trained_point(run: str | Path) -> Start:
    """Every row measured at the weights of a trained run (``aakit grid FILE --preflight --at RUN``):
    its last checkpoint, heads included, so that the segmentation head is no longer new. At the
    start F^c's head is new in every run (after a pre-training too), its probabilities barely differ
    between pixels, and AA's attraction term, which differs from SA's by Omega W, vanishes with W:
    the start cannot show what AA does later in training. A point along a trained run can."""
    path = Path(run)
    ckpt = path / "checkpoints" / "last.pt" if path.is_dir() else path
    if not ckpt.is_file():
        raise AakitError(f"--at {run}: no checkpoint there (a run directory with checkpoints/last.pt, or a .pt file)")
    return Start(f"checkpoint {_relative(ckpt)} (--at)", untrained=False, own=False, load=str(ckpt),
                 note="every row measured at this trained network, not at its own starting point")


def start_model(cfg: Config, start: Start, seed: int, results: Path) -> tuple[torch.nn.Module, Start]:
    """The network of ``cfg`` as a run of seed ``seed`` starts: seeded, built, its first weights
    loaded (:func:`aakit.engine.train.load_initial_weights`; a YAML only with ``pretrain``)."""
    from aakit.models import build_model

    seed_everything(seed)
    device = select_device(cfg.train.device)
    model = build_model(dataclasses.replace(cfg.model, pretrained=None)).to(device)
    if start.load is not None:
        note, record = load_initial_weights(model, start.load, results=Path(results), progress=False, like=cfg)
        if start.load.endswith((".yaml", ".yml")):  # trained just now: name the checkpoint it gave
            start = dataclasses.replace(start, weights=note or start.weights)
        start = dataclasses.replace(start, record=record)
    return model, start


class _From:
    """The images of ``dataset`` from ``first`` on, as :func:`aakit.mechanism.probe_batch` reads them."""

    def __init__(self, dataset: Any, first: int) -> None:
        self.dataset, self.first = dataset, first

    def __len__(self) -> int:
        return max(0, len(self.dataset) - self.first)

    def probe(self, index: int) -> dict[str, Any]:
        return self.dataset.probe(self.first + index)  # type: ignore[no-any-return]


def probe_batches(cfg: Config, batches: int) -> list[dict[str, Any]]:
    """``batches`` batches of ``train.batch_size`` training images, in the split's order, each
    centre-cropped without augmentation (the mechanism's probe), masks where the data has them."""
    from aakit.data.identity import require_data_root
    from aakit.data.voc import TrainDataset
    from aakit.mechanism import probe_batch

    d = cfg.data
    require_data_root(d.root, cfg.preset)
    data = TrainDataset(d.root, d.train_split, crop=d.crop, scale_range=d.scale_range, flip=d.flip, mean=d.mean,
                        std=d.std, max_images=d.max_images, supervision=cfg.train.supervision, pad_mode=d.pad_mode)
    size = cfg.train.batch_size
    out = [probe_batch(_From(data, k * size), size) for k in range(batches) if k * size < len(data)]
    if not out:
        raise AakitError(f"{d.root}: {d.train_split} lists no training image to probe")
    return out


def objective_gradient(model: torch.nn.Module, batch: dict[str, Any], cfg: Config, labeler: Any,
                       device: torch.device) -> tuple[list[Tensor], str | None]:
    """The gradient of ``cfg``'s whole objective (every term on, each with its weight) w.r.t.
    F^c and F^s, on ``batch`` with ``cfg``'s pseudo labels and V; and why it is not ``cfg``'s own
    (an oracle V without masks), else None. Nothing of the network changes."""
    from aakit.mechanism import gradient_of, outputs_and_targets
    from aakit.method import build_objective

    was = model.training
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model.eval()
        try:
            x, cfg_v, reason = outputs_and_targets(model, batch, cfg, labeler, device)
            with torch.enable_grad():
                seg, emb = x.out["seg_logits"], x.out["embedding"]
                total = sum((t(x) for t in build_objective(cfg_v).terms), seg.sum() * 0.0)
                grads = [gradient_of(total, seg).detach(), gradient_of(total, emb).detach()]
        finally:
            model.train(was)
    return grads, reason


OUTPUTS = ("F^c", "F^s")  # the outputs objective_gradient differentiates: segmentation logits, LR's embedding


def _sums(a: list[Tensor], b: list[Tensor]) -> list[tuple[float, float, float, float]]:
    """Per output: |a - b|^2, |a|^2, |b|^2, <a, b>."""
    out = []
    for x, y in zip(a, b):
        x, y = x.double(), y.double()
        out.append((float((x - y).pow(2).sum()), float(x.pow(2).sum()), float(y.pow(2).sum()), float((x * y).sum())))
    return out


def _gap(diff: float, na: float, nb: float, dot: float) -> dict[str, Any]:
    top = math.sqrt(max(na, nb))
    cos = dot / math.sqrt(na * nb) if na > 0 and nb > 0 else None
    return {"grad_share": math.sqrt(diff) / top if top > 0 else None, "grad_cos": cos,
            "grad_share_after_rescale": None if cos is None else math.sqrt(max(0.0, 1.0 - cos * cos)),
            "norm_ratio": math.sqrt(na / nb) if nb > 0 else None}


def gradient_gap(a: list[list[Tensor]], b: list[list[Tensor]]) -> dict[str, Any]:
    """How far two rows' gradients (per batch, per output) lie apart, over all the batches:
    ``grad_share`` = |a - b| / max(|a|, |b|); ``grad_cos``; ``grad_share_after_rescale`` =
    |a - s b| / |a| at the best scale s (what is left when b is rescaled to fit a:
    sqrt(1 - cos^2)); ``norm_ratio`` |a| / |b|; ``per_batch`` shares; the same per output
    (``by_output``: F^c, F^s — a change of LR's gamma shows on F^s alone); None with
    ``reason`` where both are zero."""
    totals = [[0.0] * 4 for _ in OUTPUTS]
    per_batch: list[float | None] = []
    for ga, gb in zip(a, b):
        sums = _sums(ga, gb)
        for acc, row in zip(totals, sums):
            for i, v in enumerate(row):
                acc[i] += v
        d_k, a_k, b_k = (sum(row[i] for row in sums) for i in range(3))
        per_batch.append(math.sqrt(d_k) / math.sqrt(max(a_k, b_k)) if max(a_k, b_k) > 0 else None)
    out = _gap(*(sum(acc[i] for acc in totals) for i in range(4)))
    out |= {"per_batch": per_batch, "by_output": {name: _gap(*acc) for name, acc in zip(OUTPUTS, totals)},
            "reason": None if out["grad_share"] is not None else "neither objective has a gradient on the probe batches"}
    return out


def average_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of each number of several mechanism records (None where every batch has None,
    with the first batch's reason); ``batches`` counts them."""
    out: dict[str, Any] = {"batches": len(records), "reasons": {}}
    for key in records[0] if records else {}:
        if key in ("reasons", "settings"):
            continue
        vals = [r.get(key) for r in records]
        nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        out[key] = sum(nums) / len(nums) if nums else (vals[0] if not isinstance(vals[0], (int, float)) else None)
        if out[key] is None:
            out["reasons"][key] = next((r["reasons"][key] for r in records if key in r.get("reasons", {})),
                                       "not computable")
    if records:
        out["settings"] = records[0].get("settings")
    return out


@dataclass
class RowMeasure:
    """One row measured at its starting point: its objective's gradient on each probe batch,
    its mechanism record (averaged over the batches), and why either is not its own."""

    gradients: list[list[Tensor]]
    record: dict[str, Any]
    reason: str | None
    start: Start


@dataclass
class StartProbe:
    """Measures rows at their starting point, sharing the networks (one per model config, start
    and seed), the probe batches (one set per data set and crop) and the CRF labelers (one per
    V source), and closes the labelers when done (a context manager)."""

    results: Path
    batches: int = 2
    pretrain: bool = False
    at: str | Path | None = None  # measure every row at this trained run's weights (trained_point)
    models: dict[str, tuple[torch.nn.Module, Start]] = field(default_factory=dict)
    probes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    labelers: dict[str, Any] = field(default_factory=dict)

    def __enter__(self) -> StartProbe:
        return self

    def __exit__(self, *exc: Any) -> None:
        for labeler in self.labelers.values():
            if labeler is not None:
                labeler.close()

    def model(self, cfg: Config, seed: int) -> tuple[torch.nn.Module, Start]:
        start = trained_point(self.at) if self.at is not None else starting_point(cfg, self.results,
                                                                                   pretrain=self.pretrain)
        key = json.dumps([cfg.to_dict()["model"], start.weights, start.load, seed, cfg.train.device], sort_keys=True)
        if key not in self.models:
            self.models[key] = start_model(cfg, start, seed, self.results)
        return self.models[key]

    def probe(self, cfg: Config) -> list[dict[str, Any]]:
        d = cfg.data
        key = json.dumps([d.root, d.train_split, d.crop, list(d.mean), list(d.std), d.pad_mode, cfg.train.batch_size])
        if key not in self.probes:
            self.probes[key] = probe_batches(cfg, self.batches)
        return self.probes[key]

    def labeler(self, cfg: Config) -> Any:
        from aakit.method import make_labeler

        key = json.dumps([cfg.to_dict()["pseudo"], cfg.to_dict()["crf"]["train"], cfg.loss.aa_confidence,
                          cfg.train.supervision], sort_keys=True)
        if key not in self.labelers:
            self.labelers[key] = make_labeler(cfg, workers=0)
        return self.labelers[key]

    def measure(self, cfg: Config, seed: int) -> RowMeasure:
        """Row ``cfg`` at the start of its run of seed ``seed``, on the probe batches."""
        from aakit.mechanism import measure_mechanism

        model, start = self.model(cfg, seed)
        device = next(model.parameters()).device
        labeler = self.labeler(cfg)
        grads, records, reason = [], [], None
        for batch in self.probe(cfg):
            g, why = objective_gradient(model, batch, cfg, labeler, device)
            grads.append(g)
            reason = reason or why
            records.append(measure_mechanism(model, batch, cfg, labeler, device))
        return RowMeasure(grads, average_records(records), reason, start)
