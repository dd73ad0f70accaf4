"""Pieces of long prompts cut at any word, as a judging window cuts a pasted text
(`python -m guard.train --long-cuts`; docs/offline-classifier.md, "Long text cut at any
word")."""

from __future__ import annotations

import random
from dataclasses import replace

from guard.training.dataset import Item


def long_cuts(
    items: list[Item], seed: int, requests: list[Item] = (), words_range=(40, 110), every: int = 80
) -> list[Item]:
    """Pieces of long prompts (long_prompts' output), cut at any word as a judging window cuts
    them, `words_range` words long, in the long prompt's group and split:
    - of a harmless one of over words_range[1] words, about one piece per `every` words, safe;
    - of one with an unsafe request inside (found among `requests`, the prompts of its group
      and split), one piece that holds the whole request, with its label.
    Training reads the first training window of a long prompt; a check reads every judging
    window of it, most of them starting and ending mid-sentence. Without these a pasted
    text is judged in pieces of a kind training never showed; with the harmless pieces
    alone, a request buried in such a piece is learnt as harmless too (the first pilot,
    docs/offline-classifier.md)."""
    rng, out = random.Random(seed), []
    inside = {}
    for r in requests:
        if r.example.unsafe:
            inside.setdefault((r.group, r.split), []).append(r.example.text.strip())
    for item in items:
        e = item.example
        if not e.source.endswith(" +long"):
            continue
        text = e.text.split()
        spans = []
        if not e.unsafe:
            for _ in range(len(text) // every if len(text) > words_range[1] else 0):
                size = rng.randint(*words_range)
                spans.append((start := rng.randint(1, len(text) - size), start + size))
        elif (span := _request_span(e.text, inside.get((item.group, item.split), []))) is not None:
            (a, b), most = span, min(words_range[1], len(text) - 1)  # a piece shorter than the whole
            if max(words_range[0], b - a) <= most:
                size = rng.randint(max(words_range[0], b - a), most)
                spans.append((start := rng.randint(max(0, b - size), min(a, len(text) - size)), start + size))
        for start, stop in spans:
            cut = " ".join(text[start:stop])
            out.append(Item(replace(e, text=cut, source=e.source + " +cut", full=""), item.group, item.split))
    return out


def _request_span(text: str, requests: list[str]) -> tuple[int, int] | None:
    """Where (first word, past its last) the first of `requests` found in `text` lies in it."""
    for request in requests:
        at = text.find(request)
        if at >= 0 and request:
            first = len(text[:at].split())
            return first, first + len(request.split())
    return None
