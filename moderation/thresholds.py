"""Per-category thresholds: the one rule that turns a guard's verdict into the turn's.

The operator may give a category its own threshold (the policy file's `[thresholds]`
table, `--category-thresholds S8=0.3,S10=0.8`). The rule, exactly:

    A category's threshold stands in for the global threshold for that category.
    A verdict is unsafe when some category it names has a score at or above that
    category's threshold (its own, else the global one). A verdict that names no
    category is unsafe when its score is at or above the global threshold.
    A category's score is its per-category score when the guard gives one
    (`category_scores`), else the verdict's overall p(unsafe).

So `S8 = 0.3` flags weapons from 0.3 on while everything else waits for the global 0.5,
and `S10 = 0.8` lets self-harm through below 0.8. The guards keep their contract
(`guard.check(conversation, policy, threshold)` flags at `score >= threshold` and then
names the categories): the turn asks them at the lowest threshold in force (`floor`),
so every verdict that any threshold could flag comes back with its categories, and
`decide` applies the rule above to it. Failed verdicts stay failed (fail closed).

    global 0.5, S8 = 0.3, S10 = 0.8; the guard is asked at 0.3:
    score 0.4, names S8        -> unsafe (S8: 0.4 >= 0.3)
    score 0.4, names S1        -> safe   (S1: 0.4 < 0.5)
    score 0.7, names S10       -> safe   (S10: 0.7 < 0.8)
    score 0.7, names S10, S1   -> unsafe, S1 only
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from guard.verdict import Verdict

_CODE = re.compile(r"^[SC][0-9]{1,3}$")


def parse_thresholds(value) -> dict[str, float]:
    """{"s8": 0.3} or "S8=0.3, S10=0.8" -> {"S8": 0.3, "S10": 0.8}; raises ValueError with
    a sentence that names the bad code or value.

    >>> parse_thresholds("s8=0.3, S10=0.8")
    {'S8': 0.3, 'S10': 0.8}
    """
    if isinstance(value, str):
        pairs = [p.partition("=") for p in value.split(",") if p.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ValueError(f"category thresholds are written CODE=NUMBER, e.g. S8=0.3,S10=0.8, not {value!r}")
        items = [(code, _number_text(code, number)) for code, _, number in pairs]
    elif isinstance(value, Mapping):
        items = list(value.items())
    else:
        raise ValueError(f"thresholds must be a table of category codes, e.g. S8 = 0.3, not {value!r}")
    found: dict[str, float] = {}
    for code, number in items:
        key = str(code).strip().upper()
        if not _CODE.match(key):
            raise ValueError(f"thresholds: {code!r} is not a category code (S1, S2, ..., or C1 for a custom one)")
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0.0 <= number <= 1.0:
            raise ValueError(f"thresholds: {key} must be a number from 0 to 1, not {number!r}")
        found[key] = float(number)
    return found


def _number_text(code: str, text: str):
    try:
        return float(text)
    except ValueError:
        return text.strip()  # parse_thresholds names it


def floor(threshold: float, per_category: Mapping[str, float]) -> float:
    """The threshold to ask the guard at: the lowest in force."""
    return min([threshold, *per_category.values()])


def decide(verdict: Verdict, threshold: float, per_category: Mapping[str, float]) -> Verdict:
    """The turn's verdict from a guard's verdict made at `floor(...)`, by the module's rule."""
    if not per_category or verdict.failed or verdict.score is None:
        return verdict  # no category thresholds, nothing judged, or a text-only verdict: as the guard said
    scores = verdict.category_scores  # per-category scores, where the guard gives them (else empty)
    if not verdict.categories:
        if verdict.safe or verdict.score >= threshold:
            return replace(verdict, threshold=threshold)
        return _safe(verdict, threshold, "")
    own = {c.code: per_category.get(c.code, threshold) for c in verdict.categories}
    flagged = tuple(c for c in verdict.categories if scores.get(c.code, verdict.score) >= own[c.code])
    if flagged:
        return replace(verdict, safe=False, categories=flagged, threshold=min(own[c.code] for c in flagged))
    below = ", ".join(f"{code} below its threshold {t:g}" for code, t in own.items())
    return _safe(verdict, min(own.values()), below)


def _safe(verdict: Verdict, threshold: float, why: str) -> Verdict:
    note = "; ".join(n for n in (verdict.note, why) if n)
    return replace(verdict, safe=True, categories=(), threshold=threshold, note=note)
