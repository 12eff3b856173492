"""The typed configuration schema: the single source of every default, and its checks.

Every default below is the value fixed by ``METHOD.md`` (section in brackets). Reading YAML,
``_base_`` and ``--set`` is :mod:`aakit.config.loading`; the backbones' own settings
(``model.backbone_args``) are registered in :mod:`aakit.config.backbones`. ``from aakit.config
import X`` gives every public name of the three.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from aakit.config.backbones import BACKBONES, LEGACY_FIELDS, BackboneArgs, backbone_args, legacy_identity
from aakit.data.identity import data_digest
from aakit.errors import AakitError
from aakit.trackers import BACKENDS


class ConfigError(AakitError, ValueError):
    """A configuration problem, phrased for the user: names the key and the file."""


@dataclass
class ModelConfig:
    """Network (METHOD.md section 1)."""

    backbone: str = "resnet38d"  # a registered name (aakit.config.backbones.BACKBONES)
    # that backbone's own settings (its dataclass in aakit.config.backbones); None: its defaults
    backbone_args: BackboneArgs | None = None
    pretrained: str | None = None  # MXNet .params converted, a psa-layout .pth, or "imagenet" (mobilenet_v2)
    num_classes: int = 21  # background + 20 objects
    embed_dim: int = 512  # C1: channels of F^s
    seg_dilation: int = 12  # dilation of both 3x3 convs of the segmentation head
    cls_dropout: float = 0.5  # Dropout2d before the classifier's pooling
    cam_scales: tuple[float, ...] = (1.0, 0.5, 1.5, 2.0)  # first scale has grad

    def __post_init__(self) -> None:
        self.backbone_args = backbone_args(self.backbone, self.backbone_args)

    def __getattr__(self, name: str) -> Any:
        """The flat fields of before issue 29, read-only for one release: ``cfg.model.small_width``
        is ``cfg.model.backbone_args.width`` (the old default where the backbone takes none)."""
        if name not in LEGACY_FIELDS or "backbone_args" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        spec = BACKBONES.get(self.backbone)
        arg = spec.args.legacy.get(name) if spec else None
        return getattr(self.backbone_args, arg) if arg else LEGACY_FIELDS[name]


# The names of the method's registries (aakit.method.crf.registry.BACKENDS, aakit.method.pseudo.refiners.REFINERS),
# here because the schema may not import the method; tests/test_registries.py holds the two lists equal.
CRFBackendName = Literal["auto", "pydensecrf", "torch"]  # auto: torch on CUDA, else pydensecrf if installed
RefinerName = Literal["crf", "par", "par+crf"]  # crf = the paper's dense CRF; par = AFA's PAR; par+crf = PAR, then the CRF


@dataclass
class PseudoConfig:
    """Online pseudo labels of RRM (METHOD.md section 2)."""

    min_class_score: float = 0.1  # drop a labelled class whose sigmoid score is below
    alpha_low: float = 4.0
    alpha_high: float = 32.0
    min_crf_prob: float = 0.8  # ignore pixels whose winning CRF probability is below
    sure_fg_top: float = 0.4  # foreground sure region: top 40% of the class's CAM values ...
    sure_fg_min: float = 0.1  # ... above 0.1, where the class is the argmax
    sure_bg: float = 0.8  # background sure region: bg score > 0.8
    workers: int = 2  # CRF worker processes (0 = in the training process)
    overlap: bool = False  # CRFs during the backward of L_cls: same gradient, measured slower (docs/performance.md)
    crf_backend: CRFBackendName = "auto"  # auto: torch on CUDA, else pydensecrf if installed
    refine: RefinerName = "crf"  # step 2's refiner of the score maps (the paper's: the dense CRF)


@dataclass
class CRFParams:
    """One dense-CRF parameter set (Kraehenbuehl & Koltun)."""

    iterations: int = 10
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0


def _test_crf() -> CRFParams:
    return CRFParams(bilateral_sxy=83.0, bilateral_srgb=5.0, bilateral_compat=4.0)


@dataclass
class CRFConfig:
    """Training (pseudo labels) and test (post-processing) CRF parameters (sections 2, 5)."""

    train: CRFParams = field(default_factory=CRFParams)
    test: CRFParams = field(default_factory=_test_crf)


@dataclass
class LossConfig:
    """The objective L_cls + L_ce + lambda1 L_AA + lambda2 L_LR (METHOD.md section 3)."""

    cls: bool = True
    ce: bool = True
    affinity: Literal["none", "sa", "aa"] = "aa"  # sa = standard (Omega = 1), aa = adaptive
    lambda_aa: float = 0.1  # lambda1
    dilations: tuple[int, ...] = (4, 8, 12, 24)
    margin_aa: float = 3.0  # m
    weighting: Literal["max", "min", "mean"] = "max"  # Omega_ij (Table 3)
    # V: CRF prob. of the label | CAM score | net's softmax max | oracle: 1 where the label is right,
    # 0 where wrong (ground-truth masks of the training images; a diagnostic bound, not the paper's method)
    aa_confidence: Literal["crf", "cam", "net", "oracle"] = "crf"
    kl: Literal["binary", "categorical"] = "binary"
    label_reassign: bool = True
    lambda_lr: float = 0.1  # lambda2
    margin_lr: float = 1.0  # n
    gamma: float = 2.0
    lr_last_epochs: int = 2  # LR is active only in the last N epochs
    # eq. 16's D: cosine similarity (METHOD.md) | cosine distance 1 - cos (a departure, docs/method.md;
    # left out of the identity at its default, so the runs made before it keep their hashes)
    lr_reading: Literal["similarity", "distance"] = "similarity"


@dataclass
class OptimConfig:
    """SGD + poly with RRM's 1x/2x/10x/20x parameter groups (METHOD.md section 4)."""

    lr: float = 1e-4
    weight_decay: float = 5e-4
    momentum: float = 0.9  # psa/RRM effectively used 1e-5 (positional-argument slip)
    poly_power: float = 0.9
    lr_mult: tuple[float, float, float, float] = (1.0, 2.0, 10.0, 20.0)  # backbone w/b, new w/b


