"""Every relative link and image in README.md and docs/*.md points at a file that exists, and
every `#anchor` at a heading of the file it names (the README's sections moved to docs/, so
a link left behind would point at nothing)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.I)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def prose(path: Path) -> str:
    """The file's text without its fenced code blocks (a shell line is no link)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def links(path: Path) -> list[str]:
    text = prose(path)
    return MARKDOWN_LINK.findall(text) + HTML_LINK.findall(text)


def is_relative(target: str) -> bool:
    return not re.match(r"[a-z][a-z0-9+.-]*:", target, re.I)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: `## The guard, exactly` -> `the-guard-exactly`."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", prose(path), re.M)}


def test_the_pages_are_found():
    assert ROOT / "README.md" in DOCS and ROOT / "docs" / "deploy.md" in DOCS


def test_the_link_pattern_reads_what_markdown_and_html_write(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        '[a](docs/a.md) ![b](docs/b.png "title") <img src="c.png" height="9">\n'
        "[web](https://example.org) [here](#top)\n```\n[not](a-link.md)\n```\n"
    )
    assert links(page) == ["docs/a.md", "docs/b.png", "https://example.org", "#top", "c.png"]
    assert slug("The guard, exactly") == "the-guard-exactly" and slug("`/v1`: the API") == "v1-the-api"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_that_exists(doc: Path):
    broken = []
    for target in filter(is_relative, links(doc)):
        file_part, _, anchor = target.partition("#")
        file = (doc.parent / file_part).resolve() if file_part else doc
        if not file.exists():
            broken.append(f"{target}: no file {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert broken == []


def test_the_readme_is_a_front_door_that_links_every_page_of_docs():
    readme = ROOT / "README.md"
    assert len(readme.read_text(encoding="utf-8").splitlines()) <= 300
    linked = {(readme.parent / target.partition("#")[0]).resolve() for target in links(readme) if is_relative(target)}
    assert [p.name for p in DOCS[1:] if p not in linked] == []


def test_the_readme_starts_with_the_space_front_matter_and_its_license_is_the_file():
    """A Hugging Face Space reads its configuration from the README's front matter."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front = dict(line.split(": ", 1) for line in text.split("\n---\n", 1)[0].splitlines()[1:] if ": " in line)
    assert (front["sdk"], front["app_file"], front["license"]) == ("gradio", "app.py", "apache-2.0")
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License\n                           Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
