"""The real-object lab: photographed cut-outs (exact alpha masks) on real background photos,
split by object; docs/benchmark.md, "Objects". The photos come from Debian packages
(``make real-data``) and are never part of aakit."""
import aakit.data.objects.build as build
from aakit.data.objects.build import DATASET_NAME, VERSION, describe, expected_meta, generate, is_generated
from aakit.data.objects.compose import DEFAULT_KNOBS, ObjectKnobs, ObjectsError, knobs_from_args
from aakit.data.objects.sources import Roots, SourcesMissing

__all__ = ["DATASET_NAME", "VERSION", "DEFAULT_KNOBS", "ObjectKnobs", "ObjectsError", "Roots", "SourcesMissing",
           "describe", "expected_meta", "generate", "is_generated", "knobs_from_args"]
