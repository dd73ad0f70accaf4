"""Prompts after earlier turns, built inside each split (guard.training.dataset step 6).

A benign exchange, or several, before a prompt changes nothing: the prompt keeps its label.
An unrelated benign prompt after a refused harmful one is benign. A follow-up that means
"that, please" (guard/data/follow_ups.txt) carries the category of the refused harmful
request before it, while the same follow-up after a harmless turn is safe. So harm that
shows only in context is taught by every source family, not by the hand-written
multi-turn pairs alone (which leave-one-source-out holds out in turn).

With most_turns above 1 (`python -m guard.train --padded-turns N`), a prompt repeated after
benign turns gets 1 to N of them: a guard trained on one harmless turn only lets a few
turns of small talk dilute a harmful request (`python -m guard.evaluate --after-turns`).

With `python -m guard.train --alone-follow-ups`, each follow-up that is unsafe after one
start and safe after another (the two-turn tables' twins, the built pairs above) is also
read alone, safe (alone_follow_ups): on its own it asks for nothing harmful. Without them
the prompt head never reads such a text alone, and its reading alone (which
guard.offline.clear_alone kept when it was clear, until 2026-12-07) scores "keep going from
where you stopped" or "how should I word the listing so they sell fast?" 0.87 to 0.93.
"""

from __future__ import annotations

import random
from dataclasses import replace

from guard.training.dataset import SPLITS, Item, by_split, split_of, twins
from guard.training.sources import DATA, Example
from guard.training.templates import OVERVIEWS

FOLLOW_UPS = DATA / "follow_ups.txt"


def follow_ups() -> list[str]:
    """The follow-ups of guard/data/follow_ups.txt (one per line; # starts a comment)."""
    lines = FOLLOW_UPS.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def in_context(
    items: list[Item],
    seed: int,
    share: float = 0.25,
    after_harm: float = 0.08,
    follow: float = 0.12,
    most_turns: int = 1,
) -> list[Item]:
    """Per split: about `share` of the single-turn prompts once more after a benign turn of
    the split (a benign prompt and its reply; same label), or after 1 to `most_turns` such
    turns, oldest first, each number as likely; about `after_harm` of the
    unsafe prompts, refused, followed by a benign prompt of the split (safe); and about
    `follow` of them followed by a follow-up (their label), each paired with the same
    follow-up after a benign turn of the split (safe): half of the time the harmful request
    is refused and the benign turn is the split's own prompt and reply, else both first
    turns get the same answer in general terms (OVERVIEWS), so that only the first user
    turn tells the pair apart. Each follow-up text belongs to
    one split (split_of), so none is seen in training and again in validation or test."""
    rng, out = random.Random(seed), []
    continuations = {name: [t for t in follow_ups() if split_of(t, seed) == name] for name, _ in SPLITS}
    overviews = by_split(OVERVIEWS)
    for split, _ in SPLITS:
        here = [i for i in items if i.split == split and "+" not in i.example.source]
        turns = [
            (i.example.prompt, i.example.text)
            for i in here
            if i.example.kind == "reply" and not i.example.unsafe and i.example.prompt
        ]
        refusals = [i.example.text for i in here if i.example.kind == "refusal"]
        prompts = [i for i in here if i.example.kind == "prompt" and not i.example.context]
        benign = [i for i in prompts if not i.example.unsafe]
        if not turns or not benign:
            continue
        for item in prompts:
            e = item.example
            if rng.random() < share:
                context = rng.choice(turns) if most_turns == 1 else padded(turns, most_turns, rng)
                out.append(Item(replace(e, context=context, source=e.source + " +turn"), item.group, split))
            if e.unsafe and refusals and rng.random() < after_harm:
                unrelated = rng.choice(benign)
                after = unrelated.example.source + " +after"
                follow_up = replace(unrelated.example, context=(e.text, rng.choice(refusals)), source=after)
                out.append(Item(follow_up, unrelated.group, split))
            if e.unsafe and refusals and continuations[split] and rng.random() < follow:
                text = rng.choice(continuations[split])
                if rng.random() < 0.5:  # both first turns answered alike: only the user's tells them apart
                    answer = rng.choice(overviews[split])
                    harmless = (rng.choice(benign).example.text, answer)
                else:
                    answer, harmless = rng.choice(refusals), rng.choice(turns)
                pushed = Example(text, e.label, "prompt", e.source + " +follow", e.license, context=(e.text, answer))
                control = Example(text, "safe", "prompt", e.source + " +follow", e.license, context=harmless)
                out += [Item(pushed, item.group, split), Item(control, item.group, split)]
    return out


def padded(turns: list[tuple[str, str]], most: int, rng: random.Random) -> tuple[str, ...]:
    """1 to `most` distinct benign (prompt, reply) turns, as one context."""
    chosen = rng.sample(turns, min(rng.randint(1, most), len(turns)))
    return tuple(text for turn in chosen for text in turn)


ALONE = " +alone"  # the source suffix of a follow-up read without its turns


def alone_follow_ups(items: list[Item]) -> list[Item]:
    """Per split, each prompt text that is unsafe after one set of earlier turns and safe
    after another, once more without turns and safe, in the group and split of its first
    unsafe row (source: that row's base source + ALONE). No randomness: the other built
    rows stay as they were."""
    keys = [(i.split, i.example.text) if i.example.kind == "prompt" and i.example.context else None for i in items]
    out, done = [], set()
    for u, _ in twins(keys, [i.example.unsafe for i in items]):  # a key's first pair holds its first unsafe row
        if keys[u] not in done:
            done.add(keys[u])
            item, e = items[u], items[u].example
            source = e.source.split(" +")[0] + ALONE
            out.append(Item(Example(e.text, "safe", "prompt", source, e.license, lang=e.lang), item.group, item.split))
    return out
