"""runs/README.md against the out-of-fold files it documents. Each run still going has a
section of its own (a heading "## `name/`: ...") and a file runs/name/oof.npz, and each is
checked against the other: the command written in the section makes the settings that the
file's folds were trained with (so the next session goes on from the file rather than
being refused), and the section's table of folds lists the folds the file holds. A
finished run's section and file leave together, once docs/offline-classifier.md holds its
table."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from guard.training.families import FAMILIES
from guard.training.options import fold_settings
from guard.training.train import parser
from guard.training.transfer import OutOfFold

RUNS = Path(__file__).resolve().parent.parent / "runs"
README = (RUNS / "README.md").read_text(encoding="utf-8")


def sections() -> dict[str, str]:
    """Each run's name (its folder) and the text of its README section."""
    parts = re.split(r"^## ", README, flags=re.M)[1:]
    found = {}
    for part in parts:
        match = re.match(r"`([\w-]+)/`", part)
        if match:
            found[match.group(1)] = part
    return found


def documented_command(section: str) -> list[str]:
    """The guard.train arguments of the command written in a run's section."""
    match = re.search(r"^ {4}python -m guard\.train (.+?)(?<!\\)\n", section, re.M | re.S)
    assert match, "no indented `python -m guard.train ...` command in the run's section"
    return shlex.split(match.group(1).replace("\\\n", " "))


def documented_folds(section: str) -> set[str]:
    rows = re.findall(r"^\| ([^|]+?) \| [^|]* \| [^|]* \|$", section, re.M)
    return set(rows) - {"fold without"}


def test_each_file_has_its_section_and_each_section_its_file():
    files = {p.parent.name for p in RUNS.glob("*/oof.npz")}
    assert files == set(sections())
    assert {p.name for p in RUNS.iterdir() if p.is_dir()} == files  # no folder left without its file


def test_each_documented_command_makes_the_settings_of_its_files_folds():
    for name, section in sections().items():
        a = parser().parse_args(documented_command(section))
        assert a.transfer and Path(a.out_of_fold) == Path(f"runs/{name}/oof.npz")
        settings = OutOfFold.load(RUNS / name / "oof.npz").settings
        documented = fold_settings(a, [])  # the data digest is the run's own: checked by the resume itself
        assert {k: v for k, v in settings.items() if k != "data"} == {
            k: v for k, v in documented.items() if k != "data"
        }, name
        assert re.fullmatch(r"[0-9a-f]{16}", settings["data"])


def test_each_table_lists_the_folds_its_file_holds():
    for name, section in sections().items():
        oof = OutOfFold.load(RUNS / name / "oof.npz")
        assert documented_folds(section) == set(oof.folds), name
        assert set(oof.folds) <= {family for family, _ in FAMILIES}
