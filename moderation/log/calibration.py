"""Thresholds from labels: what the operator's labels say the global and per-category
thresholds should be (`python -m moderation.log thresholds`, and the review page).

Ground truth. Only operator labels count (a visitor's is a dispute, not a judgement);
when one verdict has several, the latest counts. A failed verdict (no judgement) or one
without a score is left out. Then, for the labelled verdict:

    label            verdict   truly   truly in categories
    correct          unsafe    unsafe  the label's categories, else the verdict's
    correct          safe      safe    -
    false_positive   any       safe    -
    false_negative   any       unsafe  the label's categories (none given: global only)

Scores. The global threshold is fitted on the verdicts' overall score, p(unsafe). For a
category, a verdict's score is its `category_scores[code]` when the log has one, else its
overall score; a truly unsafe verdict counts as an example of each of its true
categories, and a truly safe one (or one whose label's categories leave a code out)
counts against a code only when it has a score for it or named it.

Choice. For a target false positive rate F (default 0.05), the suggested threshold is
the lowest score of a truly unsafe verdict at which at most F of the truly safe ones
score as high (score >= threshold flags, as in the guards): the best recall the labels
allow at that rate. Its precision and recall are what the labels imply at it, with how
many labels of each kind support it. With fewer than MIN_EACH of either kind, no number
is suggested and the report says so.

    10 unsafe at 0.35..0.9, 20 safe at 0.05..0.3 and one at 0.6; F = 0.05 (1 of 21 may pass)
    -> threshold 0.35: precision 0.91, recall 1.00 (10 unsafe, 21 safe labels)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MIN_EACH = 5  # labels of each kind (truly unsafe, truly safe) before a number is suggested
DEFAULT_TARGET_FPR = 0.05


@dataclass(frozen=True)
class Truth:
    """What a label says a verdict should have been."""

    unsafe: bool
    codes: tuple[str, ...] = ()  # its true categories (unsafe only; () when the label gives none)
    explicit: bool = False  # the codes came from the label itself


@dataclass(frozen=True)
class Suggestion:
    """One suggested threshold (None when the labels cannot support one) and what backs it."""

    name: str  # "global" or a category code
    threshold: float | None
    precision: float | None
    recall: float | None
    n_unsafe: int
    n_safe: int
    why_none: str = ""


def ground_truth(verdict: dict, label: str, codes: list[str]) -> Truth:
    """The table in the module docstring, for one verdict (a record's) and its label."""
    named = tuple(c["code"] for c in verdict["categories"])
    if label == "false_positive" or (label == "correct" and verdict["safe"]):
        return Truth(False)
    if label == "correct":
        return Truth(True, tuple(codes) or named, bool(codes))
    return Truth(True, tuple(codes), bool(codes))


def labelled(records: Iterable[dict]) -> Iterator[tuple[dict, Truth]]:
    """(verdict, truth) for every scored, judged verdict with an operator label (the latest)."""
    for record in records:
        latest = {m["seq"]: m for m in record.get("labels", []) if m["source"] == "operator"}
        for v in record["verdicts"]:
            mark = latest.get(v["seq"])
            if mark and v["parsed"] and v["score"] is not None:
                yield v, ground_truth(v, mark["label"], mark["categories"])


def category_points(verdict: dict, truth: Truth) -> Iterator[tuple[str, float, bool]]:
    """(code, score, truly unsafe in it) for each category this labelled verdict informs."""
    scores = verdict.get("category_scores") or {}
    named = {c["code"] for c in verdict["categories"]}
    for code in dict.fromkeys([*truth.codes, *scores, *named]):
        if code in truth.codes:
            yield code, scores.get(code, verdict["score"]), True
        elif not truth.unsafe or truth.explicit:
            if code in scores or code in named:
                yield code, scores.get(code, verdict["score"]), False


def suggest(name: str, points: list[tuple[float, bool]], target_fpr: float = DEFAULT_TARGET_FPR) -> Suggestion:
    """The lowest threshold at a truly unsafe score whose false positive rate is <= target_fpr."""
    unsafe = sorted(s for s, u in points if u)
    safe = sorted((s for s, u in points if not u), reverse=True)
    if len(unsafe) < MIN_EACH or len(safe) < MIN_EACH:
        return Suggestion(
            name,
            None,
            None,
            None,
            len(unsafe),
            len(safe),
            f"too few labels: {len(unsafe)} unsafe and {len(safe)} safe, {MIN_EACH} of each needed",
        )
    allowed = math.floor(target_fpr * len(safe) + 1e-9)  # safe verdicts that may score at or above it
    bar = safe[allowed] if allowed < len(safe) else -math.inf  # the threshold must be above this score
    above = [s for s in unsafe if s > bar]
    if not above:
        return Suggestion(
            name,
            None,
            None,
            0.0,
            len(unsafe),
            len(safe),
            f"no threshold keeps the false positive rate at {target_fpr:g} and flags any unsafe one",
        )
    threshold = _readable(above[0], bar)
    tp = sum(s >= threshold for s in unsafe)
    fp = sum(s >= threshold for s in safe)
    return Suggestion(name, threshold, round(tp / (tp + fp), 3), round(tp / len(unsafe), 3), len(unsafe), len(safe))


def _readable(score: float, bar: float) -> float:
    """`score` rounded down to 3 decimals when that lets no more safe scores (all <= bar) in."""
    down = math.floor(score * 1000) / 1000
    return down if down > bar else round(score, 6)


@dataclass(frozen=True)
class Calibration:
    target_fpr: float
    overall: Suggestion
    categories: tuple[Suggestion, ...]
    labels: int  # labelled verdicts used


def calibrate(records: Iterable[dict], target_fpr: float = DEFAULT_TARGET_FPR) -> Calibration:
    """The global and per-category suggestions from a log's records (query.iter_records)."""
    overall: list[tuple[float, bool]] = []
    by_code: dict[str, list[tuple[float, bool]]] = {}
    for verdict, truth in labelled(records):
        overall.append((verdict["score"], truth.unsafe))
        for code, score, unsafe in category_points(verdict, truth):
            by_code.setdefault(code, []).append((score, unsafe))
    codes = sorted(by_code, key=lambda c: (c[0], int(c[1:]) if c[1:].isdigit() else 0))
    return Calibration(
        target_fpr,
        suggest("global", overall, target_fpr),
        tuple(suggest(c, by_code[c], target_fpr) for c in codes),
        len(overall),
    )


def _line(s: Suggestion) -> str:
    support = f"({s.n_unsafe} unsafe, {s.n_safe} safe labels)"
    if s.threshold is None:
        return f"{s.name:<8} none: {s.why_none} {support}"
    return f"{s.name:<8} {s.threshold:<8g} precision {s.precision:.3f}  recall {s.recall:.3f}  {support}"


def report(cal: Calibration) -> str:
    """The text `python -m moderation.log thresholds` prints: a table, then the policy snippet."""
    lines = [
        f"thresholds from {cal.labels} labelled verdicts (operator labels), target false positive rate "
        f"{cal.target_fpr:g}; score >= threshold flags",
        "",
        _line(cal.overall),
    ]
    lines += [_line(s) for s in cal.categories] or ["(no labelled verdict names a category)"]
    return "\n".join(lines + ["", "# policy file (python app.py --policy FILE):", policy_snippet(cal)])


CALIBRATION_COLUMNS = ["Threshold for", "Suggested", "Precision", "Recall", "Unsafe labels", "Safe labels", "Note"]


def table_rows(cal: Calibration) -> list[list]:
    """The report as rows under CALIBRATION_COLUMNS (the review page's Calibration table)."""
    return [
        [s.name, s.threshold, s.precision, s.recall, s.n_unsafe, s.n_safe, s.why_none]
        for s in (cal.overall, *cal.categories)
    ]


def calibrate_log(engine, target_fpr: float = DEFAULT_TARGET_FPR) -> Calibration:
    """`calibrate` over every labelled turn of a log."""
    from moderation.log.query import TurnFilter, iter_records  # query imports labels; this stays plain

    return calibrate(iter_records(engine, TurnFilter(labelled="yes")), target_fpr)


def policy_snippet(cal: Calibration) -> str:
    """A TOML policy-file fragment with the numbers the labels support (and none they do not)."""
    lines = [f"# suggested by python -m moderation.log thresholds --target-fpr {cal.target_fpr:g}"]
    if cal.overall.threshold is not None:
        lines.append(f"threshold = {cal.overall.threshold:g}")
    else:
        lines.append(f"# threshold: {cal.overall.why_none}")
    chosen = [s for s in cal.categories if s.threshold is not None]
    if chosen:
        lines += ["", "[thresholds]"] + [f"{s.name} = {s.threshold:g}" for s in chosen]
    return "\n".join(lines)
