"""Where the real-object lab's photographs come from: Debian packages installed on this machine.

Nothing here is shipped with aakit (licences): ``make real-data`` installs the packages, and the
builder (:mod:`aakit.data.objects.build`) reads them where Debian puts them, or where the
environment variables below say (any other system: copy the files there).

* Object cut-outs: ``tuxpaint-stamps-default`` (GPL-2), RGBA PNGs under
  ``/usr/share/tuxpaint/stamps/<group>/``; the alpha channel is the object's exact mask.
  Only photographs: files under a ``cartoon/`` folder, mirrored duplicates (``*_mirror.png``)
  and drawings (fewer than :data:`MIN_COLOURS` distinct colours) are left out.
* Backgrounds: real photos among ``opencv-doc``'s sample images and
  ``plasma-workspace-wallpapers``' wallpapers (:data:`BACKGROUNDS`, chosen by name: no object
  of the lab's classes in them; abstract and drawn wallpapers left out).

Standard library plus numpy and Pillow; no torch.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from aakit.errors import AakitError

PACKAGES = ("tuxpaint-stamps-default", "opencv-doc", "plasma-workspace-wallpapers")
# darknet's photos (dog.jpg, person.jpg, ...) are for pictures of a lab model on real photos.
PICTURE_PACKAGES = ("darknet",)

ENV_STAMPS = "AAKIT_TUXPAINT_STAMPS"
ENV_OPENCV = "AAKIT_OPENCV_DATA"
ENV_WALLPAPERS = "AAKIT_WALLPAPERS"
DEFAULT_STAMPS = "/usr/share/tuxpaint/stamps"
DEFAULT_OPENCV = "/usr/share/doc/opencv-doc/examples/data"
DEFAULT_WALLPAPERS = "/usr/share/wallpapers"

# Class -> the stamp folders (relative to the stamps root, each read without its subfolders).
CLASS_GROUPS: dict[str, tuple[str, ...]] = {
    "bird": ("animals/birds",),
    "fish": ("animals/fish",),
    "bovine": ("animals/mammals/bovines",),
    "mammal": ("animals/mammals", "animals/mammals/rodents", "animals/mammals/cats",
               "animals/mammals/deer", "animals/mammals/equines", "animals/mammals/bears",
               "animals/mammals/dogs"),
    "flower": ("plants/flowers",),
    "fruit": ("food/fruit",),
    "vegetable": ("food/vegetables",),
    "tool": ("household/tools",),
}
# The context a class is photographed in most often (the knob context_prob pairs them).
CLASS_CONTEXT: dict[str, str] = {
    "bird": "sky_water", "fish": "sky_water", "bovine": "nature", "mammal": "nature",
    "flower": "nature", "fruit": "indoor", "vegetable": "indoor", "tool": "indoor",
}
MIN_COLOURS = 120  # distinct 5-bit RGB colours in the opaque part: below it, a drawing
MAX_SIDE = 192  # cut-outs are read at most this large (longest side, px)

# (source, path under the source's root, context)
BACKGROUNDS: tuple[tuple[str, str, str], ...] = (
    ("opencv", "aero1.jpg", "urban"), ("opencv", "aero3.jpg", "urban"),
    ("opencv", "aloeL.jpg", "indoor"), ("opencv", "basketball1.png", "indoor"),
    ("opencv", "board.jpg", "indoor"), ("opencv", "building.jpg", "urban"),
    ("opencv", "graf1.png", "urban"), ("opencv", "home.jpg", "indoor"),
    ("opencv", "leuvenA.jpg", "urban"), ("opencv", "leuvenB.jpg", "urban"),
    ("opencv", "messi5.jpg", "nature"), ("opencv", "rubberwhale1.png", "indoor"),
    ("opencv", "stuff.jpg", "indoor"), ("opencv", "smarties.png", "indoor"),
    ("opencv", "ela_original.jpg", "urban"),
    ("wallpapers", "BytheWater/contents/images/1920x1080.jpg", "sky_water"),
    ("wallpapers", "ColdRipple/contents/images/1920x1080.jpg", "sky_water"),
    ("wallpapers", "ColorfulCups/contents/images/2560x1600.jpg", "indoor"),
    ("wallpapers", "DarkestHour/contents/images/1920x1080.jpg", "sky_water"),
    ("wallpapers", "EveningGlow/contents/images/1920x1080.jpg", "sky_water"),
    ("wallpapers", "FallenLeaf/contents/images/1920x1080.jpg", "nature"),
    ("wallpapers", "Grey/contents/images/1920x1080.jpg", "sky_water"),
    ("wallpapers", "Kite/contents/images/1920x1080.jpg", "sky_water"),
    ("wallpapers", "OneStandsOut/contents/images/1920x1080.jpg", "nature"),
    ("wallpapers", "Path/contents/images/1920x1080.jpg", "nature"),
    ("wallpapers", "Shell/contents/images/720x1440.jpg", "sky_water"),
    ("wallpapers", "summer_1am/contents/images/1920x1080.jpg", "sky_water"),
)
BACKGROUND_SIDE = 512  # backgrounds are read at most this large (shorter side, px)


class SourcesMissing(AakitError):
    """The packages (or files) the real-object lab is built from are not on this machine."""


@dataclass(frozen=True)
class Roots:
    """Where the three sources are on this machine."""

    stamps: Path
    opencv: Path
    wallpapers: Path

    @classmethod
    def from_env(cls) -> Roots:
        """The Debian paths, or those of :data:`ENV_STAMPS`, :data:`ENV_OPENCV`, :data:`ENV_WALLPAPERS`."""
        return cls(Path(os.environ.get(ENV_STAMPS, DEFAULT_STAMPS)),
                   Path(os.environ.get(ENV_OPENCV, DEFAULT_OPENCV)),
                   Path(os.environ.get(ENV_WALLPAPERS, DEFAULT_WALLPAPERS)))

    def of(self, source: str) -> Path:
        return {"stamps": self.stamps, "opencv": self.opencv, "wallpapers": self.wallpapers}[source]


@dataclass(frozen=True)
class Cutout:
    """One photographed object: its class and its file (relative to the stamps root)."""

    cls: str
    path: str

    @property
    def key(self) -> str:
        """The object's name in ``meta.json`` (``objects_by_split``)."""
        return self.path.removesuffix(".png")


