"""Rank figures of held-out logits (`python -m guard.training.transfer FILE.npz --rank`):
for comparing runs that held out only some families, whose operating points were chosen on
those families alone and so do not compare. Also the per-family table lines that
guard.training.transfer prints."""

from __future__ import annotations

import numpy as np

from guard.offline_model import softmax
from guard.training.families import family
from guard.training.metrics import average_precision, recall_at_fpr

TABLE_COLUMNS = ("n_unsafe", "n_benign", "recall", "fpr", "auprc", "ece")
MIN_CATEGORY = 20  # rows of a category under which its recall says too little to print (--against)


def header(width: int, columns: tuple[str, ...] = TABLE_COLUMNS, cell: int = 10) -> str:
    return f"{'':<{width}}" + "".join(f"{c:>{cell}}" for c in columns)


def figures_line(label: str, m: dict, width: int, columns: tuple[str, ...] = TABLE_COLUMNS, cell: int = 10) -> str:
    """One table row under header(width + 2, columns, cell); '-' where a figure is undefined."""
    return f"  {label:<{width}}" + "".join(f"{'-' if m[c] is None else m[c]:>{cell}}" for c in columns)


def rank_table(oof, against: str | None = None, side: str = "prompt") -> dict:
    """Per held-out family (the rows of one side, prompts by default; both labels present):
    AUPRC; recall at 2%, 5% and 10% FPR, the threshold set on the family's own benign rows
    (on the reply side, replies and refusals); and, where rows share a text under
    both labels (the two-turn pairs), how often an unsafe row scores above its safe twin.
    With `against` (a family), every family's unsafe prompts are ranked against that family's
    benign prompts instead (public harmful against public benign, after a joint fold: the
    closest the data has to harmful and harmless text from sources never trained on).
    Ranks only, so runs that held out only some families (`--folds`) compare: their
    operating point is chosen on those families alone."""
    s, y, out = 1 - softmax(oof.logits)[:, 0], oof.labels() != 0, {}
    fams = [family(r["source"]) for r in oof.rows]
    on_side = oof.sides() == side
    benign = [i for i, f in enumerate(fams) if f == against and on_side[i] and not y[i]]
    for f in sorted(set(fams)):
        ix = [i for i, g in enumerate(fams) if g == f and on_side[i]]
        if against:
            ix = [i for i in ix if y[i]] + benign
        if not y[ix].any() or y[ix].all():  # no family of one label (nor an empty one)
            continue
        twins: dict[str, list[int]] = {}
        for i in ix:
            twins.setdefault(oof.rows[i]["text"], []).append(i)
        wins = [s[u] > s[b] for g in twins.values() for u in g if y[u] for b in g if not y[b]]
        out[f] = {
            "auprc": round(average_precision(y[ix], s[ix]), 3),
            "recall@2%": round(recall_at_fpr(y[ix], s[ix], 0.02), 3),
            "recall@5%": round(recall_at_fpr(y[ix], s[ix], 0.05), 3),
            "recall@10%": round(recall_at_fpr(y[ix], s[ix], 0.10), 3),
            "above twin": round(float(np.mean(wins)), 3) if wins else None,
        }
        if against:  # per category, at the family's 5% FPR threshold (categories of MIN_CATEGORY rows or more)
            labels = [oof.rows[i]["label"] for i in ix]
            out[f]["by category"] = {
                code: round(recall_at_fpr(y[cx], s[cx], 0.05), 3)
                for code in sorted(set(labels) - {"safe"}, key=lambda c: int(c[1:]))
                if labels.count(code) >= MIN_CATEGORY
                for cx in [[i for i in ix if not y[i] or oof.rows[i]["label"] == code]]
            }
    return out


RANK_COLUMNS = ("auprc", "recall@2%", "recall@5%", "recall@10%", "above twin")


def rank_lines(table: dict, against: str | None = None, side: str = "prompt") -> list[str]:
    if against:
        title = f"unsafe {side}s of each held-out family against {against}'s benign {side}s"
    else:
        title = f"held-out families ({side} side), ranks only:"
    lines = [title, header(24, RANK_COLUMNS, 12)]
    for name, m in table.items():
        lines.append(figures_line(name[:22], m, 22, RANK_COLUMNS, 12))
        if m.get("by category"):
            cats = ", ".join(f"{code} {r}" for code, r in m["by category"].items())
            lines.append(f"    recall at 5% FPR by category ({MIN_CATEGORY} rows or more): {cats}")
    return lines
