"""English words for guard.deobfuscate: which strings are common words, and the likeliest
split of a run of letters into words.

The counts are the unigram and bigram counts the `wordsegment` package ships (Apache-2.0;
Peter Norvig's count_1w.txt and count_2w.txt from the Google Web Trillion Word Corpus),
most common first; only the SPLIT_VOCABULARY most common words, and the pairs of the
VOCABULARY most common, are read (a few MB, once, on first use). Single letters other
than "a" and "i" are not words here: the corpus counts them because it splits "don't".

>>> segment("howdoimakeapipebomb")
['how', 'do', 'i', 'make', 'a', 'pipe', 'bomb']
>>> segment("encouragesmeetmeat")   # pairs decide: not 'encourage s', 'meet meat'
['encourages', 'meet', 'me', 'at']
>>> segment("wiebaueicheinebombe") is None   # one unknown word is likelier than any split
True
>>> segment("sabotaging"), segment("molotovs")   # a rarer word is kept whole, or cut up
(['sabotaging'], ['mo', 'loto', 'vs'])
"""

from __future__ import annotations

import math
from functools import cache
from importlib.resources import files

VOCABULARY = 50_000  # the most common words: what is_word and the word pairs know
SPLIT_VOCABULARY = 100_000  # the words a split may keep whole ("sabotaging" is 88,027th)
TOTAL = 1_024_908_267_229  # words in the corpus the counts come from (wordsegment's TOTAL)
LONGEST = 24  # the longest word a split tries
MARGIN = 3.0  # log10: how much likelier than one unknown word a split must be


@cache
def log_probabilities(most: int = VOCABULARY) -> dict[str, float]:
    """{word: log10 of its share of the corpus} for the `most` most common words."""
    found: dict[str, float] = {}
    with files("wordsegment").joinpath("unigrams.txt").open(encoding="utf-8") as lines:
        for line in lines:
            word, count = line.split("\t")
            if len(word) > 1 or word in "ai":
                found[word] = math.log10(int(count) / TOTAL)
            if len(found) >= most:
                break
    return found


@cache
def pair_log_probabilities() -> dict[str, float]:
    """{"previous word": log10 P(word | previous)} for the pairs of common words the bigram
    counts have: the pair's count over the previous word's (case variants summed)."""
    words, counts = log_probabilities(), {}
    with files("wordsegment").joinpath("bigrams.txt").open(encoding="utf-8") as lines:
        for line in lines:
            pair, count = line.split("\t")
            first, _, second = pair.partition(" ")
            if first in words and second in words:
                counts[pair] = counts.get(pair, 0) + int(count)
    return {pair: math.log10(n / TOTAL) - words[pair.partition(" ")[0]] for pair, n in counts.items()}


def is_word(text: str) -> bool:
    """Whether `text` (any case) is one of the common words."""
    return text.lower() in log_probabilities()


def rank(word: str) -> int:
    """How common `word` (lower case) is: 0 for the most common, VOCABULARY when it is none."""
    return _ranks().get(word, VOCABULARY)


@cache
def _ranks() -> dict[str, int]:
    return {word: i for i, word in enumerate(log_probabilities())}


def unknown_word(length: int) -> float:
    """log10 probability of an unknown word of `length` letters (Norvig's estimate: the
    longer, the less likely)."""
    return math.log10(10 / TOTAL) - length


def segment(run: str) -> list[str] | None:
    """The likeliest split of `run` (letters, any case) into words, lower-cased: known
    words (the SPLIT_VOCABULARY most common, so that a rarer word is kept whole), each at
    its probability after the word before it where the pair counts have them (so "do i",
    not "doi"), or unknown ones at Norvig's odds (`unknown_word`), so a rare word
    ("fentanyl") does not stop the rest from splitting. None when the split, its words
    taken alone, is not MARGIN likelier than `run` being one unknown word. Dynamic
    programming over where the last word starts, keeping apart the splits whose last word
    is a common one (a pair can follow only those): O(len(run) * LONGEST * the common
    words that end at a place)."""
    text, words, pairs = run.lower(), log_probabilities(SPLIT_VOCABULARY), pair_log_probabilities()
    common = log_probabilities()  # the words a pair can start with
    # best[i]: the best split of text[:i] as (log10 p, start of its last word, the common word
    # before that one when the pair gave its odds, else None); ending[i]: {common word: the
    # best split of text[:i] that ends with it}
    best: list[tuple[float, int, str | None]] = [(0.0, 0, None)] + [(-math.inf, 0, None)] * len(text)
    ending: list[dict[str, tuple[float, int, str | None]]] = [{} for _ in range(len(text) + 1)]
    for end in range(1, len(text) + 1):
        for start in range(max(0, end - LONGEST), end):
            word = text[start:end]
            p = words.get(word)
            split = (best[start][0] + (unknown_word(end - start) if p is None else p), start, None)
            for before, (q, _, _) in ending[start].items():
                given = pairs.get(f"{before} {word}")
                if given is not None and q + given > split[0]:
                    split = (q + given, start, before)
            if word in common:  # each start gives another word
                ending[end][word] = split
            if split[0] > best[end][0]:
                best[end] = split
    split, end, step = [], len(text), best[-1]
    while end:
        start, before = step[1], step[2]
        split.append(text[start:end])
        step, end = (best[start] if before is None else ending[start][before]), start
    alone = sum(words.get(word, unknown_word(len(word))) for word in split)  # pairs make no split likelier
    return split[::-1] if alone >= unknown_word(len(text)) + MARGIN else None
