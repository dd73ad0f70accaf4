"""The offline classifier's figures on manifest rows: scores judged the way
OfflineGuard.check judges (normalised text, every window), AUPRC, recall at a false
positive rate, and the per-side, per-source and per-category tables built from them.
Used by training (validation) and by `python -m guard.evaluate`.
"""

from __future__ import annotations

import numpy as np

from guard.normalize import guard_text
from guard.offline import OPEN_FROM, OPENERS, clear_alone, opened_inputs, plain_reading, reading, window_probabilities
from guard.offline_model import CLASSES, Network
from guard.training.categories import categorize

LONG_WORDS = 150  # a prompt of more words is counted apart as a long (pasted) text


def turns(net: Network, row: dict) -> list[int] | None:
    """A prompt row's turn context, as OfflineGuard reads it (None for weights that read
    the prompt alone)."""
    return net.prompt_context([guard_text(t) for t in row.get("context") or ()])


def inputs_of(net: Network, rows: list[dict], side: str, contexts: list | None = None) -> list[list]:
    """The window inputs OfflineGuard.check reads for each row of one side (a prompt row's
    turn context from `contexts` where given, else from turns())."""
    if side == "prompt":
        contexts = [turns(net, r) for r in rows] if contexts is None else contexts
        return [net.prompt_inputs(guard_text(r["text"]), c) for r, c in zip(rows, contexts)]
    return [net.reply_inputs(net.context(guard_text(r["prompt"])), guard_text(r["text"])) for r in rows]


def scores(net: Network, rows: list[dict], as_checked: bool = False) -> np.ndarray:
    """The score (1 - p(safe) of the worst window) of each manifest row, batched.
    `as_checked`: a prompt after earlier turns also read after plain openings, the reading
    kept as OfflineGuard.check keeps it (guard.offline.clear_alone); training reads the
    model bare."""
    out = np.zeros(len(rows))
    contexts = [turns(net, r) if r["kind"] == "prompt" else None for r in rows]  # tokenized once
    for side in ("prompt", "reply"):
        idx = [i for i, r in enumerate(rows) if (r["kind"] == "prompt") == (side == "prompt")]
        inputs = inputs_of(net, [rows[i] for i in idx], side, [contexts[i] for i in idx])
        readings = [reading(side == "prompt", contexts[i]) for i in idx]
        for i, p in zip(idx, window_probabilities(net, inputs, readings)):
            out[i] = float((1 - p[:, 0]).max())
    if as_checked:
        for i, score in zip(*plain_scores(net, rows, contexts)):
            if clear_alone(out[i], score):
                out[i] = score
    return out


def plain_scores(net: Network, rows: list[dict], contexts: list | None = None) -> tuple[list[int], list[float]]:
    """(indices, scores): each prompt row with earlier turns that scores OPEN_FROM or more
    alone, and its plain reading (the lower median after guard.offline.OPENERS), as
    OfflineGuard.check reads it."""
    contexts = contexts if contexts is not None else [r.get("context") for r in rows]
    idx = [i for i, r in enumerate(rows) if r["kind"] == "prompt" and contexts[i]]
    alone = [net.prompt_inputs(guard_text(rows[i]["text"]), None) for i in idx]
    alone_scores = [float((1 - p[:, 0]).max()) for p in window_probabilities(net, alone, "prompt")]
    idx = [i for i, a in zip(idx, alone_scores) if a >= OPEN_FROM]  # the openers are read for these only
    per = len(OPENERS)
    flat = [x for i in idx for x in opened_inputs(net, guard_text(rows[i]["text"]))]
    worst = [float((1 - p[:, 0]).max()) for p in window_probabilities(net, flat, "prompt")]
    groups = [worst[j * per : (j + 1) * per] for j in range(len(idx))]
    return idx, [g[plain_reading(g)] for g in groups]


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """AUPRC as average precision (the area under the step precision-recall curve)."""
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="stable")
    hits = y[order].astype(float)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def threshold_at_fpr(y: np.ndarray, s: np.ndarray, fpr: float) -> float:
    """The lowest threshold t (flagged: s >= t) at which at most `fpr` of the benign
    examples are flagged."""
    benign = np.sort(s[~y])[::-1]
    allowed = int(np.floor(fpr * len(benign)))
    return float(np.nextafter(benign[allowed], np.inf)) if allowed < len(benign) else -np.inf


def recall_at_fpr(y: np.ndarray, s: np.ndarray, fpr: float) -> float:
    """Recall with the threshold set so that at most `fpr` of the benign examples pass it."""
    if not (~y).any() or not y.any():
        return float("nan")
    return float((s[y] >= threshold_at_fpr(y, s, fpr)).mean())


