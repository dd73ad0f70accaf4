"""Does a new hand-written table move existing examples to another split? Not a figure of merit:
a check to run before a table is measured against a run that did not read it.

    python bench/table_splits.py guard/data/handwritten_replies.tsv --tables "words,multilingual v2,scenes,objects"

guard.training.dataset.assign groups near-duplicates (and a reply with its prompt) and gives a
group the split of its alphabetically first text. A new row that falls in an existing group
can carry that group to another split, or join two groups; then a fold measured with the
table holds out other rows than the same fold without it. This prints how many existing
examples change split, and the new rows that fall in a group with an existing example
(`--drop` rewrites the table without them, which leaves every existing split as it was:
the rows left are in groups of their own).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the guard package, not bench/guard.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from guard.offline_model import Network  # noqa: E402
from guard.training.dataset import assign  # noqa: E402
from guard.training.sources import all_examples, handwritten  # noqa: E402
from guard.training.trainer import base_embedder  # noqa: E402

CACHE = Path.home() / ".cache" / "guard-offline-train"


def memo(embed):
    """The embedder, each text embedded once across calls."""
    seen: dict[str, np.ndarray] = {}

    def embedded(texts: list[str]) -> np.ndarray:
        todo = [t for t in texts if t not in seen]
        if todo:
            seen.update(zip(todo, embed(todo)))
        return np.stack([seen[t] for t in texts])

    return embedded


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/table_splits.py", description=__doc__.splitlines()[0])
    p.add_argument("table", type=Path, help="a hand-written table (label, kind, lang, prompt, text)")
    p.add_argument("--tables", default="", help="the optional tables the run reads (its --with-tables)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--drop", action="store_true", help="rewrite the table without its rows in existing groups")
    a = p.parse_args(argv)
    optional = tuple(n.strip() for n in a.tables.split(",") if n.strip())
    base = all_examples(CACHE, optional=optional)
    new = handwritten(a.table)
    embed = memo(base_embedder(Network.base()))
    before, after = assign(base, embed, a.seed), assign(base + new, embed, a.seed)
    moved = [(x.example.text, x.split, y.split) for x, y in zip(before, after) if x.split != y.split]
    print(f"existing examples: {len(before)}; moved to another split by the table: {len(moved)}")
    for text, was, now in moved[:20]:
        print(f"  {was} -> {now}: {text[:80]}")
    existing = {y.group for y in after[: len(before)]}
    joined = {(y.example.kind, y.example.prompt, y.example.text) for y in after[len(before) :] if y.group in existing}
    print(f"rows of the table in a group with an existing example: {len(joined)} of {len(new)}")
    if a.drop and joined:
        with a.table.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t")
            columns, rows = reader.fieldnames, list(reader)
        keep = [r for r in rows if (r["kind"], (r.get("prompt") or "").strip(), r["text"].strip()) not in joined]
        with a.table.open("w", encoding="utf-8") as f:
            f.write("\t".join(columns) + "\n" + "".join("\t".join(r[c] for c in columns) + "\n" for r in keep))
        print(f"rewrote {a.table}: {len(keep)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
