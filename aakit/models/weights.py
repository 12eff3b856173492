"""ImageNet weights for ResNet-38: MXNet ``.params`` files without MXNet, and psa ``.pth`` files.

The ImageNet ResNet-38 of ademxapp (``ilsvrc-cls_rna-a1_cls1000_ep-0001.params``) is an MXNet
"NDArray list" file. Its binary layout (MXNet ``src/ndarray/ndarray.cc``, ``NDArray::Save`` /
``NDArray::Load``; all integers little-endian)::

    uint64 0x112                    list magic (kMXAPINDArrayListMagic)
    uint64 0                        reserved
    uint64 n                        number of arrays, then n arrays:
        uint32 magic                0xF993FAC9 (V2) or 0xF993FACA (V3, NumPy shape semantics);
                                    0xF993FAC8 (V1); anything else is a legacy ndim
        [V2/V3] int32 storage type  0 = dense (1 row-sparse, 2 CSR: not supported here)
        shape                       V1/V2/V3: int32 ndim + ndim x int64;
                                    legacy: the magic word was ndim, + ndim x uint32
                                    (ndim 0 = an empty "none" array, nothing follows;
                                    in V3 ndim 0 is a scalar and -1 the none array)
        int32 dev_type, int32 dev_id    context where it was saved (ignored)
        int32 type flag             mshadow: 0 float32, 1 float64, 2 float16, 3 uint8,
                                    4 int32, 5 int8, 6 int64, 7 bool, ...
        data                        prod(shape) x itemsize bytes, C order
    uint64 m                        number of names (0 or n), then m times:
        uint64 length + UTF-8 bytes (e.g. "arg:res2a_branch1_weight", "aux:bn7_moving_var")

psa's ``convert_mxnet_to_torch`` renames ademxapp's arrays to its PyTorch modules;
:func:`mxnet_to_psa_name` does the same renaming (see its docstring), so both sources end up
in psa's key layout, which :class:`~aakit.models.resnet38d.ResNet38d` uses.
"""
from __future__ import annotations

import importlib
import io
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import torch
from torch import nn

from aakit.errors import AakitError


class WeightsError(AakitError):
    """A weights file that cannot be read or does not fit the network (names the file and keys)."""


# ----------------------------------------------------------------------------- MXNet format
LIST_MAGIC = 0x112
NDARRAY_V1_MAGIC = 0xF993FAC8
NDARRAY_V2_MAGIC = 0xF993FAC9
NDARRAY_V3_MAGIC = 0xF993FACA
_MAX_NDIM = 32  # sanity bound: a larger "ndim" means the bytes are not an NDArray

# mshadow type flags -> numpy dtypes (little-endian).
_TYPE_FLAGS: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<f2"),
    3: np.dtype("u1"),
    4: np.dtype("<i4"),
    5: np.dtype("i1"),
    6: np.dtype("<i8"),
    7: np.dtype("?"),
    8: np.dtype("<i2"),
    9: np.dtype("<u2"),
    10: np.dtype("<u4"),
    11: np.dtype("<u8"),
}
_FLAG_OF_DTYPE: dict[np.dtype, int] = {dt.newbyteorder("="): f for f, dt in _TYPE_FLAGS.items()}

Version = Literal["legacy", "v1", "v2", "v3"]


class _Reader:
    """Sequential little-endian reader that turns a short read into a WeightsError."""

    def __init__(self, f: BinaryIO, path: Path, size: int) -> None:
        self.f, self.path, self.size = f, path, size

    @property
    def pos(self) -> int:
        return self.f.tell()

    @property
    def left(self) -> int:
        return self.size - self.pos

    def fail(self, problem: str) -> WeightsError:
        return WeightsError(f"{self.path}: {problem} (at byte {self.pos} of {self.size})")

    def take(self, n: int, what: str) -> bytes:
        if n > self.left:
            raise self.fail(f"truncated MXNet file: {what} needs {n} bytes, {self.left} left")
        return self.f.read(n)

    def unpack(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))[0]

    def dims(self, ndim: int, fmt: str, what: str) -> tuple[int, ...]:
        if not 0 <= ndim <= _MAX_NDIM:
            raise self.fail(f"{what}: implausible ndim {ndim}, not an MXNet NDArray")
        dims = struct.unpack(f"<{ndim}{fmt}", self.take(ndim * struct.calcsize(fmt), what))
        if any(d < 0 for d in dims):
            raise self.fail(f"{what}: negative dimension in shape {dims}")
        return tuple(int(d) for d in dims)

    def data(self, shape: tuple[int, ...], dtype: np.dtype, what: str) -> np.ndarray:
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        nbytes = count * dtype.itemsize
        if nbytes > self.left:
            raise self.fail(f"truncated MXNet file: {what} needs {nbytes} bytes, {self.left} left")
        out = np.empty(shape, dtype=dtype)
        if nbytes and self.f.readinto(out.reshape(-1).view(np.uint8)) != nbytes:
            raise self.fail(f"truncated MXNet file: short read in {what}")
        return out


