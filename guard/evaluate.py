"""python -m guard.evaluate: the offline classifier's standard metrics on one split.

    python -m guard.evaluate                       # validation split, table
    python -m guard.evaluate --split test --json   # the test split (once per committed model)
    python -m guard.evaluate --split sample        # every 10th test example (what CI checks)
    python -m guard.evaluate --split test --write-figures   # also update guard/data/offline_figures.json

Reads guard/data/examples.tsv (written by `python -m guard.train`) and the committed model,
and judges every example the way OfflineGuard.check does (normalised text, every window).
Per side (prompt, reply) and per source: precision, recall and F1 at the threshold (0.5,
Llama Guard's default), AUPRC, recall at 1% and 5% FPR (the threshold that lets that share
of benign examples through), over-refusal on benign-edgy prompts (benign prompts with
words of harm, see guard.training.dataset.benign_edgy), per-category recall with n, and
the median latency of OfflineGuard.check on 50 of the split's prompts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from guard.normalize import guard_text
from guard.offline import OfflineGuard, window_probabilities
from guard.offline_model import CLASSES, Network
from guard.taxonomy import LLAMA_GUARD_2
from guard.training.categories import categorize

FIGURES = Path(__file__).resolve().parent / "data" / "offline_figures.json"
ALL = {c.code for c in LLAMA_GUARD_2}


def scores(net: Network, rows: list[dict]) -> np.ndarray:
    """The score (1 - p(safe) of the worst window) of each manifest row, batched."""
    out = np.zeros(len(rows))
    for side in ("prompt", "reply"):
        idx = [i for i, r in enumerate(rows) if (r["kind"] == "prompt") == (side == "prompt")]
        if side == "prompt":
            inputs = [net.prompt_inputs(guard_text(rows[i]["text"])) for i in idx]
        else:
            inputs = [net.reply_inputs(net.context(guard_text(rows[i]["prompt"])), guard_text(rows[i]["text"]))
                      for i in idx]
        for i, p in zip(idx, window_probabilities(net, inputs, side)):
            out[i] = float((1 - p[:, 0]).max())
    return out


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """AUPRC as average precision (the area under the step precision-recall curve)."""
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="stable")
    hits = y[order].astype(float)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def recall_at_fpr(y: np.ndarray, s: np.ndarray, fpr: float) -> float:
    """Recall with the threshold set so that at most `fpr` of the benign examples pass it."""
    benign = np.sort(s[~y])[::-1]
    if not len(benign) or not y.any():
        return float("nan")
    allowed = int(np.floor(fpr * len(benign)))
    cut = benign[allowed] if allowed < len(benign) else -np.inf
    return float((s[y] > cut).mean())


def metrics(y: np.ndarray, s: np.ndarray, threshold: float) -> dict:
    flagged = s >= threshold
    tp, fp = int((flagged & y).sum()), int((flagged & ~y).sum())
    precision = tp / max(tp + fp, 1)
    recall = tp / max(int(y.sum()), 1)
    return {"n_unsafe": int(y.sum()), "n_benign": int((~y).sum()), "precision": round(precision, 3),
            "recall": round(recall, 3), "f1": round(2 * precision * recall / max(precision + recall, 1e-9), 3),
            "fpr": round(fp / max(int((~y).sum()), 1), 3), "auprc": round(average_precision(y, s), 3),
            "recall_at_1pct_fpr": round(recall_at_fpr(y, s, 0.01), 3),
            "recall_at_5pct_fpr": round(recall_at_fpr(y, s, 0.05), 3)}


def evaluate_rows(net: Network, rows: list[dict], threshold: float = 0.5) -> dict:
    """Every figure the module docstring lists, for one set of manifest rows."""
    s = scores(net, rows)
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
        part["per_category_recall"] = {
            c: {"n": int(sum(rows[i]["label"] == c for i in idx)),
                "recall": round(float(np.mean([s[i] >= threshold for i in idx if rows[i]["label"] == c])), 3)}
            for c in CLASSES[1:] if any(rows[i]["label"] == c for i in idx)}
        part["per_source"] = {src: metrics(y[ix], s[ix], threshold) for src in sorted({rows[i]["source"] for i in idx})
                              for ix in [np.array([i for i in idx if rows[i]["source"] == src])]}
        result[side] = part
    return result


def report_validation(net: Network, items) -> float:
    """During training: print validation recall/FPR/AUPRC per side; return mean AUPRC."""
    rows = [{"kind": i.example.kind, "label": i.example.label, "text": i.example.text, "prompt": i.example.prompt,
             "source": i.example.source} for i in items]
    s, y = scores(net, rows), np.array([r["label"] != "safe" for r in rows])
    auprcs = []
    for side in ("prompt", "reply"):
        idx = np.array([i for i, r in enumerate(rows) if (r["kind"] == "prompt") == (side == "prompt")], dtype=int)
        if len(idx) and y[idx].any() and (~y[idx]).any():
            m = metrics(y[idx], s[idx], 0.5)
            auprcs.append(m["auprc"])
            print(f"  validation {side}: recall {m['recall']:.3f}, FPR {m['fpr']:.3f}, AUPRC {m['auprc']:.3f}, "
                  f"recall@5%FPR {m['recall_at_5pct_fpr']:.3f}", flush=True)
    return float(np.mean(auprcs)) if auprcs else 0.0


def median_latency_ms(guard: OfflineGuard, rows: list[dict], n: int = 50) -> float:
    prompts = [r["text"] for r in rows if r["kind"] == "prompt"][:n]
    times = []
    for text in prompts:
        started = time.perf_counter()
        guard.check([{"role": "user", "content": text}])
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1) if times else float("nan")


def select(rows: list[dict], split: str) -> list[dict]:
    if split == "sample":
        return [r for r in rows if r["split"] == "test"][::10]
    return [r for r in rows if r["split"] == split]


def table(result: dict) -> list[str]:
    cols = ("n_unsafe", "n_benign", "precision", "recall", "f1", "fpr", "auprc", "recall_at_1pct_fpr",
            "recall_at_5pct_fpr")
    lines = [f"{'':<44}" + "".join(f"{c.replace('recall_at_', 'R@').replace('pct_fpr', '%'):>10}" for c in cols)]
    for side in ("prompt", "reply"):
        if side not in result:
            continue
        part = result[side]
        lines.append(f"{side + ' side (all)':<44}" + "".join(f"{part[c]:>10}" for c in cols))
        for src, m in part["per_source"].items():
            lines.append(f"  {src[:42]:<42}" + "".join(f"{m[c]:>10}" for c in cols))
        if side == "prompt":
            lines.append(f"  over-refusal on benign-edgy prompts: {part['over_refusal_benign_edgy']} "
                         f"(n {part['benign_edgy_n']})")
        lines.append("  per-category recall: " + ", ".join(f"{c} {v['recall']} (n {v['n']})"
                                                          for c, v in part["per_category_recall"].items()))
    lines.append(f"median latency of a prompt check: {result['median_latency_ms']} ms")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--split", choices=("validation", "test", "sample", "train"), default="validation")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--write-figures", action="store_true", help=f"store the result in {FIGURES.name}")
    a = p.parse_args(argv)
    from guard.train import read_manifest

    import torch

    rows = select(read_manifest(), a.split)
    guard = OfflineGuard.load()
    result = {"split": a.split, "threshold": a.threshold, "torch_threads": torch.get_num_threads(),
              **evaluate_rows(guard.net, rows, a.threshold)}
    result["median_latency_ms"] = median_latency_ms(guard, rows)
    if a.write_figures:
        figures = json.loads(FIGURES.read_text()) if FIGURES.is_file() else {}
        figures[a.split] = result
        FIGURES.write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(result, indent=1) if a.json else "\n".join([f"split: {a.split}"] + table(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
