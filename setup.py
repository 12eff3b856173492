"""The wheel carries the presets: ``build_py`` copies ``experiments/`` (and the paper's numbers,
``results/published.csv``) into ``aakit/_shipped/`` of the build. The repository keeps the one
copy; :mod:`aakit.presets` reads the wheel's or, in a source checkout, the repository's.
Everything else about the package is in pyproject.toml.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = {"experiments": "experiments", "results/published.csv": "published.csv"}  # source -> aakit/_shipped/


class BuildPyWithPresets(build_py):
    """``build_py`` plus the presets, under ``aakit/_shipped/`` of the build directory."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the repository's copy
            return
        dest = Path(self.build_lib) / "aakit" / "_shipped"
        shutil.rmtree(dest, ignore_errors=True)
        for src, name in SHIPPED.items():
            path = HERE / src
            if not path.exists():
                raise FileNotFoundError(f"{path}: the presets to ship are missing (sdist without MANIFEST.in?)")
            if path.is_dir():
                shutil.copytree(path, dest / name, ignore=shutil.ignore_patterns("*.pyc", "__pycache__", ".*"))
            else:
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest / name)


setup(cmdclass={"build_py": BuildPyWithPresets})