def _read_ndarray(r: _Reader, index: int) -> np.ndarray:
    """One NDArray (``NDArray::Load``); a "none" array comes back as an empty float32 array."""
    what = f"array {index}"
    magic = r.unpack("I", f"{what} header")
    if magic in (NDARRAY_V2_MAGIC, NDARRAY_V3_MAGIC):
        stype = r.unpack("i", f"{what} storage type")
        if stype != 0:
            kind = {1: "row-sparse", 2: "CSR"}.get(stype, f"storage type {stype}")
            raise r.fail(f"{what} is a {kind} array; only dense arrays are supported")
        ndim = r.unpack("i", f"{what} ndim")
        if magic == NDARRAY_V3_MAGIC and ndim == -1:  # unknown shape = none array
            return np.empty((0,), np.float32)
        shape = r.dims(ndim, "q", f"{what} shape")
        if magic == NDARRAY_V2_MAGIC and ndim == 0:  # before NumPy semantics, ndim 0 = none
            return np.empty((0,), np.float32)
    elif magic == NDARRAY_V1_MAGIC:
        shape = r.dims(r.unpack("i", f"{what} ndim"), "q", f"{what} shape")
        if not shape:
            return np.empty((0,), np.float32)
    else:  # legacy: no magic, the first word is ndim and dimensions are uint32
        shape = r.dims(magic, "I", f"{what} shape")
        if not shape:
            return np.empty((0,), np.float32)
    r.unpack("i", f"{what} device type")
    r.unpack("i", f"{what} device id")
    flag = r.unpack("i", f"{what} type flag")
    if flag not in _TYPE_FLAGS:
        raise r.fail(f"{what}: unsupported MXNet type flag {flag}")
    return r.data(shape, _TYPE_FLAGS[flag], f"{what} data")


def is_mxnet_params(path: str | Path) -> bool:
    """True if the file starts with MXNet's NDArray-list magic 0x112."""
    with open(path, "rb") as f:
        head = f.read(8)
    return len(head) == 8 and struct.unpack("<Q", head)[0] == LIST_MAGIC


