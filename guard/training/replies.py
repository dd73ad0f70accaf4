"""Benign replies written by the chat model the app ships (SmolLM2-135M-Instruct), for the
reply side of the offline classifier.

    python -m guard.training.replies            # writes guard/data/smollm2_replies.tsv (~12 min)
    python -m guard.train                       # trains with them (--without-chat-replies: without)

Why: the reply side had only short reference answers (FreshQA) and template replies, so
the chatty replies the offline chat model actually writes ("Baking bread at home is a
wonderful way to...") were out of its distribution, and some were flagged: a 12-token
reply about baking bread as S10 at 65%. Here the offline chat model answers benign
prompts of every source, sampled as the app samples (temperature 0.6, top_p 0.9, fixed
seed), and each reply is kept whole and cut at a random word (what a check while
streaming sees). It also answers some unsafe prompts, and of those replies keeps only
the plain refusals (REFUSAL: the reply opens with "I can't", "I'm sorry, but I won't",
... and never turns to "here is", "I can help" or numbered steps), as safe refusals: refusals were the reply
side's commonest false positive. Any other reply to an unsafe prompt is dropped, as
labelling it would need a judgement of its own. Every row keeps its prompt, so a reply
is grouped, and split, with the prompt it answers (guard.training.dataset.assign).

`python -m guard.train` uses them by default (`--without-chat-replies` leaves them out);
the committed model was trained with them and flags 2.5% of those in the test split (n 236;
guard/data/offline_figures.json); SOURCES.md says how it was chosen.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
from pathlib import Path

from chat import load_chat
from guard.training.sources import REPLIES, Example, all_examples

FIELDS = ("label", "kind", "prompt", "text")
REFUSAL = re.compile(
    r"^((i'm |i am )?sorry,? but )?(i can't|i cannot|i can not|i won't|i will not|i'm unable|"
    r"i am unable|i'm not able|i am not able|i must decline)\b",
    re.IGNORECASE,
)
TURNS_TO_HELP = re.compile(r"here is|here's|step \d|^\s*\d+\.|\n\s*\d+\.|first,|sure|i can help|i'll", re.IGNORECASE)


def is_refusal(reply: str) -> bool:
    """A plain refusal: opens with one, and never turns to helping.

    >>> is_refusal("I'm sorry, but I can't help with that.")
    True
    >>> is_refusal("I can't stress enough how easy it is. Here is how: 1. ...")
    False
    """
    return bool(REFUSAL.match(reply.strip())) and not TURNS_TO_HELP.search(reply)


def some_prompts(examples: list[Example], count: int, seed: int, unsafe: bool = False) -> list[str]:
    """`count` benign (or unsafe) prompts, drawn evenly from each source (seeded); for
    benign ones, every benign prompt of the hand-written tables first (they hold the
    benign-edgy ones)."""
    by_source: dict[str, list[str]] = {}
    for e in examples:
        if e.kind == "prompt" and e.unsafe == unsafe and len(e.text) <= 600:
            by_source.setdefault(e.source, []).append(e.text)
    rng = random.Random(seed)
    first = (lambda s: s.startswith("handwritten")) if not unsafe else (lambda s: False)
    chosen = [t for s, texts in sorted(by_source.items()) if first(s) for t in texts]
    others = [texts for s, texts in sorted(by_source.items()) if not first(s)]
    share = max(0, count - len(chosen)) // max(len(others), 1)
    for texts in others:
        chosen += rng.sample(texts, min(share, len(texts)))
    return chosen


def generate(prompts: list[str], max_new_tokens: int, seed: int, batch: int = 16) -> list[str]:
    import torch  # heavy: loaded only when replies are generated

    chat = load_chat("offline")
    tokenizer, model = chat.tokenizer, chat.model
    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else chat.stop_ids[0]
    torch.manual_seed(seed)
    replies: list[str] = []
    for start in range(0, len(prompts), batch):
        ids = [chat.prompt_ids([{"role": "user", "content": p}]) for p in prompts[start : start + batch]]
        width = max(map(len, ids))
        input_ids = torch.tensor([[pad] * (width - len(i)) + i for i in ids])
        mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                do_sample=True,
                temperature=0.6,
                top_p=0.9,
                max_new_tokens=max_new_tokens,
                eos_token_id=chat.stop_ids,
                pad_token_id=pad,
            )
        replies += [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]
        print(f"{len(replies)}/{len(prompts)} replies", flush=True)
    return replies


def rows(prompts: list[str], replies: list[str], seed: int, kind: str = "reply") -> list[dict]:
    """Each reply whole, and cut after a random 5 to 40 of its words (a stream check)."""
    rng, out = random.Random(seed), []
    for prompt, reply in zip(prompts, replies):
        words = reply.split()
        if len(words) < 3:
            continue
        out.append({"label": "safe", "kind": kind, "prompt": prompt, "text": " ".join(words)})
        if len(words) > 8:
            cut = rng.randint(5, min(40, len(words) - 1))
            out.append({"label": "safe", "kind": kind, "prompt": prompt, "text": " ".join(words[:cut])})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=600, help="benign prompts to answer (default 600)")
    p.add_argument(
        "--unsafe-count",
        type=int,
        default=200,
        help="unsafe prompts to answer, keeping only the refusals (default 200)",
    )
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "guard-offline-train",
        help="where the pinned source wheels are kept",
    )
    p.add_argument("--out", type=Path, default=REPLIES)
    a = p.parse_args(argv)
    examples = all_examples(a.cache, with_generated=False)
    benign = some_prompts(examples, a.count, a.seed)
    unsafe = some_prompts(examples, a.unsafe_count, a.seed, unsafe=True)
    replies = generate(benign + unsafe, a.max_new_tokens, a.seed)
    refused = [(p, r) for p, r in zip(unsafe, replies[len(benign) :]) if is_refusal(r)]
    table = rows(benign, replies[: len(benign)], a.seed) + rows(
        [p for p, _ in refused], [r for _, r in refused], a.seed, kind="refusal"
    )
    with a.out.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, FIELDS, delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(table)
    print(f"wrote {a.out}: {len(benign)} benign prompts answered, {len(refused)} of {len(unsafe)} unsafe ones refused")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
