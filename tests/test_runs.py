"""runs/README.md against the out-of-fold file it documents: the command written there makes
the settings that the file's folds were trained with (so the next session goes on from the
file rather than being refused), and its table of folds lists the folds the file holds."""

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
RUN = RUNS / "eleventh" / "oof.npz"


def documented_command() -> list[str]:
    """The guard.train arguments of the command written in runs/README.md."""
    match = re.search(r"^ {4}python -m guard\.train (.+?)(?<!\\)\n", README, re.M | re.S)
    assert match, "no indented `python -m guard.train ...` command in runs/README.md"
    return shlex.split(match.group(1).replace("\\\n", " "))


def documented_folds() -> set[str]:
    rows = re.findall(r"^\| ([^|]+?) \| [^|]* \| [^|]* \|$", README, re.M)
    return set(rows) - {"fold without"}


def test_the_documented_command_makes_the_settings_of_the_files_folds():
    a = parser().parse_args(documented_command())
    assert a.transfer and Path(a.out_of_fold) == Path("runs/eleventh/oof.npz")
    settings = OutOfFold.load(RUN).settings
    documented = fold_settings(a, [])  # the data digest is the run's own: checked by the resume itself
    assert {k: v for k, v in settings.items() if k != "data"} == {k: v for k, v in documented.items() if k != "data"}
    assert re.fullmatch(r"[0-9a-f]{16}", settings["data"])


def test_the_table_lists_the_folds_the_file_holds():
    oof = OutOfFold.load(RUN)
    assert documented_folds() == set(oof.folds)
    assert set(oof.folds) <= {name for name, _ in FAMILIES}
