"""Fine-tuning the offline classifier: the example weights, the top-layer trainer over
cached lower-layer outputs, the temperature fit and the operating point chosen on
validation (guard.training.train runs them in order).
"""

from __future__ import annotations

import random
import time

import numpy as np
import torch  # training computes with it throughout

from guard.offline_model import CLASSES, CONTEXT, WINDOW, Network, pad, softmax
from guard.training.cuts import long_cuts
from guard.training.dataset import (
    Item,
    benign_edgy,
    drifting_replies,
    framed,
    long_prompts,
    pairs,
    twins,
)
from guard.training.encoder import SentenceEncoder
from guard.training.in_context import alone_follow_ups, in_context
from guard.training.metrics import row, scores
from guard.training.shapes import reshaped

MAX_VALIDATION_FPR = 0.03  # the targets allow 0.05: the rest is margin for unseen data


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


def emphasised(weights: np.ndarray, sides: list[str], emphasis: np.ndarray) -> np.ndarray:
    """Each row's weight times its emphasis, rescaled per side to the side's old total: the
    emphasised rows take a larger share of their side's loss, and the loss keeps its scale."""
    out = weights * emphasis
    for side in set(sides):
        idx = np.array([i for i, s in enumerate(sides) if s == side])
        total = out[idx].sum()
        if total > 0:
            out[idx] *= weights[idx].sum() / total
    return out


def twin_pairs(items: list[Item]) -> list[tuple[int, int]]:
    """(unsafe, safe) index pairs of prompts read after earlier turns that share their text:
    the same follow-up after a harmful and after a harmless start (the two-turn tables'
    twins, and in_context's built pairs). Within one text, unsafe and safe rows are paired
    in order, so each row is in one pair at most (the tables list a pair's rows together)."""
    examples = [i.example for i in items]
    return twins([e.text if e.kind == "prompt" and e.context else None for e in examples], [e.unsafe for e in examples])


def unsafe_log_odds(logits: torch.Tensor) -> torch.Tensor:
    """Per row, log P(any unsafe class) - log P(safe): the score's logit, before temperature
    and offset (CLASSES[0] is "safe")."""
    return torch.logsumexp(logits[:, 1:], dim=1) - logits[:, 0]


def pair_loss(unsafe: torch.Tensor, safe: torch.Tensor) -> torch.Tensor:
    """The logistic ranking loss of twins' logits: log(1 + e^-(u - s)) per pair, u and s
    their unsafe log-odds; log 2 when the model cannot tell the two apart, near 0 when the
    unsafe twin scores far above the safe one."""
    return torch.nn.functional.softplus(unsafe_log_odds(safe) - unsafe_log_odds(unsafe)).mean()


def derived(
    items: list[Item], seed: int, most_turns: int = 1, alone: bool = False, shapes: bool = False, cuts: bool = False
) -> list[Item]:
    """The prompts of split items with everything built from them inside each split:
    framed, long and in-context prompts (after up to `most_turns` benign turns), with
    `alone` the two-turn twins' follow-ups read alone (safe), with `shapes` requests written
    once more in another shape (guard.training.shapes), with `cuts` pieces of the long
    prompts cut at any word (guard.training.cuts.long_cuts), and the reply side's
    pairs and drifting replies."""
    prompts = [i for i in items if i.example.kind == "prompt"]
    frames = framed(prompts, seed)
    turns = in_context(items, seed, most_turns=most_turns)
    longs = long_prompts(items, seed)
    return (
        prompts
        + frames
        + longs
        + (long_cuts(longs, seed, prompts) if cuts else [])
        + turns
        + (alone_follow_ups(prompts + turns) if alone else [])
        + (reshaped(prompts, seed) if shapes else [])
        + pairs(items + frames, seed)
        + drifting_replies(items, seed)
    )


def training_inputs(net: Network, item: Item) -> tuple[list[int], list[int]]:
    """One (ids, types) input per example, cut to the full WINDOW whatever the judging
    window (training only: prediction judges every window, see guard.offline_model)."""
    e = item.example
    if e.kind == "prompt":
        return net.prompt_inputs(e.text, net.turn_context(list(e.context)), WINDOW)[0]
    return net.reply_inputs(net.ids(e.prompt)[:CONTEXT], e.text, WINDOW)[0]