def read_mxnet_params(path: str | Path) -> dict[str, np.ndarray]:
    """Read an MXNet NDArray-list file (``mx.nd.save`` / ``.params``) with numpy alone.

    Args:
        path: the file.

    Returns:
        Name -> array, in file order; names keep MXNet's ``arg:``/``aux:`` prefixes. A list
        saved without names gets the names ``"0"``, ``"1"``, ...

    Raises:
        WeightsError: not an MXNet list file, truncated, sparse or of an unknown type.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            r = _Reader(f, path, size)
            if r.left < 16 or r.unpack("Q", "list header") != LIST_MAGIC:
                raise WeightsError(
                    f"{path}: not an MXNet .params file (no NDArray-list magic 0x112 at byte 0)"
                )
            r.unpack("Q", "reserved word")
            count = r.unpack("Q", "array count")
            if count > r.left // 4:  # every array takes at least 4 bytes
                raise r.fail(f"implausible array count {count}")
            arrays = [_read_ndarray(r, i) for i in range(count)]
            n_names = r.unpack("Q", "name count")
            if n_names not in (0, count):
                raise r.fail(f"{n_names} names for {count} arrays")
            names: list[str] = []
            for i in range(n_names):
                length = r.unpack("Q", f"name {i} length")
                raw = r.take(length, f"name {i}")
                try:
                    names.append(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    raise r.fail(f"name {i} is not UTF-8 text") from None
    except OSError as e:
        raise WeightsError(f"{path}: cannot read ({e.strerror or e})") from None
    if not names:
        names = [str(i) for i in range(count)]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise WeightsError(f"{path}: array name {dup!r} appears twice")
    return dict(zip(names, arrays))


def _shape_bytes(shape: tuple[int, ...], version: Version) -> bytes:
    if version == "legacy":  # ndim doubles as the header word
        return struct.pack(f"<I{len(shape)}I", len(shape), *shape)
    return struct.pack(f"<i{len(shape)}q", len(shape), *shape)


def write_mxnet_params(
    path: str | Path, arrays: Mapping[str, np.ndarray], version: Version = "v2"
) -> None:
    """Write arrays as an MXNet NDArray-list file (the layout :func:`read_mxnet_params` reads).

    Args:
        path: output file (written atomically).
        arrays: name -> dense array (names as MXNet writes them, e.g. ``arg:conv1a_weight``).
        version: ``"v2"`` (MXNet 1.x default), ``"v3"`` (NumPy shape semantics), ``"v1"``
            or ``"legacy"`` (uint32 shapes, as MXNet 0.x wrote them).

    Raises:
        ValueError: a 0-d array (only V3 has scalars) or an unsupported dtype.
    """
    from aakit.files import atomic_write_bytes

    buf = io.BytesIO()
    buf.write(struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays)))
    for name, value in arrays.items():
        a = np.ascontiguousarray(value)
        dtype = a.dtype.newbyteorder("=")
        if dtype not in _FLAG_OF_DTYPE:
            raise ValueError(f"{name}: dtype {a.dtype} has no MXNet type flag")
        if a.ndim == 0 and version != "v3":
            raise ValueError(f"{name}: 0-d arrays need version='v3'")
        shape = tuple(int(d) for d in a.shape)
        if version in ("v2", "v3"):
            magic = NDARRAY_V2_MAGIC if version == "v2" else NDARRAY_V3_MAGIC
            buf.write(struct.pack("<Ii", magic, 0))  # magic, dense storage
        elif version == "v1":
            buf.write(struct.pack("<I", NDARRAY_V1_MAGIC))
        buf.write(_shape_bytes(shape, version))
        buf.write(struct.pack("<iii", 1, 0, _FLAG_OF_DTYPE[dtype]))  # cpu(0), type flag
        buf.write(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    buf.write(struct.pack("<Q", len(arrays)))
    for name in arrays:
        raw = name.encode("utf-8")
        buf.write(struct.pack("<Q", len(raw)) + raw)
    atomic_write_bytes(Path(path), buf.getvalue())


# ----------------------------------------------------------------------------- renaming
_BN_PARAM = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_var": "running_var",
}
# res<stage><a | b<k>>_branch<id>_weight (conv) or bn<stage><a | b<k>>_branch<id>_<bn param> (BN)
_BRANCH = re.compile(
    r"(?P<kind>res|bn)(?P<stage>\d)(?P<unit>a|b\d+)_(?P<branch>branch[0-9a-z]+)_(?P<param>\w+)"
)
_BN7 = re.compile(r"bn7_(?P<param>\w+)")
_IMAGENET_CLASSIFIERS = ("linear1000", "fc1000", "fc")


def _strip_mx_prefix(name: str) -> str:
    for prefix in ("arg:", "aux:"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def is_imagenet_classifier(name: str) -> bool:
    """True for the 1000-class classifier of an ImageNet file (``linear1000_*``, ``fc.*``)."""
    head = re.split(r"[._]", _strip_mx_prefix(name).removeprefix("module."), maxsplit=1)[0]
    return head in _IMAGENET_CLASSIFIERS


def mxnet_to_psa_name(name: str) -> str | None:
    """psa's key for an ademxapp ResNet-38 array name (the rule of ``convert_mxnet_to_torch``).

    The ``arg:``/``aux:`` prefix is dropped, then:

    * ``conv1a_weight`` -> ``conv1a.weight``;
    * unit ``<stage>a`` is block ``b<stage>``, unit ``<stage>b<k>`` is ``b<stage>_<k>``
      (``res4b5`` -> ``b4_5``);
    * ``res<unit>_<branch>_weight`` -> ``<block>.conv_<branch>.weight``;
    * ``bn<unit>_<branch>_<p>`` -> ``<block>.bn_<branch>.<q>`` with gamma/beta/moving_mean/
      moving_var -> weight/bias/running_mean/running_var;
    * ``bn7_<p>`` -> ``bn7.<q>``.

    Returns:
        The psa key, or None if the name has no counterpart (the ImageNet classifier
        ``linear1000_*``, or a name outside ResNet-38).
    """
    base = _strip_mx_prefix(name)
    if base == "conv1a_weight":
        return "conv1a.weight"
    if is_imagenet_classifier(base):
        return None
    m = _BRANCH.fullmatch(base)
    if m:
        unit = m["unit"]
        block = f"b{m['stage']}" if unit == "a" else f"b{m['stage']}_{unit[1:]}"
        if m["kind"] == "res":
            return f"{block}.conv_{m['branch']}.weight" if m["param"] == "weight" else None
        q = _BN_PARAM.get(m["param"])
        return f"{block}.bn_{m['branch']}.{q}" if q else None
    m = _BN7.fullmatch(base)
    if m and m["param"] in _BN_PARAM:
        return f"bn7.{_BN_PARAM[m['param']]}"
    return None


def convert_mxnet_resnet38(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Rename ademxapp arrays to psa's ResNet-38 keys (:func:`mxnet_to_psa_name`).

    The ImageNet classifier is dropped; a name without a psa counterpart is kept as it is,
    so that loading reports it as unexpected. Tensors share memory with the arrays.
    """
    out: dict[str, torch.Tensor] = {}
    for name, value in arrays.items():
        if is_imagenet_classifier(name):
            continue
        out[mxnet_to_psa_name(name) or name] = torch.from_numpy(np.asarray(value))
    return out


