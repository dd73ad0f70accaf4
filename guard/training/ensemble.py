"""Several runs' held-out logits read as one guard's: the mean of their models' logits.

Runs that tune the same top layers of the same encoder over the same frozen lower layers can
be joined into one guard that runs the frozen layers once and each run's top layers after
them, averaging the heads' logits. Held out, that guard is read from the runs' out-of-fold
files: for every row that each file holds out, the mean of the logits of the folds that
never saw it. The result is an out-of-fold file like any run's, so the same point code
reads it (guard.training.transfer).

Rows are matched by what they say (ROW_KEYS), not by their split or group: adding a table to
a run moves some rows to other splits. A row only some files hold is left out, and so is a
row held out by different folds in different files (it would not be held out by one
guard). For a text judged in several windows, each file holds its model's worst window.

    python -m guard.training.ensemble A.npz B.npz --out AB.npz
    python -m guard.training.transfer AB.npz --point-per-context   # its held-out table
    python -m guard.training.transfer AB.npz --rank
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guard.training.transfer import OutOfFold

ROW_KEYS = ("kind", "label", "text", "prompt", "context", "source", "lang")


def row_key(row: dict) -> str:
    """What a row says, whatever its split and group."""
    return json.dumps({k: row.get(k) for k in ROW_KEYS}, sort_keys=True, ensure_ascii=False)


class AmbiguousRows(ValueError):
    """A file that holds out the same row twice: which logits would be its?"""


@dataclass
class Joined:
    """The joined file and what was left out of it."""

    oof: OutOfFold
    held_by_some: int  # rows that only some files hold out
    other_folds: int  # rows that the files hold out in different folds


def join(files: list[OutOfFold]) -> Joined:
    """The rows every file holds out in the same fold, in the first file's order, with the
    mean of the files' logits."""
    if len(files) < 2:
        raise ValueError("joining needs two out-of-fold files or more")
    index = []
    for f in files:
        keys = {}
        for i, r in enumerate(f.rows):
            k = row_key(r)
            if k in keys:
                raise AmbiguousRows(f"a row is held out twice in one file: {r.get('text', '')[:60]!r}")
            keys[k] = i
        index.append(keys)
    common = set(index[0]).intersection(*index[1:])
    some = len(set(index[0]).union(*index[1:]) - common)
    first, kept, other = files[0], [], 0
    for r in first.rows:
        if row_key(r) not in common:
            continue
        at = [keys[row_key(r)] for keys in index]
        if len({f.folds[j] for f, j in zip(files, at)}) > 1:
            other += 1
        else:
            kept.append(at)
    logits = np.array([np.mean([f.logits[j] for f, j in zip(files, at)], axis=0) for at in kept])
    rows = [first.rows[at[0]] for at in kept]
    folds = [first.folds[at[0]] for at in kept]
    settings = {"joined": [f.settings for f in files]}
    return Joined(OutOfFold(rows, logits.reshape(len(kept), first.logits.shape[1]), settings, folds), some, other)


def main(argv=None) -> int:
    """`python -m guard.training.ensemble A.npz B.npz --out AB.npz`: the held-out logits of
    a guard that averages the runs' models, as one out-of-fold file."""
    p = argparse.ArgumentParser(prog="python -m guard.training.ensemble", description=main.__doc__)
    p.add_argument("files", type=Path, nargs="+", metavar="FILE.npz", help="two out-of-fold files or more")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.npz", help="where the joined file goes")
    a = p.parse_args(argv)
    if len(a.files) < 2:
        p.error("give two out-of-fold files or more")
    try:
        files = [OutOfFold.load(f) for f in a.files]
        joined = join(files)
    except (OSError, ValueError, KeyError) as exc:
        p.error(f"{type(exc).__name__}: {exc}")
    joined.oof.save(a.out)
    print(
        f"{len(joined.oof.rows)} rows held out by every file, logits averaged; left out: "
        f"{joined.held_by_some} held out by only some, {joined.other_folds} held out in different folds"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