class Trainer:
    """Top-layer fine-tuning with the frozen lower layers' outputs cached."""

    def __init__(self, net: Network, seed: int, lr: float, batch: int):
        self.net, self.seed, self.lr, self.batch = net, seed, lr, batch
        model = net.model
        first = model.config.num_hidden_layers - net.tuned
        self.layers = torch.nn.ModuleList(model.encoder.layer[first:])
        self.lower = torch.nn.ModuleList(model.encoder.layer[:first])
        self.dropout = torch.nn.Dropout(0.1)

    def cache(self, inputs: list[tuple[list[int], list[int]]]):
        """The frozen lower layers' output per input (a list of (len, hidden) tensors)."""
        model, out = self.net.model, []
        full = model.encoder.layer
        model.encoder.layer = self.lower
        try:
            with torch.inference_mode():
                order = sorted(range(len(inputs)), key=lambda i: len(inputs[i][0]))
                hidden = [None] * len(inputs)
                for start in range(0, len(order), 64):
                    chunk = order[start : start + 64]
                    batch = [inputs[i] for i in chunk]
                    ids, types, mask = pad(batch)
                    h = model(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
                    for row, i in enumerate(chunk):
                        hidden[i] = h[row, : len(inputs[i][0])].clone()
                out = hidden
        finally:
            model.encoder.layer = full
        return out

    def upper(self, hidden, mask, pool=None):
        """The tuned layers over cached states; the output mean-pooled over `pool` (default: mask)."""
        extended = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        h = hidden
        for layer in self.layers:
            h = layer(h, attention_mask=extended)
        m = (mask if pool is None else pool).unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)

    def fit(
        self,
        hidden,
        sides,
        y,
        epochs: int,
        on_epoch=None,
        pairs=(),
        pair_weight: float = 0.0,
        starts=None,
        emphasis=None,
    ) -> None:
        """Cross-entropy over both sides' batches; with `pair_weight`, also batches of the
        prompt side's `pairs` (twin_pairs), whose loss is pair_weight * pair_loss. `starts`
        (per row, guard.offline_model.text_start of its input) is needed when the network
        pools a prompt's own pieces (Network.pool_text). `emphasis` (per row, default 1)
        multiplies a row's weight within its side (emphasised)."""
        if self.net.pool_text and starts is None:
            raise ValueError("a network that pools the prompt's own pieces needs each row's text start")
        self.starts = starts
        torch.manual_seed(self.seed)
        rng = random.Random(self.seed)
        weights = np.zeros(len(y))
        for side in ("prompt", "reply"):
            idx = np.array([i for i, s in enumerate(sides) if s == side])
            if len(idx):
                weights[idx] = example_weights(y[idx])
        if emphasis is not None:
            weights = emphasised(weights, sides, np.asarray(emphasis, dtype=np.float64))
        groups = {}
        for side in ("prompt", "reply"):
            idx = sorted((i for i, s in enumerate(sides) if s == side), key=lambda i: len(hidden[i]))
            groups[side] = [idx[s : s + self.batch] for s in range(0, len(idx), self.batch)]
        if pair_weight and pairs:
            pairs = sorted(pairs, key=lambda p: max(len(hidden[p[0]]), len(hidden[p[1]])))
            half = max(1, self.batch // 2)
            groups["pairs"] = [pairs[s : s + half] for s in range(0, len(pairs), half)]
        batches = [(side, b) for side, bs in groups.items() for b in bs]
        params = [
            {"params": self.layers.parameters(), "lr": self.lr},
            {
                "params": list(self.net.prompt_head.parameters()) + list(self.net.reply_head.parameters()),
                "lr": self.lr * 20,
            },
        ]
        opt = torch.optim.AdamW(params, weight_decay=0.01)
        total = epochs * len(batches)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / (0.06 * total)) * max(0.0, (total - s) / total)
        )
        for epoch in range(epochs):
            rng.shuffle(batches)
            self.layers.train()
            started, seen = time.perf_counter(), 0.0
            for step, (side, b) in enumerate(batches):
                if step and step % 100 == 0:
                    print(f"  step {step}/{len(batches)} ({time.perf_counter() - started:.0f} s)", flush=True)
                rows = [u for u, _ in b] + [s for _, s in b] if side == "pairs" else b
                logits = self.logits(hidden, rows, "reply" if side == "reply" else "prompt")
                if side == "pairs":
                    loss = pair_weight * pair_loss(logits[: len(b)], logits[len(b) :])
                else:
                    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y[b]), reduction="none")
                    loss = (loss * torch.tensor(weights[b], dtype=loss.dtype)).mean()
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.layers.parameters(), 1.0)
                opt.step()
                sched.step()
                seen += loss.item()
            self.layers.eval()
            print(
                f"epoch {epoch + 1}/{epochs}: mean loss {seen / len(batches):.4f} "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
            if on_epoch:
                on_epoch(epoch)

    def logits(self, hidden, rows: list[int], side: str) -> torch.Tensor:
        """The head's logits for cached rows, through the tuned layers (dropout on)."""
        width = max(len(hidden[i]) for i in rows)
        h = torch.zeros(len(rows), width, hidden[rows[0]].shape[-1])
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for r, i in enumerate(rows):
            h[r, : len(hidden[i])], mask[r, : len(hidden[i])] = hidden[i], 1
        pool = None
        if side == "prompt" and self.net.pool_text:  # as Network.pooled(text_only=True): after the context
            pool = mask.clone()
            for r, i in enumerate(rows):
                pool[r, : self.starts[i]] = 0
        head = self.net.prompt_head if side == "prompt" else self.net.reply_head
        return head(self.dropout(self.upper(h, mask, pool)))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises validation negative log-likelihood (grid search)."""
    best = (np.inf, 1.0)
    for t in np.exp(np.linspace(np.log(0.2), np.log(5), 200)):
        p = softmax(logits, float(t))
        best = min(best, (-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-12))), float(t)))
    return best[1]


def choose_offsets(net: Network, val: list[Item]) -> tuple[float, float]:
    """Per side, the operating point: the lowest score threshold t (as an offset log(t/(1-t))
    on the "safe" logit, so the verdict threshold stays 0.5) at which the validation FPR is
    at most MAX_VALIDATION_FPR and, on the prompt side, over-refusal on benign-edgy
    prompts is too. Scored the way OfflineGuard.check scores (every window)."""
    net.offsets, offsets = (0.0, 0.0), []
    for side in ("prompt", "reply"):
        chosen = [i for i in val if (i.example.kind == "prompt") == (side == "prompt")]
        rows = [row(i) for i in chosen]
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


def base_embedder(net: Network, max_tokens: int = 64):
    """Base all-MiniLM-L6-v2 sentence embeddings (mean pooled, unit length) for grouping,
    computed before any training changes the encoder."""
    return SentenceEncoder(net.model, net.tokenizer, max_tokens).encode


def fit_temperatures(net: Network, val: list) -> tuple[float, float]:
    """Each side's temperature, fitted on its validation examples (1.0 for a side without any)."""
    temperatures = []
    for side in ("prompt", "reply"):
        chosen = [i for i in val if (i.example.kind == "prompt") == (side == "prompt")]
        if not chosen:
            temperatures.append(1.0)
            continue
        inputs = [training_inputs(net, i) for i in chosen]
        logits = np.concatenate([net.logits(inputs[s : s + 64], side) for s in range(0, len(inputs), 64)])
        temperatures.append(fit_temperature(logits, np.array([CLASSES.index(i.example.label) for i in chosen])))
    return tuple(temperatures)


class Lower:
    """The frozen lower layers' outputs, computed once per distinct input for every run of
    one process (the folds share most of their inputs)."""

    def __init__(self, trainer: Trainer):
        self.trainer, self.seen = trainer, {}

    def __call__(self, inputs: list[tuple[list[int], list[int]]]) -> list:
        keys = [(tuple(ids), tuple(types)) for ids, types in inputs]
        todo = list(dict.fromkeys(k for k in keys if k not in self.seen))
        started = time.perf_counter()
        for k, h in zip(todo, self.trainer.cache([(list(i), list(t)) for i, t in todo]) if todo else []):
            self.seen[k] = h
        if todo:
            print(f"lower layers run on {len(todo)} new inputs ({time.perf_counter() - started:.0f} s)", flush=True)
        return [self.seen[k] for k in keys]
