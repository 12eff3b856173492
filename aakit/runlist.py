"""Run management on the command line (``aakit runs ls|show|diff|tag``): the core, no typer.

Reads run directories (:mod:`aakit.runs`) and writes one file of its own in a run, ``tags.json``
(``{"tags": [...], "note": "..."}``, replaced atomically), which nothing else depends on. Every
function returns data or text; :mod:`aakit.cli` prints it.

Metrics a run can be sorted by (:func:`run_metrics`): ``best_miou`` (best val mIoU of its
epochs), ``<result>_miou`` for each result in summary.json (``val_miou``, ``val_rfpc_miou``,
``train_miou``...), ``pseudo_miou``, ``wall_time_s``, ``progress``.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from aakit import yamlio
from aakit.errors import AakitError
from aakit.files import atomic_write_json, read_json
from aakit.runs import STATUSES, RunInfo, iter_run_dirs, load_run

TAGS_FILE = "tags.json"
_TAG_RE = re.compile(r"^[A-Za-z0-9_.:+-]{1,64}$")


class RunsError(AakitError):
    """A bad argument to a runs command (one line, exit 2)."""


# ----------------------------------------------------------------------------- finding runs
def resolve_run(run: Path | str, results: Path) -> Path:
    """A run given as a path, as a name under ``results/runs/``, or as a unique prefix of a name."""
    run, runs_dir = Path(run), Path(results) / "runs"
    for cand in (run, runs_dir / run):
        if (cand / "config.yaml").exists():
            return cand
    prefix_ok = not run.is_absolute() and len(run.parts) == 1  # a bare name: allow a prefix
    matches = sorted(runs_dir.glob(f"{run}*")) if prefix_ok and runs_dir.is_dir() else []
    matches = [m for m in matches if (m / "config.yaml").exists()]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise RunsError(f"{run}: several runs match ({', '.join(m.name for m in matches[:4])}); give the full name")
    raise RunsError(f"{run}: no run directory there (no config.yaml) nor under {runs_dir}")


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"loss": {"gamma": 2}}`` -> ``{"loss.gamma": 2}`` (lists kept as values)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


# ----------------------------------------------------------------------------- tags
def read_tags(path: Path) -> dict[str, Any]:
    """``{"tags": [...], "note": str | None}`` of a run (empty when it has none or the file is damaged)."""
    data = read_json(Path(path) / TAGS_FILE)
    tags = data.get("tags") if isinstance(data, dict) else None
    note = data.get("note") if isinstance(data, dict) else None
    return {"tags": [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
            "note": note if isinstance(note, str) else None}


def tag_run(path: Path, tags: list[str], *, note: str | None = None, remove: bool = False) -> dict[str, Any]:
    """Add (or with ``remove`` take away) ``tags`` and set the note if given; returns the new content."""
    for tag in tags:
        if not _TAG_RE.match(tag):
            raise RunsError(f"tag {tag!r}: use 1-64 letters, digits or _ . : + - (no spaces)")
    current = read_tags(path)
    names = [t for t in current["tags"] if not (remove and t in tags)]
    names += [t for t in tags if not remove and t not in names]
    out = {"tags": names, "note": current["note"] if note is None else (note or None)}
    atomic_write_json(Path(path) / TAGS_FILE, out)
    return out


# ----------------------------------------------------------------------------- metrics and rows
def run_metrics(info: RunInfo) -> dict[str, float]:
    """The numbers a run can be sorted and compared by (see the module's docstring)."""
    out: dict[str, float] = {"progress": info.progress}
    if info.best_miou is not None:
        out["best_miou"] = float(info.best_miou)
    summary = info.summary or {}
    for key, res in (summary.get("metrics") or {}).items():
        if isinstance(res, dict) and isinstance(res.get("miou"), (int, float)):
            out[f"{key}_miou"] = float(res["miou"])
    for key in ("pseudo_miou", "wall_time_s"):
        if isinstance(summary.get(key), (int, float)):
            out[key] = float(summary[key])
    return out


def run_row(info: RunInfo) -> dict[str, Any]:
    """One run as plain data (``runs ls --json``)."""
    cfg = info.config or {}
    return {"name": info.name, "path": str(info.path), "status": info.status, "problem": info.problem,
            "config_name": cfg.get("name"), "hash": (info.summary or {}).get("hash") or info.name.rsplit("-", 1)[-1],
            "metrics": run_metrics(info), **read_tags(info.path)}


def parse_where(items: list[str]) -> list[tuple[str, Any]]:
    """``["loss.affinity=aa"]`` -> ``[("loss.affinity", "aa")]``; values are read as YAML."""
    from aakit.config import BACKBONES, LEGACY_FIELDS, Config

    known = flatten(Config().to_dict()) | {f"model.{k}": None for k in LEGACY_FIELDS}
    for spec in BACKBONES.values():  # every backbone's settings, in both spellings
        known |= flatten({"model": {"backbone_args": dataclasses.asdict(spec.args())}})
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RunsError(f"--where {item!r}: expected KEY=VALUE, e.g. --where loss.affinity=aa")
        key = key.strip()
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"did you mean {near[0]}?" if near else "e.g. loss.lambda_aa, train.seed"
            raise RunsError(f"--where {key}: unknown config key ({hint})")
        try:
            value = yamlio.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out.append((key, value))
    return out


def _both_spellings(config: dict[str, Any]) -> dict[str, Any]:
    """A stored config with its backbone's settings in both spellings (``model.small_width`` and
    ``model.backbone_args.width``, :func:`aakit.config.backbones.both_spellings`)."""
    from aakit.config.backbones import both_spellings

    model = config.get("model")
    return {**config, "model": both_spellings(model)} if isinstance(model, dict) else config


def _matches(config: dict[str, Any], key: str, value: Any) -> bool:
    have = flatten(_both_spellings(config)).get(key)
    if isinstance(have, (int, float)) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(have) == float(value)
    return bool(have == value or json.dumps(have) == json.dumps(value) or str(have) == str(value))


def select_runs(results: Path, *, status: str | None = None, tag: str | None = None,
                where: list[str] | None = None, sort: str | None = None) -> list[dict[str, Any]]:
    """The rows of the runs under ``results`` that pass the filters, sorted (``sort``: a metric, highest first)."""
    if status is not None and status not in STATUSES:
        raise RunsError(f"--status {status!r}: choose {', '.join(STATUSES)}")
    conditions = parse_where(where or [])
    rows = []
    for path in iter_run_dirs(results):
        info = load_run(path)
        if status is not None and info.status != status:
            continue
        if not all(_matches(info.config, k, v) for k, v in conditions):
            continue
        row = run_row(info)
        if tag is not None and tag not in row["tags"]:
            continue
        rows.append(row)
    if sort is not None:
        known = sorted({m for r in rows for m in r["metrics"]} | {"best_miou", "val_miou", "pseudo_miou"})
        if sort not in known:
            raise RunsError(f"--sort {sort!r}: not a metric of these runs (known: {', '.join(known)})")
        rows.sort(key=lambda r: (sort not in r["metrics"], -r["metrics"].get(sort, 0.0)))
    return rows


def page(rows: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """The first ``limit`` rows (0: all) and, when rows were left out, the line that says how many
    and how to see them."""
    if limit < 0:
        raise RunsError(f"--limit {limit}: must be >= 0 (0 lists every run)")
    if not limit or len(rows) <= limit:
        return rows, None
    return rows[:limit], (f"... {len(rows) - limit} more of {len(rows)} runs not shown "
                          f"(--limit 0 lists all; --status/--where/--tag filter, --sort orders)")


# ----------------------------------------------------------------------------- text
def _pct(value: Any) -> str:
    return f"{100 * value:.1f}" if isinstance(value, (int, float)) else "-"


def format_metric(name: str, value: Any) -> str:
    """A metric as shown: mIoU in % (one decimal), seconds whole, progress in %, else 4 digits."""
    if not isinstance(value, (int, float)):
        return "-"
    if name.endswith("miou"):
        return _pct(value)
    if name == "progress":
        return f"{100 * value:.0f}%"
    return f"{value:.0f}" if name.endswith("_s") else f"{value:.4g}"


def format_table(rows: list[dict[str, Any]], sort: str | None = None) -> str:
    """``runs ls``: one line per run (mIoU in %), the sort metric as a column of its own."""
    extra = sort if sort and sort not in ("best_miou", "val_miou") else None
    head = ["run", "status", "done", "best mIoU", "val mIoU", *([extra] if extra else []), "tags"]
    lines = []
    for r in rows:
        m = r["metrics"]
        lines.append([r["name"], r["status"], format_metric("progress", m.get("progress", 0.0)),
                      _pct(m.get("best_miou")), _pct(m.get("val_miou")),
                      *([format_metric(extra, m.get(extra))] if extra else []), ",".join(r["tags"])])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    out = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in [head, *lines]]
    return "\n".join(out + [f"{len(rows)} run(s)"])


def describe_run(path: Path) -> str:
    """``runs show``: status, provenance, tags and note, key settings, per-epoch and final metrics."""
    from aakit.config import key_hyperparameters

    info = load_run(path)
    prov = read_json(info.path / "provenance.json") or {}
    t = read_tags(info.path)
    lines = [f"run       {info.name}", f"path      {info.path}",
             f"status    {info.status}" + (f" ({info.problem})" if info.problem else "")
             + f", {100 * info.progress:.0f}% done"]
    if info.status == "failed" and info.status_info.get("error"):
        lines.append(f"error     {info.status_info['error']}")
    if isinstance(prov, dict) and prov.get("command"):
        lines.append(f"command   {' '.join(map(str, prov['command']))}")
        lines.append(f"commit    {prov.get('git_commit') or '-'}{' (dirty)' if prov.get('git_dirty') else ''}")
    lines.append(f"tags      {', '.join(t['tags']) or '-'}")
    if t["note"]:
        lines.append(f"note      {t['note']}")
    if info.config:
        hp = key_hyperparameters(info.config)
        lines.append("settings  " + ", ".join(f"{k} {v}" for k, v in hp.items()))
    for r in info.epochs:
        lines.append(f"epoch {r.get('epoch')}: val mIoU {_pct(r.get('miou'))}, rfpc {_pct(r.get('miou_rfpc'))}, "
                     f"pseudo {_pct(r.get('pseudo_miou'))}")
    m = run_metrics(info)
    finals = [f"{k.removesuffix('_miou')} {_pct(v)}" for k, v in m.items() if k.endswith("_miou") and k != "best_miou"]
    lines.append("final     " + (", ".join(finals) + " (mIoU %)" if finals else "no summary yet"))
    mech = last_mechanism(info)
    if mech is not None:
        lines += ["mechanism " + line if i == 0 else "  " + line for i, line in enumerate(mechanism_lines(mech))]
    return "\n".join(lines)


def last_mechanism(info: RunInfo) -> dict[str, Any] | None:
    """The run's mechanism record (:mod:`aakit.mechanism`): the summary's, else the last
    ``kind: mechanism`` line of a run still training; None for a run without one."""
    summary = info.summary or {}
    if isinstance(summary.get("mechanism"), dict):
        return summary["mechanism"]
    found = [r for r in info.records if r.get("kind") == "mechanism"]
    return found[-1] if found else None


def mechanism_lines(m: dict[str, Any]) -> list[str]:
    """A mechanism record as a few lines of text (``runs show``, the TUI's run screen)."""
    def f(key: str, spec: str = ".3f", scale: float = 1.0) -> str:
        v = m.get(key)
        return format(scale * v, spec) if isinstance(v, (int, float)) else "-"

    s = m.get("settings") or {}
    lines = [f"probe of {m.get('images', '?')} train images at epoch {m.get('epoch', '?')}; AA with V "
             f"{s.get('aa_confidence', '?')}, Omega {s.get('weighting', '?')}; LR gamma {s.get('gamma', '?')}",
             f"AA vs SA   gradient share {f('aa_vs_sa_grad_share', '.2e')} (|g_AA - g_SA| / |g_total|), "
             f"cos {f('aa_vs_sa_grad_cos', '.4f')}; AA is {f('aa_grad_share', '.1f', 100)} % of |g_total|",
             f"Omega      mean {f('omega_mean')}; pairs right {f('omega_right')} ({m.get('pairs_right', '-')}), "
             f"wrong {f('omega_wrong')} ({m.get('pairs_wrong', '-')})",
             f"repulsion  {m.get('repel_pairs', '-')} pairs: active {f('repel_active', '.1f', 100)} %, "
             f"where AA and SA differ {f('repel_in_gap', '.1f', 100)} %",
             f"LR         alpha median {f('lr_alpha_median', '.2f')} (10-90 % {f('lr_alpha_q10', '.2f')}-"
             f"{f('lr_alpha_q90', '.2f')}); gamma vs 0: cos {f('lr_gamma_vs_0_cos', '.4f')}, "
             f"norm x{f('lr_gamma_vs_0_norm_ratio', '.2f')}",
             f"reassign   {f('lr_reassigned', '.1f', 100)} % of {m.get('lr_pixels', '-')} px; right->wrong "
             f"{m.get('lr_right_to_wrong', '-')}, wrong->right {m.get('lr_wrong_to_right', '-')}"]
    reasons = m.get("reasons") or {}
    if reasons:
        lines.append("null       " + "; ".join(f"{k}: {v}" for k, v in reasons.items()))
    return lines


def diff_runs(a: Path, b: Path) -> dict[str, Any]:
    """The config keys whose values differ (``name`` and paths included) and both runs' metrics."""
    ia, ib = load_run(a, with_records=True), load_run(b, with_records=True)
    fa, fb = (flatten(_new_spelling(i.config)) for i in (ia, ib))
    keys = [k for k in dict.fromkeys([*fa, *fb]) if fa.get(k, "<unset>") != fb.get(k, "<unset>")]
    ma, mb = run_metrics(ia), run_metrics(ib)
    metrics = [m for m in dict.fromkeys([*ma, *mb]) if m != "progress"]
    return {"a": ia.name, "b": ib.name,
            "config": [(k, fa.get(k, "<unset>"), fb.get(k, "<unset>")) for k in keys],
            "metrics": [(m, ma.get(m), mb.get(m)) for m in metrics]}


def _new_spelling(config: dict[str, Any]) -> dict[str, Any]:
    """A stored config in today's spelling: two runs of one backbone setting, one stored before
    issue 29 (``model.small_width``), show no difference."""
    from aakit.config.backbones import new_spelling

    model = config.get("model")
    return {**config, "model": new_spelling(model)} if isinstance(model, dict) else config


def format_diff(d: dict[str, Any]) -> str:
    """``runs diff``: two columns, A and B: differing config keys, then the metrics (mIoU in %)."""
    def show(v: Any) -> str:
        return "null" if v is None else (json.dumps(v) if isinstance(v, (list, dict)) else str(v))

    rows = [("", d["a"], d["b"])]
    rows += [(k, show(va), show(vb)) for k, va, vb in d["config"]] or [("(same config)", "", "")]
    rows += [("", "", "")] + [(k, format_metric(k, va), format_metric(k, vb)) for k, va, vb in d["metrics"]]
    w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    return "\n".join(f"{r[0]:{w0}s}  {r[1]:{w1}s}  {r[2]}".rstrip() for r in rows)