def install_hint(roots: Roots) -> str:
    """One line: what to install (Debian) or which files to put where (elsewhere)."""
    return (f"run `make real-data` (Debian/Ubuntu: apt-get install {' '.join(PACKAGES)}); elsewhere put "
            f"tuxpaint's stamps/ in {roots.stamps} (or ${ENV_STAMPS}), opencv's samples/data in "
            f"{roots.opencv} (${ENV_OPENCV}) and the Plasma wallpapers in {roots.wallpapers} (${ENV_WALLPAPERS})")


def missing(roots: Roots) -> list[str]:
    """The sources that are not there (empty when the lab can be built)."""
    out = [str(roots.stamps)] if not roots.stamps.is_dir() else []
    for source, path, _ in BACKGROUNDS:
        if not (roots.of(source) / path).is_file():
            out.append(str(roots.of(source) / path))
    return out


def require(roots: Roots) -> None:
    """Raise :class:`SourcesMissing` (one line) unless every source is there."""
    gone = missing(roots)
    if gone:
        more = f" and {len(gone) - 1} more" if len(gone) > 1 else ""
        raise SourcesMissing(f"real-object sources missing: {gone[0]}{more}; {install_hint(roots)}")


def is_photo(path: Path) -> bool:
    """A photograph (many colours in its opaque part), not a drawing."""
    im = np.asarray(Image.open(path).convert("RGBA"))
    opaque = im[..., 3] > 128
    if opaque.sum() < 50:
        return False
    q = (im[..., :3][opaque] // 8).astype(np.int32)
    return len(np.unique(q[:, 0] * 1024 + q[:, 1] * 32 + q[:, 2])) >= MIN_COLOURS


def find_cutouts(roots: Roots) -> list[Cutout]:
    """Every photographic cut-out of :data:`CLASS_GROUPS`, sorted by class order then path."""
    out: list[Cutout] = []
    for cls, folders in CLASS_GROUPS.items():
        for folder in folders:
            d = roots.stamps / folder
            if not d.is_dir() or "cartoon" in Path(folder).parts:
                continue
            for f in sorted(d.glob("*.png")):
                if f.stem.endswith("_mirror") or not is_photo(f):
                    continue
                out.append(Cutout(cls, f"{folder}/{f.name}"))
    return out


def load_cutout(roots: Roots, c: Cutout) -> np.ndarray:
    """The cut-out as RGBA uint8, cropped to its alpha's bounding box, at most MAX_SIDE px."""
    im = Image.open(roots.stamps / c.path).convert("RGBA")
    box = im.getchannel("A").point(lambda a: 255 if a > 0 else 0).getbbox()
    if box is not None:
        im = im.crop(box)
    if max(im.size) > MAX_SIDE:
        im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(im)


def load_background(roots: Roots, source: str, path: str) -> np.ndarray:
    """A background photo as RGB uint8, its shorter side at most BACKGROUND_SIDE px."""
    im = Image.open(roots.of(source) / path).convert("RGB")
    scale = BACKGROUND_SIDE / min(im.size)
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
    return np.asarray(im)


def package_versions(packages: tuple[str, ...] = PACKAGES + PICTURE_PACKAGES) -> dict[str, str | None]:
    """Installed version of each Debian package (None: not installed, or no dpkg here)."""
    if shutil.which("dpkg-query") is None:
        return {p: None for p in packages}
    out: dict[str, str | None] = {}
    for p in packages:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Status} ${Version}", p],
                           capture_output=True, text=True, check=False)
        words = r.stdout.split()
        out[p] = words[-1] if r.returncode == 0 and "installed" in words[:3] else None
    return out


def files_digest(roots: Roots, cutouts: list[Cutout]) -> str:
    """A digest of the bytes of every source file the lab reads (16 hex digits)."""
    h = hashlib.sha256()
    names = [("stamps", c.path) for c in cutouts] + [(s, p) for s, p, _ in BACKGROUNDS]
    for source, path in names:
        h.update(f"{source}/{path}\0".encode())
        h.update((roots.of(source) / path).read_bytes())
    return h.hexdigest()[:16]
