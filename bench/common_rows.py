"""Two or more one-fold runs on the rows they all hold out (docs/offline-classifier.md, "Why do
the scenes rank worse held out"). A table added to or left out of a recipe renumbers the
near-duplicate groups and so moves the splits: two out-of-fold files of one family then hold
out different rows, and their figures compare only on the rows both hold out. Not a figure of
merit of its own; the comparison a one-fold probe's rule names.

    python bench/common_rows.py "multi-turn scenes" a/oof.npz b/oof.npz [--weights W.safetensors]

prints, per file (and for the weights, a model that never trained on the family), the
family's AUPRC and recall at 5% FPR (the files: of raw softmax, as `--rank`; the weights:
calibrated as its guard reads each row, as `--compare`) on its prompts (`--side reply`: its replies) that every
file holds out. A row is its text with its turns before it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the guard package, not bench/guard.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from guard.offline_model import Network, softmax  # noqa: E402
from guard.training.metrics import average_precision, recall_at_fpr  # noqa: E402
from guard.training.transfer import OutOfFold, family_of, guard_scores, side_of  # noqa: E402


def key(row: dict) -> tuple:
    return row["text"], tuple(row.get("context") or ()), row["label"]


def held_rows(oof: OutOfFold, family: str, side: str) -> dict[tuple, tuple[dict, float]]:
    """{row key: (row, unsafe score)} of the family's rows of one side held out in oof."""
    s = 1 - softmax(oof.logits)[:, 0]
    return {key(r): (r, s[i]) for i, r in enumerate(oof.rows) if family_of(r) == family and side_of(r) == side}


def figures(y: np.ndarray, s: np.ndarray) -> str:
    return f"AUPRC {average_precision(y, s):.3f}  recall@5% {recall_at_fpr(y, s, 0.05):.3f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python bench/common_rows.py", description=__doc__.split("\n\n")[0])
    p.add_argument("family")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE.npz")
    p.add_argument("--side", choices=("prompt", "reply"), default="prompt")
    p.add_argument("--weights", type=Path, help="also this model, on the same rows (one that never trained on them)")
    a = p.parse_args(argv)
    held = {f: held_rows(OutOfFold.load(f), a.family, a.side) for f in a.files}
    common = sorted(set.intersection(*(set(h) for h in held.values())))
    if not common:
        p.error(f"no {a.side} rows of {a.family!r} held out in every file")
    rows = [held[a.files[0]][k][0] for k in common]
    y = np.array([r["label"] != "safe" for r in rows])
    print(f"{a.family} ({a.side}): {len(common)} rows held out in every file ({int(y.sum())} unsafe)")
    for f in a.files:
        print(f"  {str(f):<40} {len(held[f]):>5} held out   {figures(y, np.array([held[f][k][1] for k in common]))}")
    if a.weights:  # read as its guard reads each row, as --compare does
        s = guard_scores(Network.load(a.weights), rows)
        print(f"  {str(a.weights):<40} {'':>5}            {figures(y, s)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