# ----------------------------------------------------------------------------- loading
# RRM's head names (its trained checkpoints, psa's res38_cls.pth) -> SingleStageNet's.
_HEAD_ALIASES = {
    "fc8.weight": "classifier.weight",
    "fc8_seg_conv1.weight": "seg_embed.weight",
    "fc8_seg_conv1.bias": "seg_embed.bias",
    "fc8_seg_conv2.weight": "seg_classifier.weight",
    "fc8_seg_conv2.bias": "seg_classifier.bias",
}


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did, key by key (model keys unless said otherwise).

    Attributes:
        source: the file.
        format: ``"mxnet"`` or ``"pth"``.
        loaded: model keys set from the file.
        missing: backbone keys the file lacks (they keep their initialisation);
            BatchNorm ``num_batches_tracked`` counters are not listed.
        unexpected: file keys with no place in the model.
        ignored: file keys of the ImageNet 1000-class classifier, skipped on purpose.
        new_layers: head keys not in the file (trained from scratch, as usual).
    """

    source: str
    format: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    new_layers: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        parts = [f"{self.source} ({self.format}): loaded {len(self.loaded)} tensors"]
        for label, keys in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("ImageNet classifier ignored", self.ignored),
            ("new layers", self.new_layers),
        ):
            if keys:
                parts.append(f"{label} {len(keys)} ({_first(keys)})")
        return "; ".join(parts)


def _first(keys: list[str], n: int = 3) -> str:
    more = f", ... {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _resolve(key: str, targets: Mapping[str, torch.Tensor]) -> str | None:
    """The model key a file key belongs to: as is, a head alias, or with/without ``backbone.``."""
    for cand in (key, _HEAD_ALIASES.get(key), "backbone." + key, key.removeprefix("backbone.")):
        if cand is not None and cand in targets:
            return cand
    return None


def plan_load(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str,
    fmt: str,
    ignored: list[str],
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Match file keys to model keys; raise on shape mismatches or when nothing matches."""
    targets = model.state_dict()
    has_heads = any(k.startswith("backbone.") for k in targets)
    report = LoadReport(source=source, format=fmt, ignored=list(ignored))
    assign: dict[str, torch.Tensor] = {}
    mismatches: list[str] = []
    for key, value in state.items():
        k = key.removeprefix("module.")  # saved from DataParallel
        if is_imagenet_classifier(k):
            report.ignored.append(key)
            continue
        target = _resolve(k, targets)
        if target is None or target in assign:
            report.unexpected.append(key)
            continue
        want, got = tuple(targets[target].shape), tuple(value.shape)
        if want != got:
            mismatches.append(f"{key} (file {got} vs model {want})")
            continue
        assign[target] = value
    if mismatches:
        raise WeightsError(f"{source}: shape mismatch for {_first(mismatches)}")
    if not assign:
        keys = list(state)
        raise WeightsError(
            f"{source}: no array matches the network (file keys: {_first(keys) or 'none'})"
        )
    report.loaded = list(assign)
    for k in targets:
        if k in assign or k.endswith("num_batches_tracked"):
            continue
        is_head = has_heads and not k.startswith("backbone.")
        (report.new_layers if is_head else report.missing).append(k)
    return assign, report


