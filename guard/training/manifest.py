"""The split examples the offline classifier was trained and evaluated on: guard/data/examples.tsv,
written by `python -m guard.train`, read by `python -m guard.evaluate` and the tests.
"""

from __future__ import annotations

import csv
from pathlib import Path

from guard.training.dataset import Item
from guard.training.sources import DATA

MANIFEST = DATA / "examples.tsv"
FIELDS = ("split", "group", "label", "kind", "source", "license", "prompt", "text")


def write_manifest(items: list[Item], path: Path = MANIFEST) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(FIELDS)
        for i in items:
            e = i.example
            w.writerow([i.split, i.group, e.label, e.kind, e.source, e.license, e.prompt, e.text])


def read_manifest(path: Path = MANIFEST) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))
