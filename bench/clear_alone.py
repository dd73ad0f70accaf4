"""How guard.offline.CLEAR_ALONE and the plain reading were chosen: on a split's prompts
read after earlier turns, recall and FPR with a reading without the turns kept from each
bar up (none: the model bare).

    python bench/clear_alone.py [--split validation] [--bars 0.5 0.7 0.8 0.9 0.95] [--json]
                                [--weights FILE --manifest FILE]   # a candidate and its own run's splits

Two readings without the turns, each kept over the reading with them when it reaches the
bar (guard.offline.clear_alone): "plain", the lower median of the prompt read after each
harmless opening turn of guard.offline.OPENERS, as OfflineGuard.check reads it since
2026-12-07 (the bar alone); and "alone", the prompt read by itself (the rule until then;
"bar alone"). Sets of prompts (the committed model, its own operating point, threshold 0.5):
- "in context": the split's prompt rows that have earlier turns (the hand-written
  multi-turn tables and every built in-context row: follow-ups, controls, prompts after a
  benign turn); "multi-turn" is the hand-written part of them;
- "padded k": 300 of the split's prompts without turns (seeded, the same 300 for each k),
  each after k of its harmless turns (guard.training.padded_turns.harmless_turns), as a
  visitor pads;
- "alone follow-ups": where the manifest has them (a model trained with
  `--alone-follow-ups`), the two-turn twins' follow-ups read alone, all safe: how often
  the reading alone flags a follow-up that asks for nothing on its own (left out of the
  padded prompts, so those are the same 300 whatever the model).
For "in context", "twins" reads the same rows as pairs: each unsafe follow-up with a safe
one of the same text and table (the two-turn twins, the built "+follow" pairs), and how
often the pair is told apart (the unsafe one flagged, its control not) or both are flagged.
A reading and bar are good when they keep the padded prompts' recall near their recall
alone and add no false flags in context. Validation by default: they may be chosen on it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the guard package, not bench/guard.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from guard.offline import OfflineGuard, clear_alone  # noqa: E402
from guard.training.dataset import twins  # noqa: E402
from guard.training.in_context import ALONE  # noqa: E402
from guard.training.manifest import MANIFEST, read_manifest  # noqa: E402
from guard.training.metrics import plain_scores, scores  # noqa: E402
from guard.training.padded_turns import TURNS, harmless_turns  # noqa: E402


def rates(rows: list[dict], s: np.ndarray) -> dict:
    y = np.array([r["label"] != "safe" for r in rows])
    return {
        "recall": round(float((s[y] >= 0.5).mean()), 3) if y.any() else None,
        "fpr": round(float((s[~y] >= 0.5).mean()), 3) if (~y).any() else None,
        "n": f"{int(y.sum())}/{int((~y).sum())}",
    }


def twin_rates(rows: list[dict], s: np.ndarray) -> dict:
    """Pairs of rows with the same text and source, one unsafe and one safe (in order, each
    row in one pair at most): the share told apart, and the share with both flagged."""
    pairs = twins([(r["text"], r["source"]) for r in rows], [r["label"] != "safe" for r in rows])
    if not pairs:
        return {}
    flagged = s >= 0.5
    return {
        "twins told apart": round(sum(flagged[u] and not flagged[c] for u, c in pairs) / len(pairs), 3),
        "twins both flagged": round(sum(flagged[u] and flagged[c] for u, c in pairs) / len(pairs), 3),
        "twins": len(pairs),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", default="validation", choices=("validation", "test", "train"))
    p.add_argument("--bars", type=float, nargs="+", default=[0.5, 0.7, 0.8, 0.9, 0.95])
    p.add_argument("--json", action="store_true")
    p.add_argument("--weights", type=Path, help="judge with these weights instead of the committed ones")
    p.add_argument("--manifest", type=Path, default=MANIFEST, help="the split examples (default: the committed)")
    a = p.parse_args(argv)
    net = (OfflineGuard.load(a.weights) if a.weights else OfflineGuard.load()).net
    rows = [r for r in read_manifest(a.manifest) if r["split"] == a.split]
    rng = random.Random(0)
    pool, sets = harmless_turns(rows), {}
    sets["in context"] = [r for r in rows if r["kind"] == "prompt" and r["context"]]
    sets["multi-turn"] = [r for r in sets["in context"] if "+" not in r["source"]]
    single = [r for r in rows if r["kind"] == "prompt" and not r["context"]]
    alone_prompts = rng.sample([r for r in single if not r["source"].endswith(ALONE)], 300)
    for k in TURNS:
        sets[f"padded {k}"] = [
            r | {"context": [t for turn in rng.sample(pool, k) for t in turn]} for r in alone_prompts
        ]
    if follow_ups := [r for r in single if r["source"].endswith(ALONE)]:
        sets["alone follow-ups"] = follow_ups
    out = {}
    for name, chosen in sets.items():
        bare = scores(net, chosen)
        alone = scores(net, [r | {"context": []} for r in chosen])
        plain = bare.copy()
        idx, plain_list = plain_scores(net, chosen)
        plain[idx] = plain_list
        paired = name == "in context"
        out[name] = {"none": rates(chosen, bare) | (twin_rates(chosen, bare) if paired else {})}
        for label, without in (("", plain), (" alone", alone)):
            for bar in a.bars:
                s = np.array([x if clear_alone(b, x, bar) else b for b, x in zip(bare, without)])
                out[name][f"{bar}{label}"] = rates(chosen, s) | (twin_rates(chosen, s) if paired else {})
        out[name]["plain"], out[name]["alone"] = rates(chosen, plain), rates(chosen, alone)
    if a.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"split {a.split}: recall / FPR at threshold 0.5 (unsafe/benign rows)")
    for name, by_bar in out.items():
        print(f"{name} ({by_bar['none']['n']})")
        for bar, m in by_bar.items():
            told, both = m.get("twins told apart"), m.get("twins both flagged")
            twins = f"  twins told apart {told}, both flagged {both}" if "twins" in m else ""
            print(f"  {bar:>10}  recall {m['recall']}  FPR {m['fpr']}{twins}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
