"""Labelled turns as training examples for the offline classifier
(`python -m moderation.log dataset --out FILE`; `python -m guard.train --with-labels FILE`).

One row per labelled verdict whose turn kept its text, with the ground truth of
moderation.log.calibration (latest operator label), in the format of guard/data's
hand-written tables plus two columns:

    split   label  kind    prompt               text                       turn
    train   S8     prompt                       how much fertilizer ...    3f2c...
    heldout safe   reply   How do I kill a ...  Use `kill -9` on its PID.  9a01...

- a prompt verdict gives a `prompt` row (the visitor's text); a response verdict a
  `reply` row (the reply, with the prompt); a partial verdict gives a `reply` row only
  when truly unsafe (the log keeps the whole reply, not the judged part, and an unsafe
  part makes the whole reply unsafe, while a safe part says nothing of the rest);
- label: `safe`, or the first of the true categories the classifier has (S1..S11);
  a truly unsafe verdict with no such category (none given, a custom one, S12..) is left out;
- split: `heldout` for about HELDOUT_SHARE of the turns (a hash of the turn id, so a turn's
  rows stay together and the same turn is always held out), else `train`. guard.train
  reads only `train` rows; guard.evaluate scores the `heldout` ones before and after.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TextIO

from moderation.log.calibration import Truth, labelled

FIELDS = ("split", "label", "kind", "prompt", "text", "turn")
CLASSIFIER_CODES = tuple(f"S{i}" for i in range(1, 12))  # the offline classifier's categories
HELDOUT_SHARE = 0.2


def split_of(turn_id: str) -> str:
    """'heldout' for about HELDOUT_SHARE of turn ids, else 'train'; the same id, the same split."""
    bucket = int(hashlib.sha256(f"labels:{turn_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "heldout" if bucket < HELDOUT_SHARE else "train"


def _label(truth: Truth) -> str | None:
    if not truth.unsafe:
        return "safe"
    return next((c for c in truth.codes if c in CLASSIFIER_CODES), None)


def rows(records: Iterable[dict], skipped: Counter | None = None) -> Iterator[dict]:
    """The dataset's rows (see the module docstring); `skipped` counts what was left out, and why."""
    skipped = skipped if skipped is not None else Counter()
    for record in records:
        verdicts = [(v, t) for v, t in labelled([record])]
        if verdicts and (record["user_text"] is None or record["reply"] is None):
            skipped["turn kept no text"] += len(verdicts)
            continue
        for verdict, truth in verdicts:
            label, stage = _label(truth), verdict["stage"]
            if label is None:
                skipped["unsafe without a category the classifier has"] += 1
            elif stage == "prompt":
                yield _row(record, label, "prompt", "", record["user_text"])
            elif not record["reply"].strip() or (stage == "partial" and label == "safe"):
                skipped["reply not usable (empty, or a safe partial check)"] += 1
            else:
                yield _row(record, label, "reply", record["user_text"], record["reply"])


def _row(record: dict, label: str, kind: str, prompt: str, text: str) -> dict:
    return {
        "split": split_of(record["id"]),
        "label": label,
        "kind": kind,
        "prompt": " ".join(prompt.split()),
        "text": " ".join(text.split()),
        "turn": record["id"],
    }


def write_dataset(records: Iterable[dict], out: TextIO) -> tuple[Counter, Counter]:
    """Write the rows as TSV; returns (rows per split, skipped per reason)."""
    writer = csv.DictWriter(out, FIELDS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    written, skipped, seen = Counter(), Counter(), set()
    for row in rows(records, skipped):
        key = (row["kind"], row["prompt"], row["text"])
        if key in seen:  # the same text labelled twice (two stages, or two turns): once
            skipped["duplicate text"] += 1
            continue
        seen.add(key)
        writer.writerow(row)
        written[row["split"]] += 1
    return written, skipped
