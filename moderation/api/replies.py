"""OpenAI-shaped response bodies built from verdicts and turn states (no FastAPI here).

A moderation result carries OpenAI's fields plus `llama_guard`, the verdict itself:

    {"flagged": true,
     "categories": {"violence": true, "illicit/violent": true, "hate": false, ...},
     "category_scores": {"violence": 0.95, "illicit/violent": 0.95, "hate": 0.003, ...},
     "llama_guard": {"safe": false, "categories": [{"code": "S8", "name": "Indiscriminate Weapons"}],
                     "score": 0.97, "threshold": 0.5, "category_scores": {"S1": 0.004, "S8": 0.946, ...}, ...}}

`category_scores` comes from the verdict's per-category scores, p(unsafe) x p(category |
unsafe) (guard.category_scores, guard.offline): an OpenAI category scores the sum over the
policy's categories that map to it (Violent Crimes and Indiscriminate Weapons both feed
"violence"; the first category the guard names is one of them with that probability).
Where the verdict has no per-category scores (an endpoint without log-probabilities, a
safe answer from one), the one unsafe probability is carried on the OpenAI categories
matching the categories the guard named, and 0.0 on the others.
"""

from __future__ import annotations

import time
import uuid

from guard.policy import Policy
from guard.verdict import Verdict
from moderation.turn import ANSWERED, TurnState

OPENAI_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
# Llama Guard category names (versions 2 and 3) -> OpenAI categories; names without a
# counterpart (Specialized Advice, Privacy, Intellectual Property, Defamation, Elections,
# Code Interpreter Abuse, custom ones) flag the input but set no OpenAI category.
_BY_NAME = {
    "violent crimes": ("violence", "illicit/violent"),
    "non-violent crimes": ("illicit",),
    "sex crimes": ("sexual", "illicit"),
    "sex-related crimes": ("sexual", "illicit"),
    "child exploitation": ("sexual/minors",),
    "child sexual exploitation": ("sexual/minors",),
    "indiscriminate weapons": ("violence", "illicit/violent"),
    "hate": ("hate",),
    "self-harm": ("self-harm",),
    "suicide & self-harm": ("self-harm",),
    "sexual content": ("sexual",),
}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def openai_scores(verdict: Verdict, policy: Policy | None = None) -> dict[str, float]:
    """OpenAI's `category_scores` from the verdict (see the module docstring). Category names
    come from `policy` (the one the verdict was judged under) and from the verdict's own
    categories."""
    names = {c.code: c.name for c in (policy.enabled() if policy else ())}
    names.update((c.code, c.name) for c in verdict.categories)
    if verdict.category_scores:
        totals = dict.fromkeys(OPENAI_CATEGORIES, 0.0)
        for code, score in verdict.category_scores.items():
            for k in _BY_NAME.get(names.get(code, "").lower(), ()):
                totals[k] += float(score)
        return {k: min(1.0, v) for k, v in totals.items()}
    named = {k for c in verdict.categories for k in _BY_NAME.get(c.name.lower(), ())}
    score = float(verdict.score) if verdict.score is not None else (0.0 if verdict.safe else 1.0)
    return {k: score if k in named else 0.0 for k in OPENAI_CATEGORIES}


def moderation_result(verdict: Verdict, policy: Policy | None = None) -> dict:
    named = {k for c in verdict.categories for k in _BY_NAME.get(c.name.lower(), ())}
    return {
        "type": "moderation_result",
        "model": verdict.guard,
        "flagged": not verdict.safe,
        "categories": {k: k in named for k in OPENAI_CATEGORIES},
        "category_scores": openai_scores(verdict, policy),
        "category_applied_input_types": {k: ["text"] for k in OPENAI_CATEGORIES},
        "llama_guard": verdict.to_dict(),
    }


def moderation_body(verdicts: list[Verdict], model: str, policy: Policy | None = None) -> dict:
    return {"id": new_id("modr"), "model": model, "results": [moderation_result(v, policy) for v in verdicts]}


def _side(verdict: Verdict | None, policy: Policy | None) -> dict | None:
    """One side of OpenAI's moderated-completion field: the results, or an error when the
    guard could not judge (the turn was then blocked)."""
    if verdict is None:
        return None
    if verdict.failed:
        return {"type": "error", "code": "guard_failed", "message": verdict.error or "unreadable guard answer"}
    return {"type": "moderation_results", "model": verdict.guard, "results": [moderation_result(verdict, policy)]}


def moderation_field(state: TurnState, policy: Policy | None = None) -> dict:
    """The `moderation` field of a completion, in the shape of OpenAI's moderated
    completions (`input` / `output` results), plus this app's outcome, notice and every
    verdict with its stage (prompt, partial, response)."""
    prompt = next((c.verdict for c in state.checks if c.stage == "prompt"), None)
    reply = next((c.verdict for c in reversed(state.checks) if c.stage != "prompt"), None)
    return {
        "input": _side(prompt, policy),
        "output": _side(reply, policy),
        "outcome": state.outcome,
        "flagged": state.flagged,
        "notice": state.notice,
        "verdicts": [dict(c.verdict.to_dict(), stage=c.stage) for c in state.checks],
    }


def finish_reason(state: TurnState, cut_by_stop: bool, length: bool) -> str:
    if state.outcome != ANSWERED:
        return "content_filter"
    return "length" if length and not cut_by_stop and not state.stopped else "stop"


def completion_body(
    cid: str, model: str, text: str, reason: str, state: TurnState, usage: dict | None, policy: Policy | None = None
) -> dict:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason, "logprobs": None}
        ],
        "usage": usage,
        "moderation": moderation_field(state, policy),
    }


def chunk_body(cid: str, model: str, delta: dict, reason: str | None = None, **extra) -> dict:
    """One `chat.completion.chunk`; `extra` adds top-level fields (moderation, usage)."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}]
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        **extra,
    }


def models_body(model_id: str, guard_label: str, chat_label: str) -> dict:
    return {
        "object": "list",
        "data": [
            {
                "id": model_id,
                "object": "model",
                "created": 0,
                "owned_by": "moderated-llama3",
                "chat_model": chat_label,
                "guard": guard_label,
            }
        ],
    }
