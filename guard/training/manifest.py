"""The split examples the offline classifier was trained and evaluated on: guard/data/examples.tsv,
written by `python -m guard.train`, read by `python -m guard.evaluate` and the tests.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from guard.training.dataset import Item
from guard.training.sources import DATA

MANIFEST = DATA / "examples.tsv"
FIELDS = ("split", "group", "label", "kind", "source", "license", "lang", "context", "prompt", "text")


def write_manifest(items: list[Item], path: Path = MANIFEST) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(FIELDS)
        for i in items:
            e = i.example
            context = json.dumps(list(e.context), ensure_ascii=False) if e.context else ""
            w.writerow([i.split, i.group, e.label, e.kind, e.source, e.license, e.lang, context, e.prompt, e.text])


def write_rows(rows: list[dict], path: Path) -> None:
    """Manifest rows (as read_manifest gives them) written back."""
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(FIELDS)
        for r in rows:
            context = json.dumps(list(r["context"]), ensure_ascii=False) if r["context"] else ""
            w.writerow([context if k == "context" else r[k] for k in FIELDS])


def read_manifest(path: Path = MANIFEST) -> list[dict]:
    """The rows, each `context` a list of the earlier turns' texts ([] for none)."""
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for r in rows:
        r["context"] = json.loads(r["context"]) if r.get("context") else []
        r.setdefault("lang", "en")
    return rows
