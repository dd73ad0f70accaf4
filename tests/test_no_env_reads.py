"""Library code does not read the environment: every flag and variable of the app is read
in `moderation/settings.py` and passed down as parameters, and `python -m chat` /
`python -m guard` read their own in their `__main__`. Checked on the sources with `ast`
(nothing is run), so a read inside a rarely taken branch is found too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("chat", "guard", "weights", "compute", "moderation")
# The settings surfaces: the app's one reader, and the two command lines of the lower layers.
READERS = {"moderation/settings.py", "chat/__main__.py", "guard/__main__.py"}
# Writes a third party's variable, not a setting: uvicorn's FORWARDED_ALLOW_IPS, set while the
# server is launched and put back after (moderation.access.uvicorn_trusting says why).
WRITERS = {"moderation/access.py"}


def environment_reads(source: str) -> list[int]:
    """Lines that read the environment: os.environ (any use: .get, [...], in, copy) or
    os.getenv / getenv, however os was imported."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            lines.append(node.lineno)
        elif isinstance(node, ast.Name) and node.id in ("environ", "getenv"):
            lines.append(node.lineno)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(a.name in ("environ", "getenv") for a in node.names)
        ):
            lines.append(node.lineno)
    return sorted(lines)


def test_the_reader_finds_every_form_of_a_read():
    found = environment_reads(
        "import os\nfrom os import getenv\nos.environ.get('A')\n"
        "x = os.environ['B']\ny = getenv('C')\nz = 'D' in os.environ\n"
    )
    assert found == [2, 3, 4, 5, 6]
    assert environment_reads("environment = {}\nsettings.environment('A')\n") == []


def test_only_the_settings_surfaces_read_the_environment():
    readers = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = environment_reads(path.read_text(encoding="utf-8"))
            if lines:
                readers[str(path.relative_to(ROOT))] = lines
    allowed = READERS | WRITERS
    assert set(readers) <= allowed, {k: v for k, v in readers.items() if k not in allowed}
    assert "moderation/settings.py" in readers  # the reader is still found where it is