@dataclass
class DataConfig:
    """Data set layout and augmentation (METHOD.md section 4)."""

    root: str = "data/VOCdevkit/VOC2012"
    train_split: str = "train_aug"
    val_split: str = "val"
    crop: int = 321
    scale_range: tuple[float, float] = (0.7, 1.3)  # of the image area
    flip: bool = True
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    num_workers: int = 2
    max_images: int | None = None  # use the first N images of the split (quick runs)
    # crop padding: rrm = mean colour in the CRF's image too, padded pixels get pseudo labels
    # (RRM); ignore = black in the CRF's image, padded pixels ignored (255)
    pad_mode: Literal["rrm", "ignore"] = "rrm"


@dataclass
class TrainConfig:
    """Schedule, seeds and devices."""

    epochs: int = 8
    batch_size: int = 4
    cls_warmup_epochs: int = 0  # classification-only epochs before pseudo labels are used
    supervision: Literal["image", "full"] = "image"  # full = masks (upper-bound reference)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = False  # mixed precision (CUDA only)
    checkpoint_every: int = 0  # also checkpoint every N steps (0 = once per epoch)
    log_every: int = 1  # write a step line to metrics.jsonl every N steps
    # one source of noise at a time (aakit.engine.noise; issue 30): each None = train.seed
    init_seed: int | None = None  # the new layers' random initialisation
    data_seed: int | None = None  # the order of the training images in every epoch
    aug_seed: int | None = None  # every image's augmentation (crop, scale, flip)
    perturb_first_batch: bool = False  # debug: the first batch's images one ulp up (a chaos probe)


