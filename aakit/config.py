"""The typed configuration schema: the single source of every default.

Every default below is the value fixed by ``METHOD.md`` (section in brackets). A YAML file
overrides some of them; ``_base_: other.yaml`` inherits another file first (paths relative to
the file that names them); ``--set a.b=value`` overrides last. Every key is checked against the
schema: an unknown key, a wrong type or an impossible value raises :class:`ConfigError` naming
the key and the file.

Example::

    cfg = load_config("experiments/synthetic/full.yaml", overrides=["loss.lambda_aa=0.2"])
    cfg.loss.dilations  # (4, 8, 12, 24)
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from aakit import yamlio
from aakit.data.identity import data_digest
from aakit.errors import AakitError
from aakit.presets import PresetError, not_found_hint, presets_root, require_preset, resolve_config
from aakit.runs import atomic_write_text


class ConfigError(AakitError, ValueError):
    """A configuration problem, phrased for the user: names the key and the file."""


# ----------------------------------------------------------------------------- schema
@dataclass
class ModelConfig:
    """Network (METHOD.md section 1)."""

    backbone: Literal["resnet38d", "small", "mobilenet_v2"] = "resnet38d"
    pretrained: str | None = None  # MXNet .params converted, a psa-layout .pth, or "imagenet" (mobilenet_v2)
    num_classes: int = 21  # background + 20 objects
    embed_dim: int = 512  # C1: channels of F^s
    seg_dilation: int = 12  # dilation of both 3x3 convs of the segmentation head
    cls_dropout: float = 0.5  # Dropout2d before the classifier's pooling
    cam_scales: tuple[float, ...] = (1.0, 0.5, 1.5, 2.0)  # first scale has grad
    freeze_bn: bool = True
    freeze_conv1a: bool = True
    small_width: int = 32  # width of the small CPU backbone (backbone: small)
    output_stride: int = 8  # backbone: mobilenet_v2 (4, 8, 16 or 32); ResNet-38 is 8, small 4
    last_block: int = 18  # backbone: mobilenet_v2 keeps features[0..N] (13: up to 96 channels)


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
    crf_backend: Literal["auto", "pydensecrf", "torch"] = "auto"  # auto: torch on CUDA, else pydensecrf if installed


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
    crf_backend: Literal["auto", "pydensecrf", "torch"] = "auto"  # the test CRF's back-end, as pseudo.crf_backend
    mechanism: bool = True  # at each evaluation: what AA and LR change, on a probe batch (aakit.mechanism)
    mechanism_images: int = 4  # the probe batch: the first N training images, centre crop, no augmentation


# Settings that do not change a run's numbers, left out of its identity (Config.hash):
# where the data lies (the data set enters by its digest), how many processes load it or run
# the CRFs (pseudo.overlap gives the same gradient: tests/test_overlap.py), logging and
# checkpoint frequency, example PNGs, the device (CPU and GPU differ only in rounding) and the
# CRF back-end (pydensecrf and aakit.crf_torch agree to float precision: tests/test_crf_torch.py),
# and the mechanism record (it measures, and changes no weight: tests/test_mechanism.py).
NOT_RESULTS = (
    "name", "data.root", "data.num_workers", "pseudo.workers", "pseudo.overlap", "pseudo.crf_backend",
    "train.device", "train.log_every", "train.checkpoint_every", "eval.save_examples", "eval.crf_backend",
    "eval.mechanism", "eval.mechanism_images", "logging",
)


@dataclass
class LoggingConfig:
    """Where a run's numbers go besides ``metrics.jsonl``, which is always written (the TUI, the
    report and resume read it): ``tensorboard`` adds event files to the run directory
    (``tensorboard --logdir results/runs``; skipped with a warning if the package is missing);
    ``wandb`` logs to Weights & Biases (``WANDB_MODE=offline``: files in the run directory's
    ``wandb/``; a missing package is an error before training: ``pip install 'aakit[wandb]'``)."""

    backends: tuple[Literal["jsonl", "tensorboard", "wandb", "mlflow"], ...] = ("jsonl", "tensorboard")
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
        if d["loss"].get("lr_reading") == "similarity":  # added after runs were made: at its default it is
            d["loss"].pop("lr_reading")                  # not part of the identity (their hashes stay)
        d["data"]["digest"] = data_digest(self.data.root, (self.data.train_split, self.data.val_split))
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
    ("model.small_width", lambda v: v >= 4, "must be >= 4"),
    ("model.output_stride", lambda v: v in (4, 8, 16, 32), "must be 4, 8, 16 or 32"),
    ("model.last_block", lambda v: 1 <= v <= 18, "must be in 1..18"),
    ("model.cam_scales", lambda v: len(v) > 0 and all(s > 0 for s in v), "needs scales > 0"),
    ("pseudo.min_class_score", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    ("pseudo.min_crf_prob", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    ("pseudo.sure_fg_top", lambda v: 0 < v <= 1, "must be in (0, 1]"),
    ("pseudo.sure_fg_min", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    ("pseudo.sure_bg", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    ("pseudo.alpha_low", lambda v: v > 0, "must be > 0"),
    ("pseudo.alpha_high", lambda v: v > 0, "must be > 0"),
    ("pseudo.workers", lambda v: v >= 0, "must be >= 0"),
    ("pseudo.crf_backend", lambda v: v in ("auto", "pydensecrf", "torch"), "must be auto, pydensecrf or torch"),
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
    ("eval.crf_backend", lambda v: v in ("auto", "pydensecrf", "torch"), "must be auto, pydensecrf or torch"),
    ("logging.backends", lambda v: len(set(v)) == len(v), "lists a back-end twice"),
    ("logging.print_every", lambda v: v >= 1, "must be >= 1"),
]


def validate(cfg: Config, source: str = "<config>") -> Config:
    """Check impossible values and cross-key constraints; raise ConfigError naming the key."""
    for key, ok, why in _CHECKS:
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


# ----------------------------------------------------------------------------- loading
def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        inner = _type_name(args[0]) if args else "value"
        return f"list of {inner}"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it in the schema's type."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{source}: {key} = {value!r} should be {_type_name(tp)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} should be a mapping of keys, got {value!r}")
        return _build(tp, value, source, prefix=key + ".")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, source)
            except ConfigError:
                pass
        raise bad
    if origin is tuple:
        return _coerce_list(value, tp, key, source)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if not math.isfinite(value):  # .inf / .nan parse as floats (aakit.yamlio) but no key takes them
            raise ConfigError(f"{source}: {key} = {value!r} should be a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise bad  # pragma: no cover - schema uses only the types above


def _coerce_list(value: Any, tp: Any, key: str, source: str) -> tuple[Any, ...]:
    """A list key (``tuple[...]`` in the schema); a wrong value's message shows the syntax that
    works: a bracketed YAML list, ``--set 'loss.dilations=[4,8,12,24]'`` (the key's default)."""
    args = typing.get_args(tp)
    free = len(args) == 2 and args[1] is Ellipsis
    size = "" if free else f" ({len(args)} values)"
    bad = ConfigError(f"{source}: {key} = {value!r} should be a {_type_name(tp)}{size}, written in brackets: "
                      f"--set '{key}={list_example(key)}'")
    if not isinstance(value, (list, tuple)) or (not free and len(value) != len(args)):
        raise bad
    types = [args[0]] * len(value) if free else list(args)
    try:
        return tuple(_coerce(v, a, key, source) for v, a in zip(value, types))
    except ConfigError:
        raise bad from None


def list_example(key: str) -> str:
    """``[4,8,12,24]``: the default of the list key ``key`` as ``--set`` takes it (YAML flow style)."""
    try:
        default = Config().get(key)
    except AttributeError:
        default = None
    items = default if isinstance(default, (list, tuple)) else (1, 2)
    return "[" + ",".join(str(v) for v in items) + "]"


def _build(cls: type, data: dict[str, Any], source: str, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in data:
        if k not in names:
            known = ", ".join(sorted(names))
            near = difflib.get_close_matches(str(k), sorted(names), n=1)
            hint = f"did you mean {prefix}{near[0]}? " if near else ""
            raise ConfigError(f"{source}: unknown key {prefix}{k} ({hint}known under {prefix or 'top level'}: {known})")
    kwargs = {k: _coerce(v, hints[k], prefix + k, source) for k, v in data.items()}
    if prefix:
        return cls(**kwargs)
    return cls(**kwargs)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_yaml_file(path: str | Path, error: type[AakitError] = ConfigError) -> Any:
    """The YAML content of ``path`` (``None`` if empty), or one line naming the file and the line.

    Args:
        path: the file.
        error: the exception raised (a grid or search file raises its own kind).

    Raises:
        ConfigError (or ``error``): unreadable file, not UTF-8, or a YAML syntax error, as
        ``"FILE: line N YAML syntax error: PROBLEM"``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot read ({e})") from None
    try:
        return yamlio.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise error(f"{path}:{where} YAML syntax error: {problem}") from None


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a config file, resolving ``_base_`` (a path or a list of paths) recursively.
    A path that does not exist names a shipped preset (``voc/full``: :mod:`aakit.presets`)."""
    path = resolve_config(path)
    try:
        real = path.resolve()
    except OSError as e:  # pragma: no cover
        raise ConfigError(f"{path}: cannot resolve path ({e})") from None
    if real in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, real))
        raise ConfigError(f"{path}: _base_ cycle: {chain}")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found{not_found_hint(path)}")
    data = load_yaml_file(path)
    if data is None or data == {}:  # not "the defaults": an empty file is a mistake (a truncated copy, a typo)
        raise ConfigError(f"{path}: empty config: give at least one key, e.g. _base_: synthetic/full")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    bases = data.pop("_base_", None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: _base_ must be a path or a list of paths")
    merged: dict[str, Any] = {}
    for b in bases:
        merged = _deep_merge(merged, read_yaml(resolve_config(b, relative_to=path.parent), (*_seen, real)))
    return _deep_merge(merged, data)


def parse_override(item: str) -> tuple[str, Any]:
    """``"loss.gamma=0.5"`` -> ``("loss.gamma", 0.5)``; the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. loss.lambda_aa=0.2")
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yamlio.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def read_set_file(path: str | Path) -> list[str]:
    """``--set-file FILE``: a YAML mapping of dotted overrides (``train.epochs: 4``; nested
    sections are flattened: ``train: {epochs: 4}``) as ``--set`` items, in the file's order."""
    data = load_yaml_file(path)
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: --set-file needs a mapping of KEY: VALUE, got {type(data).__name__}")

    def items(node: dict[str, Any], prefix: str) -> list[str]:
        out: list[str] = []
        for k, v in node.items():
            out += items(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}={json.dumps(v)}"]
        return out

    return items(data, "")


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys in a nested dict (a copy is returned)."""
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
    out = json.loads(json.dumps(data))  # deep copy of plain data
    for key, value in items:
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {key}: {p} is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def from_dict(data: dict[str, Any], source: str = "<config>") -> Config:
    """Build and validate a Config from plain nested data."""
    return validate(_build(Config, data, source), source)


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> Config:
    """Load a YAML config (with ``_base_``), apply dotted overrides, check everything.

    Args:
        path: YAML file; None gives the schema defaults.
        overrides: ``["loss.gamma=0.5", ...]`` or ``{"loss.gamma": 0.5}``.

    Raises:
        ConfigError: one line naming the key and the file.
    """
    data = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    if overrides:
        data = apply_overrides(data, overrides)
        source += " (with --set)"
    return from_dict(data, source)


# Keys added to the schema after runs were written, with the value those runs effectively used
# (not the new default): a run's config.yaml that lacks one is read with this value.
LEGACY_VALUES: dict[str, Any] = {
    "data.pad_mode": "ignore",  # black padding, ignored: aakit before issue 12
}


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """A run's stored ``config.yaml``, read as the run was trained: keys it predates take
    :data:`LEGACY_VALUES`, not today's defaults (``overrides`` apply last, as ``--set``)."""
    data = read_yaml(path)
    for dotted, value in LEGACY_VALUES.items():
        node = data
        *sections, key = dotted.split(".")
        for part in sections:
            node = node.setdefault(part, {}) if isinstance(node, dict) else node
        if isinstance(node, dict):
            node.setdefault(key, value)
    if overrides:
        data = apply_overrides(data, overrides)
    return from_dict(data, str(path) + (" (with --set)" if overrides else ""))


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    atomic_write_text(Path(path), yaml.safe_dump(cfg.to_dict(), sort_keys=False))


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


# ----------------------------------------------------------------------------- shipped presets
def copy_preset(name: str | Path, dest: Path, *, force: bool = False) -> Path:
    """Write an editable copy of a shipped preset into the folder ``dest``; return the file.

    A run config is *flattened*: the file it names with every ``_base_`` it inherits merged in,
    so one self-contained file holds every key the preset sets (same config, same hash).
    A grid or search file is copied as it is, its ``base:`` turned into the shipped config's
    name (``base: synthetic/full.yaml``), which the grid and search loaders resolve from anywhere.
    An existing file is kept unless ``force``.
    """
    src = require_preset(name)
    root = presets_root()
    rel = src.relative_to(root).as_posix()
    dest = Path(dest)
    out = dest / src.name
    if dest.exists() and not dest.is_dir():
        raise PresetError(f"{dest}: not a folder (aakit configs copy {rel} FOLDER)")
    if out.exists() and not force:
        raise PresetError(f"{out}: already exists (give --force to replace it)")
    text = src.read_text(encoding="utf-8")
    spec = yamlio.safe_load(text)
    if isinstance(spec, dict) and isinstance(spec.get("base"), str):  # a grid or a search
        base = _relative_name((src.parent / spec["base"]).resolve(), root)
        body = "".join(f"base: {base}\n" if line.startswith("base:") and base else line
                       for line in text.splitlines(keepends=True))
    else:
        lines = text.splitlines(keepends=True)
        n = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
        body = (f"# aakit configs copy {rel}: the shipped preset with what it inherits (_base_) merged in.\n"
                f"{''.join(lines[:n])}{yaml.safe_dump(read_yaml(src), sort_keys=False)}")
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, body)
    return out


def _relative_name(path: Path, root: Path) -> str | None:
    """``path`` as a preset name (``synthetic/full.yaml``), or None when it is not under ``root``."""
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return None
