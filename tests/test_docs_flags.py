"""The README and every page of docs/ name only flags that exist, and the README's settings
table lists every flag of `python app.py` (a flag the docs invented, `--guard-url`, went
unnoticed before)."""

from __future__ import annotations

import re
from pathlib import Path

from moderation.settings import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SETTINGS_TABLE = ROOT / "README.md"  # the table of every `python app.py` flag
# Flags of other programs that the docs show commands for: vLLM, TGI, docker, pip.
OTHER_PROGRAMS = {
    "--model",
    "--max-model-len",
    "--enable-prefix-caching",
    "--gpu-memory-utilization",
    "--quantization",
    "--max-total-tokens",
    "--model-id",
    "--shm-size",
    "--gpus",
    "--platform",
    "--python-version",
    "--only-binary",
    "--no-deps",
    "--implementation",
    "--api-key",
    "--help",
}


def app_flags() -> set[str]:
    return {s for a in build_parser()._actions for s in a.option_strings if s.startswith("--")}


def defined_flags() -> set[str]:
    """Every flag an argparse parser of this repository defines (app, from the settings
    schema; chat, guard, bench, written out)."""
    found = app_flags()
    for path in ROOT.glob("*/**/*.py"):
        if ".venv" not in path.parts:
            found |= set(re.findall(r"add_argument\(\s*(?:\"-\w\",\s*)?\"(--[a-z0-9-]+)\"", path.read_text()))
    return found


def test_the_docs_name_only_flags_that_exist():
    named = {flag for doc in DOCS for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", doc.read_text())}
    assert named - defined_flags() - OTHER_PROGRAMS == set()


def test_the_settings_table_lists_every_flag_of_the_app():
    text = SETTINGS_TABLE.read_text()
    table = set(re.findall(r"^\| `(--[a-z0-9-]+)", text, re.M))
    rows = set(re.findall(r"^\| `--[a-z0-9-]+`[^|]*/ `(--[a-z0-9-]+)", text, re.M))
    assert app_flags() - {"--help"} == table | rows
