"""The embedded benchmark: a procedural, seeded, versioned WSSS data set in the VOC layout.

Plain shapes on a plain background would be solved by any CAM; this generator reproduces the
phenomena that weakly supervised segmentation fights (classes that need several cues, a small
discriminative badge, class-correlated backgrounds, occlusion, soft edges and noise), each
behind a knob (:class:`Knobs`, recorded in ``meta.json``) so the difficulty can be calibrated.
The files (VOC's ``JPEGImages``, ``SegmentationClass`` with a 255 boundary band,
``SegmentationClassAug`` without it, ``ImageSets``, plus ``cls_labels.json``, ``scenes.json``
and ``meta.json``) are byte-identical for the same parameters whatever the number of workers.
How each phenomenon is made, the layout, the boundary band and the determinism are described
in docs/benchmark.md.

The package, by job (``aakit.data.scene`` holds the drawing primitives every version shares)::

    versions.py    REGISTRY: version number -> its module; SynthVersion (what a module gives), SceneSteps
    v1.py          version 1 (frozen, byte for byte; the default of generate): classes, colours, knobs
    classes_v1.txt version 1's class table (data: one class a line, read by scene.read_class_table)
    v2.py          version 2 (the default of `aakit data synth`): distinct classes, boundary
                   confounding, confident decoys, drawn through its Steps; classes_v2.txt
    shapes.py      the class shapes as signed distances
    appearance.py  backgrounds, body colour and texture period, badge patterns
    render.py      one scene: classes, placement, drawing, photometry, labels (render_scene)
    spec.py        the keywords (SynthOptions) checked into a SynthSpec; --knob NAME=VALUE
    write.py       the files: generate, is_generated, image ids, the palette, meta.json
    describe.py    describe (text summary), contact_sheet (picture)

Adding a version (say 3) is one module (with its class table) and one registry entry:
``aakit/data/synth/v3.py`` defines what :class:`~aakit.data.synth.versions.SynthVersion` lists —
``VERSION`` ("3.0", the ``meta.json`` label), ``CLASSES`` (``read_class_table`` of
``classes_v3.txt`` beside it, shipped by pyproject's ``classes_*.txt``), ``DEFAULT_KNOBS``
(a :class:`Knobs` subclass of its own, as ``v2.KnobsV2``), ``DEFAULT_N_VAL``, ``check_knobs``,
``make_steps`` (its :class:`~aakit.data.synth.versions.SceneSteps`, drawing from generators of
their own so the shared layout is unchanged), ``meta_extra`` and ``describe_lines`` — and
``versions.REGISTRY`` gains ``3: v3`` (with ``import aakit.data.synth.v3 as v3``). The
generator, the checks, ``meta.json``, :func:`describe`, ``--knob`` and ``aakit data synth
--version`` read the registry; ``tests/test_synth_versions.py`` checks every entry. A module
written beside the package (``aakit/data/synth_v3.py`` with ``synth_v2``'s names) moves in as
``v3.py`` with ``DEFAULT_N_VAL`` added (its class table, if written as code, into
``classes_v3.txt``); its old path can stay as a shim like ``synth_v2.py``.

Example::

    meta = generate("data/synth", n_train=600, n_val=200, seed=0)
    if is_generated("data/synth", n_train=600, n_val=200, seed=0): ...
    generate("data/synth2", version=2)  # 600 train + 1000 val, v2.KnobsV2 defaults
    print(describe("data/synth"))
"""
from __future__ import annotations

from aakit.data.scene import ClassSpec, Knobs, SynthError
from aakit.data.scene import SceneObject as _Object
from aakit.data.synth.appearance import (
    BACKGROUNDS, MARK_BLACK, MARK_WHITE, _background, _family_colour, _mark_pattern, _texture_period,
)
from aakit.data.synth.describe import contact_sheet, describe
from aakit.data.synth.render import (
    MIN_VISIBLE_PX, _badge, _choose_classes, _draw_object, _labels, _photometry, _place, _place_objects,
    _visible_enough, render_scene,
)
from aakit.data.synth.shapes import _box_sdf, _polygon_sdf, _shape_sdf, _star_vertices
from aakit.data.synth.spec import SynthOptions, SynthSpec, _check_args, _check_knobs, knobs_from_args, synth_spec
from aakit.data.synth.v1 import CLASSES, COLOUR_FAMILIES, DEFAULT_KNOBS
from aakit.data.synth.versions import DEFAULT_N_VAL, REGISTRY, VERSIONS, SceneSteps, SynthVersion, synth_version
from aakit.data.synth.write import (
    _PALETTE, DATASET_NAME, JPEG_QUALITY, SPLITS, SYNTH_VERSION, _image_rng, _is_replaceable, jpeg_bytes, _Job,
    _make_one, _meta, png_bytes, _read_meta, _run, _swap_into_place, _write_json, generate, image_id,
    is_generated, voc_palette,
)

__all__ = [
    "BACKGROUNDS", "CLASSES", "COLOUR_FAMILIES", "DATASET_NAME", "DEFAULT_KNOBS", "DEFAULT_N_VAL", "JPEG_QUALITY",
    "MARK_BLACK", "MARK_WHITE", "MIN_VISIBLE_PX", "REGISTRY", "SPLITS", "SYNTH_VERSION", "VERSIONS", "ClassSpec",
    "Knobs", "SceneSteps", "SynthError", "SynthOptions", "SynthSpec", "SynthVersion", "contact_sheet", "describe",
    "generate", "image_id", "is_generated", "knobs_from_args", "render_scene", "synth_spec", "synth_version",
    "voc_palette",
]