@dataclass
class EvalConfig:
    """Evaluation protocol (METHOD.md section 5)."""

    protocol: Literal["ss", "msf"] = "ss"
    scales: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)  # msf
    flip: bool = True  # msf
    crf: bool = False
    rfpc: bool = False
    cls_threshold: float = 0.1  # without rfpc, keep a class whose sigmoid score exceeds it
    train_iou: bool = True  # also report the paper's "IoU (train)" at the end
    max_images: int | None = None  # evaluate on the first N images of each split
    pseudo_images: int = 100  # train images whose pseudo labels are scored each epoch (Fig. 3)
    every_epochs: int = 1  # validate every N epochs (and always after the last)
    save_examples: int = 8  # first N val images: predictions + pseudo labels as PNGs (Fig. 5)
    crf_backend: CRFBackendName = "auto"  # the test CRF's back-end, as pseudo.crf_backend
    mechanism: bool = True  # at each evaluation: what AA and LR change, on a probe batch (aakit.mechanism)
    mechanism_images: int = 4  # the probe batch: the first N training images, centre crop, no augmentation
    # which weights are evaluated (aakit.engine.averaging): the last step's, an exponential
    # moving average of every step's (bias-corrected), or the mean of the last swa_epochs
    # epoch-end weights
    weights: Literal["last", "ema", "swa"] = "last"
    ema_decay: float = 0.99  # averages over about 1 / (1 - decay) = 100 steps: 1.3 epochs of the preset's 75
    swa_epochs: int = 2  # swa: the last N epoch-end weights


# Settings that do not change a run's numbers, left out of its identity (Config.hash):
# where the data lies (the data set enters by its digest), how many processes load it or run
# the CRFs (pseudo.overlap gives the same gradient: tests/test_overlap.py), logging and
# checkpoint frequency, example PNGs, the device (CPU and GPU differ only in rounding) and the
# CRF back-end (pydensecrf and aakit.method.crf.lattice agree to float precision: tests/test_crf_torch.py),
# and the mechanism record (it measures, and changes no weight: tests/test_mechanism.py).
NOT_RESULTS = (
    "name", "data.root", "data.num_workers", "pseudo.workers", "pseudo.overlap", "pseudo.crf_backend",
    "train.device", "train.log_every", "train.checkpoint_every", "eval.save_examples", "eval.crf_backend",
    "eval.mechanism", "eval.mechanism_images", "logging",
)

# Settings added after runs were committed, left out of the identity while at their default (the
# value every earlier run computed with), so that those runs keep their hash; any other value is
# part of the identity as usual.
OMITTED_AT_DEFAULT: dict[str, Any] = {
    "pseudo.refine": "crf",  # the dense CRF: every run before the refiner seam (issue 29)
    "loss.lr_reading": "similarity",  # eq. 16's D as METHOD.md reads it (issue 30's alternative: distance)
    # one noise source at a time and evaluation of averaged weights (issue 30)
    "train.init_seed": None, "train.data_seed": None, "train.aug_seed": None, "train.perturb_first_batch": False,
    "eval.weights": "last", "eval.ema_decay": 0.99, "eval.swa_epochs": 2,
}
# ... and the averaging's parameters also while eval.weights is last: they are not read then
UNREAD_WITHOUT_AVERAGING = ("eval.ema_decay", "eval.swa_epochs")


@dataclass
class LoggingConfig:
    """Where a run's numbers go besides ``metrics.jsonl``, which is always written (the TUI, the
    report and resume read it): ``tensorboard`` adds event files to the run directory
    (``tensorboard --logdir results/runs``; skipped with a warning if the package is missing);
    ``wandb`` logs to Weights & Biases (``WANDB_MODE=offline``: files in the run directory's
    ``wandb/``; a missing package is an error before training: ``pip install 'aakit[wandb]'``)."""

    backends: tuple[Literal[BACKENDS], ...] = ("jsonl", "tensorboard")  # aakit.trackers: the registry
    print_every: int = 50  # without a terminal (nohup, SLURM): a plain progress line every N steps


