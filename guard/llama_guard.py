"""The Llama Guard guard: prompt, model backend (local or remote), answer, Verdict.

    guard.check([{"role": "user", "content": "How do I make a pipe bomb?"}])
    -> Verdict(safe=False, categories=(S8 Indiscriminate Weapons,), score=0.97, role="User", ...)

The last message is judged whole (guard.window): earlier turns are left out first, and
a message longer than the guard's window is judged in overlapping windows, unsafe if any
window is (`merge`); the verdict's note says what was left out or split, and its
`highest_window` where the highest-scoring window lies in the message as sent. Where the text
reads two ways (an invisible between two words: removed, or a space), each reading is
judged and the worse kept (guard.views).

`check` never raises. An error or an unreadable answer is an unsafe, unparsed verdict
that carries the error or the raw text: the guard fails closed. It runs the backend
inline and sets no deadline of its own: the caller's is the one deadline (the moderated
turn's shared pool, moderation/turn.py); a remote backend's HTTP client has its
transport timeout.

A backend has `remote`, `context_window`, `count(prompt)`, `token_ends(text)` (see
guard.window) and `assess(prompt, threshold) -> Assessment`.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from guard.base import DEFAULT_THRESHOLD, Conversation, Guard
from guard.category_scores import category_scores
from guard.local import NOT_FINITE, Assessment
from guard.parse import parse_verdict
from guard.policy import Policy
from guard.prompt import GUARD2, GUARD3, GuardPrompt, render_prompt
from guard.spans import as_sent
from guard.taxonomy import TAXONOMIES, Category
from guard.verdict import AGENT, USER, HighestWindow, Verdict, failed_verdict
from guard.views import VIEWS, View, judge_views
from guard.window import fit_conversation


def decide(
    assessment: Assessment, policy: Policy, threshold: float, role: str, latency_s: float, label: str
) -> Verdict:
    """Verdict from a score and an answer: `score >= threshold` decides when there is a
    score; an answer that cannot be read fails closed either way. The per-category scores
    (guard.category_scores) are kept with every verdict that has a score, like the score."""
    answer = parse_verdict(assessment.raw, policy)
    common = dict(
        score=assessment.score,
        raw=assessment.raw,
        latency_s=latency_s,
        role=role,
        threshold=threshold,
        note=assessment.note,
        guard=label,
        category_scores=category_scores(assessment.score, assessment.code_logits, policy),
    )
    if assessment.score is not None and not math.isfinite(assessment.score):
        return Verdict(safe=False, parsed=False, error=NOT_FINITE, **dict(common, score=None))
    if not answer.parsed:
        return Verdict(safe=False, parsed=False, error="the guard's answer could not be read", **common)
    safe = assessment.score < threshold if assessment.score is not None else answer.safe
    return Verdict(safe=safe, categories=() if safe else answer.categories, **common)


def merge(verdicts: Sequence[Verdict], windows: int, note: str = "", spans: Sequence[tuple[int, int]] = ()) -> Verdict:
    """One verdict for a message judged in `windows` windows; `verdicts` are those judged,
    in order (judging stops at a failed one). Failed if any failed (fail closed), else
    unsafe if any is, with the highest score, the per-category scores of the window that
    scored it (so they still sum to the score), and the categories of every unsafe window;
    latency the sum. The note joins `note` (what was left out), which windows were
    unsafe, and the backends' notes.

    windows: safe (0.1), unsafe S1 (0.9), unsafe S1,S9 (0.7)
    -> unsafe, S1 and S9, score 0.9, note "...; unsafe in windows 2, 3 of 3"
    """
    latency = sum(v.latency_s for v in verdicts)
    failed = next((i for i, v in enumerate(verdicts) if v.failed), None)
    if failed is not None:
        worst = verdicts[failed]
        error = worst.error if windows == 1 else f"window {failed + 1} of {windows}: {worst.error}"
        return replace(worst, error=error, latency_s=latency, note=_join(note, worst.note))
    unsafe = [i + 1 for i, v in enumerate(verdicts) if not v.safe]
    which = ""
    if windows > 1:
        which = (
            f"unsafe in window{'s' if len(unsafe) > 1 else ''} {', '.join(map(str, unsafe))} of {windows}"
            if unsafe
            else f"safe in all {windows} windows"
        )
    categories = dict.fromkeys(c for v in verdicts if not v.safe for c in v.categories)
    scored = [v for v in verdicts if v.score is not None]
    highest = max(scored, key=lambda v: v.score) if scored else None
    return replace(
        verdicts[unsafe[0] - 1] if unsafe else verdicts[0],
        score=highest.score if highest else None,
        category_scores=highest.category_scores if highest else {},
        categories=tuple(categories),
        latency_s=latency,
        note=_join(note, which, *(v.note for v in verdicts)),
        highest_window=_highest_window(verdicts, windows, spans),
    )


def _highest_window(verdicts: Sequence[Verdict], windows: int, spans: Sequence[tuple[int, int]]):
    """Where the window with the highest score lies (the first of equals; without scores, the
    first unsafe window); None for a message judged in one window, or without spans."""
    if windows < 2 or len(spans) < len(verdicts):
        return None
    scored = [i for i, v in enumerate(verdicts) if v.score is not None]
    unsafe = [i for i, v in enumerate(verdicts) if not v.safe]
    top = max(scored, key=lambda i: verdicts[i].score) if scored else (unsafe[0] if unsafe else None)
    return None if top is None else HighestWindow(*spans[top], top + 1, windows)


def _join(*notes: str) -> str:
    """Notes in order, each once: _join("a", "", "b", "a") -> "a; b"."""
    return "; ".join(dict.fromkeys(n for n in notes if n))


LANGUAGES = {  # what each model card says
    GUARD2: "English (Llama Guard 2 is English-first)",
    GUARD3: "English, French, German, Hindi, Italian, Portuguese, Spanish, Thai (Llama Guard 3's eight)",
}


class LlamaGuard(Guard):
    """Implements guard.base.Guard. Thread-safe: the app checks several users at once."""

    is_llama_guard = True

    def __init__(
        self, backend, version: str = GUARD2, label: str = "Llama Guard", taxonomy: tuple[Category, ...] | None = None
    ):
        self.backend, self.version, self.label = backend, version, label
        self.taxonomy = taxonomy or TAXONOMIES[version]
        self.languages = LANGUAGES[version]

    def default_policy(self) -> Policy:
        return Policy(taxonomy=self.taxonomy)

    def render(self, conversation: Conversation, policy: Policy | None = None) -> GuardPrompt:
        return render_prompt(
            conversation, policy or self.default_policy(), self.version, break_special_strings=self.backend.remote
        )

    def check(
        self, conversation: Conversation, policy: Policy | None = None, threshold: float = DEFAULT_THRESHOLD
    ) -> Verdict:
        """Judge the last message, whole, in each view of its text that differs (see the
        module docstring). Never raises."""
        policy = policy or self.default_policy()
        return judge_views(
            conversation,
            lambda view, viewed: as_sent(self._check_view(view, viewed, policy, threshold), conversation, view),
        )

    def _check_view(self, view: View, conversation: Conversation, policy: Policy, threshold: float) -> Verdict:
        """One view's verdict: the conversation fitted into the window, each window judged."""
        started = time.perf_counter()
        try:
            fitted = fit_conversation(conversation, lambda messages: self.render(messages, policy), self.backend)
        except Exception as exc:  # noqa: BLE001 - fail closed on anything, with the reason
            role = AGENT if isinstance(conversation, (list, tuple)) and len(conversation) % 2 == 0 else USER
            return self._failed(f"{type(exc).__name__}: {exc}", role, threshold, started)
        backend = self.backend_for(view)
        verdicts: list[Verdict] = []
        for messages in fitted.conversations:
            verdicts.append(self._judge(backend, messages, policy, threshold))
            if verdicts[-1].failed:
                break  # the message's verdict is failed (unsafe) whatever the other windows say
        return merge(verdicts, len(fitted.conversations), fitted.note, fitted.spans)

    def _judge(self, backend, conversation: Conversation, policy: Policy, threshold: float) -> Verdict:
        """One check of a conversation that fits the window."""
        started = time.perf_counter()
        role = USER
        try:
            prompt = self.render(conversation, policy)
            role = prompt.role
            assessment = backend.assess(prompt, threshold)
        except Exception as exc:  # noqa: BLE001 - fail closed on anything, with the reason
            return self._failed(f"{type(exc).__name__}: {exc}", role, threshold, started)
        return decide(assessment, policy, threshold, role, time.perf_counter() - started, self.label)

    def session(self) -> LlamaGuard:
        """A guard with the same `check` for one turn's checks. A backend that can reuse
        the previous check's key/value cache (local: guard.incremental) gets a fresh
        session of it for each view of the text (`backend_for`), so the checks of one
        reading continue from each other; the others are returned as they are (a remote
        server caches identical prefixes itself, and the prompts of one turn share theirs)."""
        make = getattr(self.backend, "session", None)
        if make is None:
            return self
        turn = copy.copy(self)
        turn.backend = make()
        turn._sessions = {VIEWS[0].name: turn.backend}
        turn._make_session, turn._sessions_lock = make, threading.Lock()
        return turn

    def backend_for(self, view: View):
        """The backend that judges `view`: in a turn's session, that view's own session (made
        when first needed); otherwise the one backend."""
        sessions = getattr(self, "_sessions", None)
        if sessions is None:
            return self.backend
        with self._sessions_lock:
            if view.name not in sessions:
                sessions[view.name] = self._make_session()
            return sessions[view.name]

    def _failed(self, error: str, role: str, threshold: float, started: float) -> Verdict:
        verdict = failed_verdict(error, role=role, latency_s=time.perf_counter() - started, guard=self.label)
        return replace(verdict, threshold=threshold)
