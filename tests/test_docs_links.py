"""Every relative link and image of README.md and docs/*.md names a file of the repository."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def relative_targets(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)  # code is not a link
    out = []
    for target in LINK.findall(text):
        path = target.split("#", 1)[0]
        if path and not re.match(r"[a-z]+:", path):  # http:, https:, mailto: are not checked
            out.append(path)
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_and_images_name_files_that_exist(page: Path) -> None:
    missing = [t for t in relative_targets(page) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)}: links to missing files {missing}"


def test_the_link_pattern_sees_images_and_anchors() -> None:
    assert LINK.findall("see ![a](img/x.png) and [b](other.md#part) or [c](https://e.org)") == [
        "img/x.png", "other.md#part", "https://e.org"]
