"""Two-turn scenes (guard/data/multiturn_scenes.tsv and multiturn_objects.tsv, read with
`python -m guard.train --with-tables scenes,objects`): many first turns before the same two
follow-ups, which read harmless alone. After each of a scene's three harmful first turns a
follow-up carries the scene's label; after each of its three benign ones it is safe. So only
the first turn tells the rows apart, and many first turns share one follow-up.

- multiturn_scenes.tsv: one question and its answer under six framings (the first user
  turn is a framing, a space, the question): three show an intent to harm, three an
  ordinary purpose.
- multiturn_objects.tsv: six questions about what a thing is, each with its own answer:
  three harmful things (a weapon, an evasion, a scam) and three harmless things with the same
  kind of use, so the follow-up ("ok, how do I get around it?") is harmful after the first.

A scene is one item (guard.training.dataset.assign keeps it in one split).
"""

from __future__ import annotations

import csv
from pathlib import Path

from guard.training.sources import SCENES, Example

SIDES = ("harmful", "benign")


def first_turn(row: dict, side: str, n: int) -> tuple[str, str]:
    """The first user turn and its answer, for the scene's n-th first turn of one side."""
    if "question" in row:
        return f"{row[f'{side}_{n}'].strip()} {row['question'].strip()}", row["answer"].strip()
    return row[f"{side}_question_{n}"].strip(), row[f"{side}_answer_{n}"].strip()


def scenes(path: Path = SCENES) -> list[Example]:
    """Each follow-up of each scene after each of its six first turns, as prompts."""
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [
        Example(
            row[f"follow_up_{k}"].strip(),
            row["label"] if side == "harmful" else "safe",
            "prompt",
            f"handwritten ({path.stem})",
            "CC0-1.0",
            context=first_turn(row, side, n),
            lang=row["lang"],
            item=row["scene"],
        )
        for row in rows
        for k in (1, 2)
        for side in SIDES
        for n in (1, 2, 3)
    ]
