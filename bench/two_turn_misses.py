"""Where the offline guard misses two-turn requests (docs/offline-classifier.md, "Where the
held-out misses are"). Two looks, neither a figure of merit nor a choice of anything:

    python bench/two_turn_misses.py held FILE.npz [SOURCE]
        # from a --transfer out-of-fold file: a two-turn table's controls that score highest
        # and its in-context rows that score lowest (default: handwritten (multiturn))
    python bench/two_turn_misses.py joined
        # the committed model on its validation two-turn pairs: flagged with the turns read
        # as they are, with the previous user turn joined to the follow-up, and the worse
    python bench/two_turn_misses.py carry
        # the committed model on every validation prompt after earlier turns: flagged as
        # checked, and with a lower bar for a follow-up when an earlier user turn read alone
        # scored high (a run-time rule that was looked at, not built)
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the guard package, not bench/guard.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from guard.offline_model import softmax  # noqa: E402
from guard.training.manifest import MANIFEST  # noqa: E402
from guard.training.transfer import OutOfFold  # noqa: E402


def held(path: str, source: str = "handwritten (multiturn)", shown: int = 12) -> None:
    oof = OutOfFold.load(path)
    s = 1 - softmax(oof.logits)[:, 0]
    idx = [i for i, r in enumerate(oof.rows) if r["source"] == source]
    y = np.array([oof.rows[i]["label"] != "safe" for i in idx])
    scores = s[idx]
    order = sorted(range(len(idx)), key=lambda k: -scores[k])
    print(f"{source}: {int(y.sum())} in context, {int((~y).sum())} controls")
    print("--- controls scoring highest")
    for k in [k for k in order if not y[k]][:shown]:
        r = oof.rows[idx[k]]
        print(f"{scores[k]:.3f}  {r['context'][0][:90]} || {r['text'][:80]}")
    print("--- in-context rows scoring lowest")
    for k in [k for k in order if y[k]][-shown:]:
        r = oof.rows[idx[k]]
        print(f"{scores[k]:.3f} {r['label']:>4}  {r['context'][0][:90]} || {r['text'][:80]}")


def _validation_in_context(two_turn_only: bool) -> list[dict]:
    """The validation prompts of the manifest read after earlier turns (the hand-written
    two-turn rows only, or every one, built rows included)."""
    csv.field_size_limit(10**9)
    with open(MANIFEST, encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["split"] == "validation" and r["context"]]
    if two_turn_only:
        return [r for r in rows if r["source"].startswith("handwritten (multiturn")]
    return [r for r in rows if r["kind"] == "prompt"]


def _kind(source: str) -> str:
    if "multiturn" in source:
        return "two-turn tables"
    return next((f"{mark} rows" for mark in ("+follow", "+after", "+turn") if mark in source), "other")


def carry() -> None:
    from guard.offline import OfflineGuard
    from guard.policy import Policy

    guard, policy = OfflineGuard.load(), Policy()
    alone = {}

    def score_alone(text: str) -> float:
        if text not in alone:
            alone[text] = guard.check([{"role": "user", "content": text}], policy).score
        return alone[text]

    found = []
    for r in _validation_in_context(two_turn_only=False):
        turns = json.loads(r["context"])
        conversation = [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(turns)]
        checked = guard.check(conversation + [{"role": "user", "content": r["text"]}], policy).score
        earlier = max(score_alone(t) for t in turns[::2])
        found.append((_kind(r["source"]), r["label"] != "safe", checked, earlier))
    rules = {"as checked": lambda s, e: s >= 0.5}
    for a in (0.2, 0.3, 0.5):
        for b in (0.05, 0.1, 0.2, 0.3):
            rules[f"or >= {b} after a turn >= {a}"] = lambda s, e, a=a, b=b: s >= 0.5 or (e >= a and s >= b)
    kinds = sorted({k for k, *_ in found})
    print("flagged, unsafe / benign (n), per kind of row: " + ", ".join(kinds))
    for name, rule in rules.items():
        cells = []
        for kind in kinds:
            here = [(u, rule(s, e)) for k, u, s, e in found if k == kind]
            cells += [_share([f for u, f in here if u]) + " / " + _share([f for u, f in here if not u])]
        print(f"{name:28s} " + "   ".join(cells))


def _share(flags: list[bool]) -> str:
    return f"{np.mean(flags):.3f} ({len(flags)})" if flags else "- (0)"


def joined() -> None:
    from guard.offline import OfflineGuard
    from guard.policy import Policy

    guard, policy = OfflineGuard.load(), Policy()
    rows = _validation_in_context(two_turn_only=True)
    found = []
    for r in rows:
        turns = json.loads(r["context"])
        conversation = [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(turns)]
        as_read = guard.check(conversation + [{"role": "user", "content": r["text"]}], policy).score
        one = " ".join([turns[-2], r["text"]])  # the previous user turn, then the follow-up
        joined_score = guard.check([{"role": "user", "content": one}], policy).score
        found.append((r["label"] != "safe", as_read, joined_score))
    y = np.array([u for u, _, _ in found])
    a, b = np.array([x for _, x, _ in found]), np.array([x for _, _, x in found])
    print(f"validation two-turn rows: {int(y.sum())} in context, {int((~y).sum())} controls")
    for name, s in (("turns as read", a), ("previous turn joined", b), ("the worse of the two", np.maximum(a, b))):
        print(f"{name:22s} in context flagged {np.mean(s[y] >= 0.5):.3f}, controls flagged {np.mean(s[~y] >= 0.5):.3f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["held"] and len(sys.argv) in (3, 4):
        held(*sys.argv[2:])
    elif sys.argv[1:] == ["joined"]:
        joined()
    elif sys.argv[1:] == ["carry"]:
        carry()
    else:
        sys.exit(__doc__)