def ece(s: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the unsafe probability: the bin-weighted gap between
    the mean score and the share of unsafe rows, over `bins` equal-width bins."""
    if not len(s):
        return float("nan")
    which = np.minimum((s * bins).astype(int), bins - 1)
    return float(sum(abs(s[which == b].mean() - y[which == b].mean()) * (which == b).mean() for b in set(which)))


def metrics(y: np.ndarray, s: np.ndarray, threshold: float) -> dict:
    flagged = s >= threshold
    tp, fp = int((flagged & y).sum()), int((flagged & ~y).sum())
    precision = tp / max(tp + fp, 1)
    recall = tp / max(int(y.sum()), 1)
    return {
        "n_unsafe": int(y.sum()),
        "n_benign": int((~y).sum()),
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(2 * precision * recall / max(precision + recall, 1e-9), 3),
        "fpr": round(fp / max(int((~y).sum()), 1), 3),
        "auprc": round(average_precision(y, s), 3),
        "recall_at_1pct_fpr": round(recall_at_fpr(y, s, 0.01), 3),
        "recall_at_5pct_fpr": round(recall_at_fpr(y, s, 0.05), 3),
        "ece": round(ece(s, y.astype(float)), 3),
    }


def in_context(rows: list[dict], s: np.ndarray, idx, threshold: float) -> dict | None:
    """The hand-written multi-turn pairs: the share of follow-ups flagged after the turn
    that makes them harmful, and after the harmless turn (the controls)."""
    pairs = [i for i in idx if rows[i].get("context") and rows[i]["source"].startswith("handwritten (multiturn)")]
    harmful = [i for i in pairs if rows[i]["label"] != "safe"]
    controls = [i for i in pairs if rows[i]["label"] == "safe"]
    if not harmful or not controls:
        return None
    return {
        "n_pairs": min(len(harmful), len(controls)),
        "in_context_flagged": round(float((s[harmful] >= threshold).mean()), 3),
        "controls_flagged": round(float((s[controls] >= threshold).mean()), 3),
    }


def per_language(rows: list[dict], y: np.ndarray, s: np.ndarray, idx, threshold: float) -> dict:
    """Recall and FPR per language of the hand-written multilingual prompts (and English)."""
    out = {}
    for lang in sorted({rows[i].get("lang", "en") for i in idx}):
        ix = np.array([i for i in idx if rows[i].get("lang", "en") == lang], dtype=int)
        yy, ss = y[ix], s[ix]
        out[lang] = {
            "n_unsafe": int(yy.sum()),
            "n_benign": int((~yy).sum()),
            "recall": round(float((ss[yy] >= threshold).mean()), 3) if yy.any() else None,
            "fpr": round(float((ss[~yy] >= threshold).mean()), 3) if (~yy).any() else None,
        }
    return out


def long_prompts(rows: list[dict], y: np.ndarray, s: np.ndarray, idx, threshold: float) -> dict | None:
    """How the prompts of over LONG_WORDS words fare (a pasted text with its request):
    harmful ones flagged, harmless ones flagged; None when there are none."""
    ix = np.array([i for i in idx if len(rows[i]["text"].split()) > LONG_WORDS], dtype=int)
    if not len(ix):
        return None
    yy, flagged = y[ix], s[ix] >= threshold
    return {
        "n_unsafe": int(yy.sum()),
        "n_benign": int((~yy).sum()),
        "unsafe_flagged": int(flagged[yy].sum()),
        "benign_flagged": int(flagged[~yy].sum()),
    }


def evaluate_rows(net: Network, rows: list[dict], threshold: float = 0.5) -> dict:
    """Every figure the module docstring lists, for one set of manifest rows."""
    s = scores(net, rows, as_checked=True)
    y = np.array([r["label"] != "safe" for r in rows])
    result = {}
    for side in ("prompt", "reply"):
        idx = np.array([i for i, r in enumerate(rows) if (r["kind"] == "prompt") == (side == "prompt")], dtype=int)
        if not len(idx):
            continue
        part = metrics(y[idx], s[idx], threshold)
        if side == "prompt":
            edgy = [i for i in idx if rows[i]["label"] == "safe" and categorize(rows[i]["text"]) is not None]
            part["benign_edgy_n"] = len(edgy)
            part["over_refusal_benign_edgy"] = round(float((s[edgy] >= threshold).mean()), 3) if edgy else None
            part["multi_turn"] = in_context(rows, s, idx, threshold)
            part["per_language"] = per_language(rows, y, s, idx, threshold)
            part["long"] = long_prompts(rows, y, s, idx, threshold)
        part["per_category_recall"] = {
            c: {
                "n": int(sum(rows[i]["label"] == c for i in idx)),
                "recall": round(float(np.mean([s[i] >= threshold for i in idx if rows[i]["label"] == c])), 3),
            }
            for c in CLASSES[1:]
            if any(rows[i]["label"] == c for i in idx)
        }
        part["per_source"] = {
            src: metrics(y[ix], s[ix], threshold)
            for src in sorted({rows[i]["source"] for i in idx})
            for ix in [np.array([i for i in idx if rows[i]["source"] == src])]
        }
        result[side] = part
    return result


def row(item) -> dict:
    """A split item as a manifest row (what scores() and evaluate_rows() read)."""
    e = item.example
    return {
        "split": item.split,
        "group": item.group,
        "kind": e.kind,
        "label": e.label,
        "text": e.text,
        "prompt": e.prompt,
        "source": e.source,
        "license": e.license,
        "context": list(e.context),
        "lang": e.lang,
    }


def report_validation(net: Network, items) -> float:
    """During training: print validation recall/FPR/AUPRC per side; return mean AUPRC."""
    rows = [row(i) for i in items]
    s, y = scores(net, rows), np.array([r["label"] != "safe" for r in rows])
    auprcs = []
    for side in ("prompt", "reply"):
        idx = np.array([i for i, r in enumerate(rows) if (r["kind"] == "prompt") == (side == "prompt")], dtype=int)
        if len(idx) and y[idx].any() and (~y[idx]).any():
            m = metrics(y[idx], s[idx], 0.5)
            auprcs.append(m["auprc"])
            print(
                f"  validation {side}: recall {m['recall']:.3f}, FPR {m['fpr']:.3f}, AUPRC {m['auprc']:.3f}, "
                f"recall@5%FPR {m['recall_at_5pct_fpr']:.3f}",
                flush=True,
            )
    return float(np.mean(auprcs)) if auprcs else 0.0
