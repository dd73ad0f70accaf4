"""The Verdict: what a guard says about one message, as a frozen value.

>>> v = Verdict(safe=False, categories=(Category("S1", "Violent Crimes"),), score=0.93,
...             raw="unsafe\\nS1", parsed=True, latency_s=0.21, role="User")
>>> v.to_dict()["categories"]
[{'code': 'S1', 'name': 'Violent Crimes'}]

A message judged in several windows (guard.window, guard.offline) keeps where its
highest-scoring window lies, as character offsets into the message as it was sent:

>>> HighestWindow(start=1040, end=2210, index=2, count=3).to_dict()
{'start': 1040, 'end': 2210, 'index': 2, 'count': 3, 'mapped': False}
"""

from __future__ import annotations

from dataclasses import dataclass, field

from guard.taxonomy import Category

USER, AGENT = "User", "Agent"


@dataclass(frozen=True)
class HighestWindow:
    """Which window of a message judged in several scored highest: text[start:end] of the
    judged message (the last one), window `index` (from 1) of `count`. `mapped`: the guard
    read a view of the text that differs from it (hidden characters removed, guard.views)
    and start/end were mapped back from the view to the text as sent (guard.spans)."""

    start: int
    end: int
    index: int
    count: int
    mapped: bool = False

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "index": self.index, "count": self.count, "mapped": self.mapped}


@dataclass(frozen=True)
class Verdict:
    safe: bool
    categories: tuple[Category, ...] = ()
    score: float | None = None  # probability of "unsafe", when the backend exposes it
    raw: str = ""  # the guard's own answer, verbatim
    parsed: bool = True  # False: unreadable answer or failed check; then safe is False
    latency_s: float = 0.0
    role: str = USER  # which side was judged: "User" (prompt) or "Agent" (response)
    threshold: float | None = None  # the threshold the score was compared with
    error: str | None = None  # why the check failed, when it did
    note: str = ""  # e.g. "no logprobs from the endpoint: verdict from text alone"
    guard: str = ""  # label of the guard that judged
    # {category code: p(unsafe) x p(category | unsafe)} over the policy's categories, when the
    # backend exposes them (guard.category_scores, guard.offline); they sum to `score`
    category_scores: dict[str, float] = field(default_factory=dict, hash=False)
    # where the highest-scoring window lies, for a message judged in several; None for one
    highest_window: HighestWindow | None = None

    def __post_init__(self):
        if self.safe and not self.parsed:
            raise ValueError("a verdict that was not read from the guard cannot be safe (safe=True, parsed=False)")

    @property
    def failed(self) -> bool:
        """True when no real judgement was made (error or unreadable answer)."""
        return not self.parsed

    def to_dict(self) -> dict:
        return {
            "safe": self.safe,
            "categories": [c.to_dict() for c in self.categories],
            "score": self.score,
            "threshold": self.threshold,
            "role": self.role,
            "parsed": self.parsed,
            "raw": self.raw,
            "latency_ms": round(self.latency_s * 1000, 1),
            "error": self.error,
            "note": self.note,
            "guard": self.guard,
            "category_scores": dict(self.category_scores),
            "highest_window": self.highest_window.to_dict() if self.highest_window else None,
        }


def failed_verdict(error: str, role: str = USER, raw: str = "", latency_s: float = 0.0, guard: str = "") -> Verdict:
    """An unsafe, unparsed verdict: the guard fails closed on purpose."""
    return Verdict(safe=False, raw=raw, parsed=False, latency_s=latency_s, role=role, error=error, guard=guard)
