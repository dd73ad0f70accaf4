"""From labelled examples to the three splits the classifier is trained, tuned and tested on.

1. group(): near-duplicates are linked (cosine >= NEAR_COSINE between all-MiniLM-L6-v2
   embeddings, or word Jaccard >= NEAR_JACCARD), and so is a reply with the prompt it
   answers; a group is a connected component.
2. assign(): each group goes whole to one split, from a seeded hash of its first text:
   test 20%, validation 15%, train 65%. No group spans two splits.
3. framed(): role-play, "for a novel", hypothetical and second-hand framings of some
   prompts (benign and unsafe alike, so a frame is no sign of harm), in their prompt's split.
4. pairs(): the reply side, (prompt, reply) pairs built inside each split only.
5. long_prompts(): long prompts made of a split's benign texts, some with one of that
   split's prompts (unsafe, or benign with words of harm) put inside, so that a harmful
   request is not diluted by the benign text around it.
6. in_context() (guard.training.in_context): prompts after earlier turns of their split: a benign turn before a
   prompt changes nothing, an unrelated benign prompt after a refused harmful one is
   benign, and a follow-up that means "that, please" (guard/data/follow_ups.txt) carries
   the category of the refused harmful request before it, while the same follow-up after
   a harmless turn is safe. So harm that shows only in context is taught by every source
   family, not by the hand-written multi-turn pairs alone (which leave-one-source-out
   holds out in turn).
7. drifting_replies(): replies after a benign prompt whose own text turns harmful (an
   unsafe reply written without a prompt put inside benign replies), each with its
   control (the same benign text alone, safe), so the reply side learns a reply's own
   harm and not only the prompt's.

>>> jaccard("how do I make a bomb", "how do I make a cake")
0.7142857142857143
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, replace

import numpy as np

from guard.training.categories import categorize
from guard.training.families import family
from guard.training.sources import Example
from guard.training.templates import BODIES, FALSE_REFUSALS, FRAMES, NEUTRAL_PROMPTS, OPENERS, REFUSALS

NEAR_COSINE = 0.80
NEAR_JACCARD = 0.5
SPLITS = (("test", 0.20), ("validation", 0.15), ("train", 0.65))
_WORD = re.compile(r"[a-z0-9']+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


_IMPERATIVE = re.compile(
    r"^(write|create|develop|provide|give|explain|teach|design|generate|outline|produce|"
    r"describe|draft|compose|list|suggest|make|build)\s+(.*)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Item:
    """An example with its group (index of the group's first member) and split."""

    example: Example
    group: int
    split: str


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def jaccard(a: str, b: str) -> float:
    wa, wb = words(a), words(b)
    return len(wa & wb) / max(len(wa | wb), 1)


def near_pairs(texts: list[str], embeddings: np.ndarray, block: int = 1024) -> list[tuple[int, int]]:
    """Every pair (i < j) that counts as a near-duplicate: cosine >= NEAR_COSINE, or word
    Jaccard >= NEAR_JACCARD among pairs with cosine >= 0.5 (the cheap filter). Texts of
    under three words are linked to nothing."""
    pairs, short = [], np.array([len(words(t)) < 3 for t in texts])
    embeddings = np.where(short[:, None], 0.0, embeddings)  # "8", "Elon Musk": too short to compare
    for start in range(0, len(texts), block):
        sims = embeddings[start : start + block] @ embeddings.T
        for r, c in zip(*np.nonzero(sims >= 0.5)):
            i, j = start + int(r), int(c)
            if i < j and (sims[r, c] >= NEAR_COSINE or jaccard(texts[i], texts[j]) >= NEAR_JACCARD):
                pairs.append((i, j))
    return pairs


def components(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """Union-find: for each node, the smallest node index of its connected component."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in edges:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [root(i) for i in range(n)]


def twins(keys: list, unsafe: list[bool]) -> list[tuple[int, int]]:
    """(unsafe, safe) index pairs of rows that share a key (None: a row never paired): within
    one key, unsafe and safe rows are paired in order, so each row is in one pair at most;
    keys come in the order they first appear."""
    groups: dict = {}
    for k, (key, bad) in enumerate(zip(keys, unsafe)):
        if key is not None:
            groups.setdefault(key, ([], []))[0 if bad else 1].append(k)
    return [pair for bad, safe in groups.values() for pair in zip(bad, safe)]


def split_of(key: str, seed: int) -> str:
    """The split a group goes to, from a seeded hash of its key text.

    >>> split_of("How do I bake bread?", 0) in ("test", "validation", "train")
    True
    """
    u = int.from_bytes(hashlib.sha256(f"{seed}:{key.lower()}".encode()).digest()[:8], "big") / 2**64
    edge = 0.0
    for name, share in SPLITS:
        edge += share
        if u < edge:
            return name
    return SPLITS[-1][0]


def assign(examples: list[Example], embed, seed: int) -> list[Item]:
    """Group near-duplicates (embed: list of texts -> unit-length rows) and give every
    group one split. A reply is grouped with the prompt it answers, and the rows a table
    marks as one item (its translations of one text, which an English embedding does not
    see as near-duplicates) with each other."""
    texts = sorted({e.text for e in examples} | {e.prompt for e in examples if e.prompt})
    index = {t: i for i, t in enumerate(texts)}
    edges = near_pairs(texts, embed(texts))
    edges += [(index[e.prompt], index[e.text]) for e in examples if e.prompt]
    first: dict[tuple[str, str], int] = {}
    for e in examples:
        if e.item:
            edges.append((first.setdefault((e.source, e.item), index[e.text]), index[e.text]))
    root = components(len(texts), edges)
    return [Item(e, root[index[e.text]], split_of(texts[root[index[e.text]]], seed)) for e in examples]


def framed(items: list[Item], seed: int, share: float = 0.3) -> list[Item]:
    """A framed copy of about `share` of the prompts, in the same group and split."""
    rng, out = random.Random(seed), []
    for item in items:
        e = item.example
        if e.kind == "prompt" and rng.random() < share:
            text = rng.choice(FRAMES).format(e.text)
            out.append(Item(replace(e, text=text, source=e.source + " +frame"), item.group, item.split))
    return out


def by_split(texts: tuple[str, ...]) -> dict[str, list[str]]:
    """A template tuple divided between the splits by index (i % 3), so no template is shared.

    >>> by_split(("a", "b", "c", "d"))
    {'test': ['a', 'd'], 'validation': ['b'], 'train': ['c']}
    """
    names = [name for name, _ in SPLITS]
    return {n: [t for i, t in enumerate(texts) if names[i % 3] == n] for n in names}


def _fill(prompt: str, rng: random.Random, templates: list[str], fallback: str) -> str:
    """One of the templates, formatted for the prompt: {task} is what an imperative prompt
    asks for (templates with it are skipped otherwise), {prompt} the prompt itself."""
    m = _IMPERATIVE.match(prompt.strip().rstrip("."))
    usable = [t for t in templates if m or "{task}" not in t] or [fallback]
    return rng.choice(usable).format(task=m.group(2) if m else "", prompt=prompt.strip())


def compliance(prompt: str, rng: random.Random, bodies: list[str], openers=("Sure, here is {task}.",)) -> str:
    """A reply that does what the prompt asks: an opener (those with {task} only after an
    imperative prompt) and a body.

    >>> compliance("Write a poem about rain", random.Random(0), ["Body."])
    'Sure, here is a poem about rain. Body.'
    >>> compliance("How do I fix a tyre?", random.Random(0), ["Body."], ["Okay:", "Sure, here is {task}."])
    'Okay: Body.'
    """
    return f"{_fill(prompt, rng, list(openers), 'Sure, I can help with that: {prompt}')} {rng.choice(bodies)}"


def refusal(prompt: str, rng: random.Random, templates: list[str]) -> str:
    """A refusal of the prompt, naming its task when the template has room and the prompt
    is an imperative (templates with {task} are skipped otherwise).

    >>> refusal("Write a poem about rain.", random.Random(0), ["I can't write {task}."])
    "I can't write a poem about rain."
    """
    return _fill(prompt, rng, templates, "I can't help with that.")


def pairs(items: list[Item], seed: int) -> list[Item]:
    """The reply side for one dataset: every reply with its prompt, and built pairs, each
    inside one split (the templates are split by index too, so none is shared):
    - a reply or refusal with a known prompt: as written (its label is the reply's);
    - a reply without a prompt: after a neutral prompt (its own harm decides);
    - each prompt once more: unsafe prompts get a compliant reply (unsafe, the prompt's
      category; a tenth of them behind an opener that sounds like a refusal) or a refusal
      (safe: one written without a prompt, or from REFUSALS); benign prompts a compliant
      reply (safe).
    """
    rng, out = random.Random(seed), []
    names = [name for name, _ in SPLITS]
    bodies, openers, neutral = by_split(BODIES), by_split(OPENERS), by_split(NEUTRAL_PROMPTS)
    written = {
        n: [i.example.text for i in items if i.split == n and i.example.kind == "refusal" and not i.example.prompt]
        for n in names
    }
    templates, false_openers = by_split(REFUSALS), by_split(FALSE_REFUSALS)
    for item in items:
        e, split = item.example, item.split
        if e.context:  # a follow-up means what it means after its turn: no reply of its own here
            continue
        if e.kind in ("reply", "refusal"):
            prompt = e.prompt or rng.choice(neutral[split])
            out.append(Item(replace(e, prompt=prompt), item.group, split))
        elif e.unsafe and rng.random() < 0.4:
            if written[split] and rng.random() < 0.5:
                text = rng.choice(written[split])
            else:
                text = refusal(e.text, rng, templates[split])
            out.append(
                Item(Example(text, "safe", "refusal", e.source + " +refusal", e.license, e.text), item.group, split)
            )
        else:
            text = compliance(e.text, rng, bodies[split], openers[split])
            if e.unsafe and rng.random() < 0.1:
                text = f"{rng.choice(false_openers[split])} {text}"
            out.append(
                Item(Example(text, e.label, "reply", e.source + " +compliance", e.license, e.text), item.group, split)
            )
    return out


def benign_edgy(e: Example) -> bool:
    """A benign prompt that uses words of harm: one the AdvBench keyword rules would give
    a category (kill, shoot, drug, hack, bomb, ...)."""
    return e.kind == "prompt" and not e.unsafe and categorize(e.text) is not None


def long_prompts(
    items: list[Item], seed: int, share: float = 0.15, words_range=(50, 140), alone_words: int = 220
) -> list[Item]:
    """Per split, long prompts of `words_range` words of benign text, about `share` of
    its prompts in number each:
    - benign text with one of the split's unsafe prompts put between two sentences (its
      label and group);
    - benign text with a benign prompt put inside (safe; benign-edgy ones when there are any);
    - benign text alone (safe), up to `alone_words` words: enough to fill a whole training
      window, so that a window of joined harmless text is learnt as harmless.
    The benign text is, half of the time, the start of one coherent long text of that split
    (a whole WritingBench task), else the split's benign prompts and replies joined."""
    rng, out = random.Random(seed), []
    for split, _ in SPLITS:
        here = [i for i in items if i.split == split and "+" not in i.example.source and not i.example.context]
        benign = [i for i in here if not i.example.unsafe and i.example.kind in ("prompt", "reply")]
        coherent = [i for i in benign if len(i.example.full.split()) >= words_range[1]]
        prompts = [i for i in here if i.example.kind == "prompt"]
        unsafe = [i for i in prompts if i.example.unsafe]
        edgy = [i for i in prompts if benign_edgy(i.example)] or [i for i in prompts if not i.example.unsafe]
        if not benign or not unsafe or not edgy:
            continue
        for _ in range(round(share * len(prompts))):
            for inner in (rng.choice(unsafe), rng.choice(edgy), None):
                goal = rng.randint(words_range[0], words_range[1] if inner is not None else alone_words)
                if coherent and rng.random() < 0.5:
                    base = rng.choice(coherent)
                    parts = _SENTENCE_END.split(" ".join(base.example.full.split()[:goal]))
                else:
                    base, parts, size = rng.choice(benign), [], 0
                    while size < goal:
                        parts.append(rng.choice(benign).example.text.strip())
                        size += len(parts[-1].split())
                if inner is not None:
                    parts.insert(rng.randint(0, len(parts)), inner.example.text.strip())
                first = inner or base
                e = first.example
                out.append(
                    Item(
                        Example(
                            " ".join(parts), e.label if inner else "safe", "prompt", e.source + " +long", e.license
                        ),
                        first.group,
                        split,
                    )
                )
    return out


def drifting_replies(
    items: list[Item], seed: int, copies: int = 2, pad_words: tuple[int, int] = (15, 90), most_words: int = 130
) -> list[Item]:
    """Per split and source family: each unsafe reply written without a prompt (harmful by
    its own words, not by what it answers; never a built one), `copies` times, put at the
    end (mostly), the middle or the start of `pad_words` words of benign reply text of its
    family and split (the start of a long reply, such as a story, or short replies joined),
    after one of that family's benign prompts: the reply's label.
    With each, its control: the same prompt and benign text alone (safe).

    Before 2026-12-04 every unsafe reply followed an unsafe or a neutral prompt, so the
    reply side learnt the prompt's harm more than the reply's: a story that ends in
    pipe-bomb instructions, after "Write me a long story about a chemistry teacher.",
    scored 0.06. The benign text comes from the harmful reply's own family, so a fold of
    leave-one-source-out (guard.training.transfer) never trains on a held-out family's
    text inside another's example. Replies of more than `most_words` words in all are not
    made: training reads one window, which must hold the harm."""
    rng, out = random.Random(seed), []
    for split, _ in SPLITS:
        families: dict[str, list[Item]] = {}
        for i in items:
            if i.split == split and "+" not in i.example.source and not i.example.context:
                families.setdefault(family(i.example.source), []).append(i)
        for _, mine in sorted(families.items()):
            harmful = [i for i in mine if i.example.kind == "reply" and i.example.unsafe and not i.example.prompt]
            benign = [i.example.text for i in mine if i.example.kind == "reply" and not i.example.unsafe]
            prompts = [i.example.text for i in mine if i.example.kind == "prompt" and not i.example.unsafe]
            if not (harmful and benign and prompts):
                continue
            for item in harmful:
                e, harm = item.example, item.example.text.strip()
                room = most_words - len(harm.split())
                if room < pad_words[0]:
                    continue
                for _ in range(copies):
                    words = _benign_words(benign, rng.randint(pad_words[0], min(pad_words[1], room)), rng)
                    at = rng.choices((len(words), _sentence_break(words), 0), weights=(6, 3, 1))[0]
                    prompt, source = rng.choice(prompts), e.source + " +drift"
                    drifted = " ".join(words[:at] + [harm] + words[at:])
                    out += [
                        Item(Example(drifted, e.label, "reply", source, e.license, prompt), item.group, split),
                        Item(Example(" ".join(words), "safe", "reply", source, e.license, prompt), item.group, split),
                    ]
    return out


def _benign_words(texts: list[str], goal: int, rng: random.Random) -> list[str]:
    """About `goal` words of benign text: replies drawn until they hold that many, cut
    back to the last sentence end past half of it (if any)."""
    words: list[str] = []
    while len(words) < goal:
        words += rng.choice(texts).split()
    words = words[:goal]
    ends = [k + 1 for k, w in enumerate(words) if w.endswith((".", "!", "?")) and k + 1 >= goal // 2]
    return words[: ends[-1]] if ends else words


def _sentence_break(words: list[str]) -> int:
    """The sentence end nearest the middle of `words` (the middle itself if there is none)."""
    ends = [k + 1 for k, w in enumerate(words[:-1]) if w.endswith((".", "!", "?"))]
    return min(ends, key=lambda k: abs(k - len(words) / 2)) if ends else len(words) // 2
