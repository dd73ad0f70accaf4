"""The Verdict: what a guard says about one message, as a frozen value.

>>> v = Verdict(safe=False, categories=(Category("S1", "Violent Crimes"),), score=0.93,
...             raw="unsafe\\nS1", parsed=True, latency_s=0.21, role="User")
>>> v.to_dict()["categories"]
[{'code': 'S1', 'name': 'Violent Crimes'}]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from guard.taxonomy import Category

USER, AGENT = "User", "Agent"


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
        }


def failed_verdict(error: str, role: str = USER, raw: str = "", latency_s: float = 0.0, guard: str = "") -> Verdict:
    """An unsafe, unparsed verdict: the guard fails closed on purpose."""
    return Verdict(safe=False, raw=raw, parsed=False, latency_s=latency_s, role=role, error=error, guard=guard)
