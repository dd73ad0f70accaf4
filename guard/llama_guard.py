"""The Llama Guard guard: prompt, model backend (local or remote), answer, Verdict.

    guard.check([{"role": "user", "content": "How do I make a pipe bomb?"}])
    -> Verdict(safe=False, categories=(S8 Indiscriminate Weapons,), score=0.97, role="User", ...)

`check` never raises. An error, a timeout or an unreadable answer is an unsafe,
unparsed verdict that carries the error or the raw text: the guard fails closed.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from guard.base import DEFAULT_THRESHOLD, Conversation
from guard.local import NOT_FINITE, Assessment
from guard.parse import parse_verdict
from guard.policy import Policy
from guard.prompt import GUARD2, GuardPrompt, render_prompt
from guard.taxonomy import TAXONOMIES, Category
from guard.verdict import USER, Verdict, failed_verdict


def decide(assessment: Assessment, policy: Policy, threshold: float, role: str, latency_s: float,
           label: str) -> Verdict:
    """Verdict from a score and an answer: `score >= threshold` decides when there is a
    score; an answer that cannot be read fails closed either way."""
    answer = parse_verdict(assessment.raw, policy)
    common = dict(score=assessment.score, raw=assessment.raw, latency_s=latency_s, role=role,
                  threshold=threshold, note=assessment.note, guard=label)
    if assessment.score is not None and not math.isfinite(assessment.score):
        return Verdict(safe=False, parsed=False, error=NOT_FINITE, **dict(common, score=None))
    if not answer.parsed:
        return Verdict(safe=False, parsed=False, error="the guard's answer could not be read", **common)
    safe = assessment.score < threshold if assessment.score is not None else answer.safe
    return Verdict(safe=safe, categories=() if safe else answer.categories, **common)


class LlamaGuard:
    """Implements guard.base.Guard. Thread-safe: the app checks several users at once."""

    is_llama_guard = True

    def __init__(self, backend, version: str = GUARD2, label: str = "Llama Guard", timeout_s: float = 60.0,
                 taxonomy: tuple[Category, ...] | None = None):
        self.backend, self.version, self.label, self.timeout_s = backend, version, label, timeout_s
        self.taxonomy = taxonomy or TAXONOMIES[version]
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="llama-guard")

    def default_policy(self) -> Policy:
        return Policy(taxonomy=self.taxonomy)

    def render(self, conversation: Conversation, policy: Policy | None = None) -> GuardPrompt:
        return render_prompt(conversation, policy or self.default_policy(), self.version,
                             break_special_strings=self.backend.remote)

    def check(self, conversation: Conversation, policy: Policy | None = None,
              threshold: float = DEFAULT_THRESHOLD) -> Verdict:
        started = time.perf_counter()
        policy = policy or self.default_policy()
        role = USER
        try:
            prompt = self.render(conversation, policy)
            role = prompt.role
            future = self._pool.submit(self.backend.assess, prompt, threshold)
            assessment = future.result(timeout=self.timeout_s)
        except FutureTimeout:
            return self._failed(f"the guard did not answer within {self.timeout_s:g} s", role, threshold, started)
        except Exception as exc:  # noqa: BLE001 - fail closed on anything, with the reason
            return self._failed(f"{type(exc).__name__}: {exc}", role, threshold, started)
        return decide(assessment, policy, threshold, role, time.perf_counter() - started, self.label)

    def session(self) -> "LlamaGuard":
        """A guard with the same `check` for one turn's checks. A backend that can reuse
        the previous check's key/value cache (local: guard.incremental) gets a fresh
        session of it; the others are returned as they are (a remote server caches
        identical prefixes itself, and the prompts of one turn share theirs)."""
        make = getattr(self.backend, "session", None)
        if make is None:
            return self
        turn = copy.copy(self)
        turn.backend = make()
        return turn

    def _failed(self, error: str, role: str, threshold: float, started: float) -> Verdict:
        verdict = failed_verdict(error, role=role, latency_s=time.perf_counter() - started, guard=self.label)
        return replace(verdict, threshold=threshold)
