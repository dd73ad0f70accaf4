"""English words for guard.deobfuscate: which strings are common words, and the likeliest
split of a run of letters into words.

The counts are the unigram counts the `wordsegment` package ships (Apache-2.0; Peter
Norvig's count_1w.txt from the Google Web Trillion Word Corpus), most common first; only
the VOCABULARY most common are read (a few MB, once, on first use). Single letters other
than "a" and "i" are not words here: the corpus counts them because it splits "don't".

>>> segment("howdoimakeapipebomb")
['how', 'do', 'i', 'make', 'a', 'pipe', 'bomb']
>>> segment("necesitamos") is None   # an unknown word is likelier than 'ne ces it amos'
True
"""

from __future__ import annotations

import math
from functools import cache
from importlib.resources import files

VOCABULARY = 50_000  # the most common words read from the counts
TOTAL = 1_024_908_267_229  # words in the corpus the counts come from (wordsegment's TOTAL)
LONGEST = 24  # the longest word a split tries
MARGIN = 3.0  # log10: how much likelier than one unknown word a split must be


@cache
def log_probabilities() -> dict[str, float]:
    """{word: log10 of its share of the corpus} for the VOCABULARY most common words."""
    found: dict[str, float] = {}
    with files("wordsegment").joinpath("unigrams.txt").open(encoding="utf-8") as lines:
        for line in lines:
            word, count = line.split("\t")
            if len(word) > 1 or word in "ai":
                found[word] = math.log10(int(count) / TOTAL)
            if len(found) >= VOCABULARY:
                break
    return found


def is_word(text: str) -> bool:
    """Whether `text` (any case) is one of the common words."""
    return text.lower() in log_probabilities()


def unknown_word(length: int) -> float:
    """log10 probability of an unknown word of `length` letters (Norvig's estimate: the
    longer, the less likely)."""
    return math.log10(10 / TOTAL) - length


def segment(run: str) -> list[str] | None:
    """The likeliest split of `run` (letters, any case) into words, lower-cased: common
    words, or unknown ones at Norvig's odds (`unknown_word`), so a rare word ("fentanyl")
    does not stop the rest from splitting. None when the split is not MARGIN likelier than
    `run` being one unknown word. Dynamic programming over the end of the last word:
    O(len(run) * LONGEST)."""
    text, words = run.lower(), log_probabilities()
    best: list[tuple[float, int]] = [(0.0, 0)] + [(-math.inf, 0)] * len(text)
    for end in range(1, len(text) + 1):
        for start in range(max(0, end - LONGEST), end):
            p = words.get(text[start:end], unknown_word(end - start))
            if best[start][0] + p > best[end][0]:
                best[end] = (best[start][0] + p, start)
    if best[-1][0] < unknown_word(len(text)) + MARGIN:
        return None
    split, end = [], len(text)
    while end:
        start = best[end][1]
        split.append(text[start:end])
        end = start
    return split[::-1]