@dataclass
class Config:
    """The whole configuration of a run."""

    name: str = "run"
    preset: Literal["voc", "synthetic"] = "voc"
    model: ModelConfig = field(default_factory=ModelConfig)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    crf: CRFConfig = field(default_factory=CRFConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), ready for YAML/JSON."""
        return _plain(dataclasses.asdict(self))

    def identity(self) -> dict[str, Any]:
        """What the run computes: every setting that changes its numbers, and the data set by
        its digest (:mod:`aakit.data.identity`) instead of its path. Settings of *how* it is
        run (:data:`NOT_RESULTS`: the name, paths, worker counts, logging, device) are left out."""
        d = self.to_dict()
        for dotted in NOT_RESULTS:
            section, _, key = dotted.rpartition(".")
            (d[section] if section else d).pop(key, None)
        unread = UNREAD_WITHOUT_AVERAGING if self.eval.weights == "last" else ()
        for dotted, default in OMITTED_AT_DEFAULT.items():
            section, _, key = dotted.rpartition(".")
            if self.get(dotted) == default or dotted in unread:
                (d[section] if section else d).pop(key, None)
        d["data"]["digest"] = data_digest(self.data.root, (self.data.train_split, self.data.val_split))
        d["model"] = legacy_identity(d["model"])  # the flat layout of before issue 29: the same hashes
        return d

    def hash(self) -> str:
        """Short stable hash of :meth:`identity`: runs that compute the same thing share it."""
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:8]

    def get(self, dotted: str) -> Any:
        """Value at a dotted key, e.g. ``cfg.get("loss.gamma")``."""
        obj: Any = self
        for part in dotted.split("."):
            obj = getattr(obj, part)
        return obj


# ----------------------------------------------------------------------------- checks
def _one_of(names: Any) -> str:
    """``must be a, b or c`` for a Literal."""
    *rest, last = typing.get_args(names)
    return f"must be {', '.join(rest)} or {last}" if rest else f"must be {last}"


def backbone_problem(name: Any) -> str:
    """``model.backbone = 'vgg16' should be 'resnet38d' | 'small' | 'mobilenet_v2'``."""
    return f"model.backbone = {name!r} should be {' | '.join(repr(n) for n in BACKBONES)}"


# Impossible values: (dotted key, predicate, explanation).
_CHECKS: list[tuple[str, typing.Callable[[Any], bool], str]] = [
    ("loss.lambda_aa", lambda v: v >= 0, "must be >= 0"),
    ("loss.lambda_lr", lambda v: v >= 0, "must be >= 0"),
    ("loss.margin_aa", lambda v: v >= 0, "must be >= 0"),
    ("loss.margin_lr", lambda v: v >= 0, "must be >= 0"),
    ("loss.gamma", lambda v: v >= 0, "must be >= 0"),
    ("loss.dilations", lambda v: len(v) > 0 and all(d >= 1 for d in v), "needs dilations >= 1"),
    ("loss.lr_last_epochs", lambda v: v >= 0, "must be >= 0"),
    ("model.num_classes", lambda v: v >= 2, "must be >= 2"),
    ("model.embed_dim", lambda v: v >= 1, "must be >= 1"),
    ("model.seg_dilation", lambda v: v >= 1, "must be >= 1"),
    ("model.cls_dropout", lambda v: 0 <= v < 1, "must be in [0, 1)"),
    ("model.cam_scales", lambda v: len(v) > 0 and all(s > 0 for s in v), "needs scales > 0"),
    ("pseudo.min_class_score", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    ("pseudo.min_crf_prob", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    ("pseudo.sure_fg_top", lambda v: 0 < v <= 1, "must be in (0, 1]"),
    ("pseudo.sure_fg_min", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    ("pseudo.sure_bg", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    ("pseudo.alpha_low", lambda v: v > 0, "must be > 0"),
    ("pseudo.alpha_high", lambda v: v > 0, "must be > 0"),
    ("pseudo.workers", lambda v: v >= 0, "must be >= 0"),
    ("pseudo.crf_backend", lambda v: v in typing.get_args(CRFBackendName), _one_of(CRFBackendName)),
    ("crf.train.iterations", lambda v: v >= 1, "must be >= 1"),
    ("crf.test.iterations", lambda v: v >= 1, "must be >= 1"),
    ("optim.lr", lambda v: v > 0, "must be > 0"),
    ("optim.weight_decay", lambda v: v >= 0, "must be >= 0"),
    ("optim.momentum", lambda v: 0 <= v < 1, "must be in [0, 1)"),
    ("optim.poly_power", lambda v: v >= 0, "must be >= 0"),
    ("optim.lr_mult", lambda v: all(m > 0 for m in v), "needs multipliers > 0"),
    ("data.crop", lambda v: v >= 16, "must be >= 16"),
    ("data.scale_range", lambda v: 0 < v[0] <= v[1], "needs 0 < low <= high"),
    ("data.std", lambda v: all(s > 0 for s in v), "needs values > 0"),
    ("data.num_workers", lambda v: v >= 0, "must be >= 0"),
    ("data.max_images", lambda v: v is None or v >= 1, "must be >= 1"),
    ("train.epochs", lambda v: v >= 1, "must be >= 1"),
    # numpy takes seeds below 2**32, and the batch order seeds torch with seed * 100_003 + epoch
    ("train.seed", lambda v: 0 <= v < 2**32, "must be in 0..4294967295 (2**32 - 1)"),
    ("train.batch_size", lambda v: v >= 1, "must be >= 1"),
    ("train.init_seed", lambda v: v is None or 0 <= v < 2**32, "must be in 0..4294967295 (2**32 - 1)"),
    ("train.data_seed", lambda v: v is None or 0 <= v < 2**32, "must be in 0..4294967295 (2**32 - 1)"),
    ("train.aug_seed", lambda v: v is None or 0 <= v < 2**32, "must be in 0..4294967295 (2**32 - 1)"),
    ("train.cls_warmup_epochs", lambda v: v >= 0, "must be >= 0"),
    ("train.checkpoint_every", lambda v: v >= 0, "must be >= 0"),
    ("train.log_every", lambda v: v >= 1, "must be >= 1"),
    ("eval.scales", lambda v: len(v) > 0 and all(s > 0 for s in v), "needs scales > 0"),
    ("eval.cls_threshold", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    ("eval.max_images", lambda v: v is None or v >= 1, "must be >= 1"),
    ("eval.pseudo_images", lambda v: v >= 0, "must be >= 0"),
    ("eval.every_epochs", lambda v: v >= 1, "must be >= 1"),
    ("eval.save_examples", lambda v: v >= 0, "must be >= 0"),
    ("eval.mechanism_images", lambda v: v >= 1, "must be >= 1"),
    ("eval.ema_decay", lambda v: 0 < v < 1, "must be in (0, 1)"),
    ("eval.swa_epochs", lambda v: v >= 1, "must be >= 1"),
    ("eval.crf_backend", lambda v: v in typing.get_args(CRFBackendName), _one_of(CRFBackendName)),
    ("logging.backends", lambda v: len(set(v)) == len(v), "lists a back-end twice"),
    ("logging.print_every", lambda v: v >= 1, "must be >= 1"),
]


def validate(cfg: Config, source: str = "<config>") -> Config:
    """Check impossible values and cross-key constraints; raise ConfigError naming the key."""
    spec = BACKBONES.get(cfg.model.backbone)
    if spec is None:
        raise ConfigError(f"{source}: {backbone_problem(cfg.model.backbone)}")
    for key, ok, why in [*_CHECKS, *((f"model.backbone_args.{k}", f, w) for k, f, w in spec.args.checks)]:
        value = cfg.get(key)
        if not ok(value):
            raise ConfigError(f"{source}: {key} = {value!r} {why}")
    if cfg.train.cls_warmup_epochs >= cfg.train.epochs and cfg.train.supervision == "image":
        if cfg.loss.ce or cfg.loss.affinity != "none" or cfg.loss.label_reassign:
            raise ConfigError(
                f"{source}: train.cls_warmup_epochs = {cfg.train.cls_warmup_epochs} leaves no epoch "
                f"for the segmentation losses (train.epochs = {cfg.train.epochs})"
            )
    if cfg.train.device != "auto" and not (
        cfg.train.device == "cpu" or cfg.train.device.startswith("cuda")
    ):
        raise ConfigError(f"{source}: train.device = {cfg.train.device!r} must be auto, cpu or cuda[:N]")
    return cfg



def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj



def key_hyperparameters(cfg: Config | dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters shown in tables and the TUI."""
    d = cfg.to_dict() if isinstance(cfg, Config) else cfg
    loss = d.get("loss", {})
    return {
        "affinity": loss.get("affinity"),
        "lambda_aa": loss.get("lambda_aa") if loss.get("affinity", "aa") != "none" else 0.0,
        "lambda_lr": loss.get("lambda_lr") if loss.get("label_reassign") else 0.0,
        "margin_aa": loss.get("margin_aa"),
        "gamma": loss.get("gamma"),
        "weighting": loss.get("weighting"),
        "dilations": "-".join(str(x) for x in loss.get("dilations", [])),
    }