def apply_pretrained(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str = "<state dict>",
    fmt: str = "pth",
    ignored: list[str] | None = None,
) -> LoadReport:
    """Copy a psa-layout state dict into ``model`` (a SingleStageNet or a bare backbone).

    Keys may be psa's (``b4_5.conv_branch2a.weight``), RRM's head names (``fc8.weight``,
    ``fc8_seg_conv1.*``), SingleStageNet's own (``backbone.*``, ``classifier.weight``), each
    optionally prefixed ``module.``. ImageNet classifier keys are skipped.

    Raises:
        WeightsError: a shape mismatch (naming the keys) or no key matching at all.
    """
    assign, report = plan_load(model, state, source, fmt, ignored or [])
    targets = model.state_dict()  # tensors sharing storage with the parameters
    with torch.no_grad():
        for k, v in assign.items():
            targets[k].copy_(v)
    return report


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A PyTorch state dict, possibly wrapped as ``{"state_dict": ...}`` or ``{"model": ...}``.

    Raises:
        WeightsError: not a file torch loads (``weights_only``), or not a mapping of tensors.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a foreign file
        raise WeightsError(
            f"{path}: neither an MXNet .params file (no 0x112 magic) nor a PyTorch state dict "
            f"(torch.load(weights_only=True) failed with {type(e).__name__})"
        ) from None
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{path}: not a state dict (expected a mapping of names to tensors)")
    bad = [str(k) for k, v in obj.items() if not (isinstance(k, str) and torch.is_tensor(v))]
    if bad:
        raise WeightsError(f"{path}: not a state dict: entries that are not tensors: {_first(bad)}")
    return dict(obj)


def _read_any(path: Path) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """(state in psa layout, format, ignored classifier names) of a .params or .pth file."""
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        mxnet = is_mxnet_params(path)
    except OSError as e:
        raise WeightsError(f"{path}: cannot read ({e.strerror or e})") from None
    if mxnet:
        arrays = read_mxnet_params(path)
        ignored = [n for n in arrays if is_imagenet_classifier(n)]
        return convert_mxnet_resnet38(arrays), "mxnet", ignored
    return read_state_dict(path), "pth", []


def load_weights_file(model: nn.Module, path: str | Path) -> LoadReport:
    """Load ademxapp's MXNet ``.params`` (converted on the fly) or a ``.pth`` state dict in psa's
    key layout into ``model`` (a network or a bare backbone); the format is recognised from the
    content, not the suffix. The default of :meth:`aakit.models.backbone.Backbone.load_pretrained`.

    Raises:
        WeightsError: unreadable file, neither format, shape mismatch, or no matching key.
    """
    path = Path(path)
    state, fmt, ignored = _read_any(path)
    return apply_pretrained(model, state, str(path), fmt, ignored)


def load_pretrained(model: nn.Module, path: str | Path) -> LoadReport:
    """Load ImageNet (or psa/RRM) weights into ``model``, the way its backbone loads them.

    Args:
        model: a :class:`~aakit.models.net.SingleStageNet` or a bare backbone.
        path: a file, or a name the backbone knows (``imagenet`` for MobileNetV2): each
            backbone's ``load_pretrained`` method (:class:`aakit.models.backbone.Backbone`);
            a module without one takes psa's layout (:func:`load_weights_file`).

    Returns:
        The :class:`LoadReport`; missing and unexpected keys are reported, not fatal.

    Raises:
        WeightsError: unreadable file, neither format, shape mismatch, or no matching key.
    """
    backbone = getattr(model, "backbone", model)
    method = getattr(backbone, "load_pretrained", None)
    if callable(method):
        return method(model, path)
    return load_weights_file(model, path)


_read_state_dict = read_state_dict  # the name before issue 29


def __getattr__(name: str) -> Any:
    """Names that moved to the backbones in issue 29, importable from here for one release:
    ``convert_file`` (ResNet-38's converter, :mod:`aakit.models.resnet38d`) and
    ``load_mobilenet_v2`` (now ``MobileNetV2Backbone.load_pretrained``)."""
    if name == "convert_file":
        return importlib.import_module("aakit.models.resnet38d").convert_file
    if name == "load_mobilenet_v2":
        return lambda model, backbone, path: backbone.load_pretrained(model, path)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
