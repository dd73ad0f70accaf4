"""Llama Guard behind an OpenAI-compatible completions endpoint (TGI, vLLM, Inference
Endpoints, transformers serve). We send our own rendered prompt, so the operator's
policy applies; the server tokenizes it, so special-token strings typed in messages are
broken up in the text (see guard.prompt).

The score comes from the first token's log-probabilities when the server returns them
(`logprobs=5`: vLLM, TGI), as P(unsafe) / (P(unsafe) + P(safe)), the same two-way form as
the local backend. A server that ignores the parameter (transformers serve) or rejects
it gets a verdict from the answer text alone, and the verdict's note says so.

Per-category scores (guard.category_scores) come from the same log-probabilities, at the
token after the answer reads `unsafe\nS`: the top entries that are code numbers,
normalised over the policy's codes (a code outside the top five counts as 0). A safe
answer never reaches that token, so its verdict carries none (no extra request is made).

The server tokenizes, so we count in UTF-8 bytes, a guaranteed upper bound (`count`); the
window is the server's `max_model_len` when it lists one (vLLM), else 8,192 (Llama 3).
The key and the served model's name are parameters (the app reads OPENAI_API_KEY and
GUARD_MODEL_NAME in `moderation.settings`)."""

from __future__ import annotations

import logging
import math

from guard.category_scores import code_logprobs_from_top
from guard.local import Assessment
from guard.parse import parse_verdict
from guard.prompt import GuardPrompt, endpoint_text
from weights import CONTEXT_WINDOW
from weights.endpoint import api_base, openai_client, served_model

log = logging.getLogger(__name__)
TOP_LOGPROBS = 5
MAX_TOKENS = 12  # "unsafe\nS1,S10" and an end-of-turn
NO_LOGPROBS = "the endpoint returned no log-probabilities: the verdict rests on the answer text alone"


def utf8_ends(text: str) -> list[int]:
    """Where each unit of the byte bound ends: a character of n UTF-8 bytes counts n times.

    >>> utf8_ends("né")    # "é" is 2 bytes
    [1, 2, 2]
    """
    return [i + 1 for i, ch in enumerate(text) for _ in ch.encode("utf-8", "surrogatepass")]


def served_window(client, model: str) -> int | None:
    """The server's context length for `model` if its model list says (vLLM's
    `max_model_len`), else None."""
    import openai  # imported with an endpoint only (it takes a while)

    try:
        listed = client.models.list().data
    except openai.OpenAIError as exc:
        log.warning("could not read the guard endpoint's model list (%s): assuming %d tokens", exc, CONTEXT_WINDOW)
        return None
    for entry in listed:
        length = getattr(entry, "max_model_len", None)
        if entry.id == model and isinstance(length, int) and length > 0:
            return length
    return None


def two_way_score(top: dict[str, float]) -> float | None:
    """P(unsafe) / (P(unsafe) + P(safe)) from first-token log-probs, or None if neither is there.
    A word missing from the top entries counts as probability 0.

    >>> round(two_way_score({"unsafe": -0.1, "safe": -2.4}), 3)
    0.909
    """
    found: dict[str, float] = {}
    for token, logprob in (top or {}).items():
        word = str(token).strip().lower()
        if word in ("safe", "unsafe") and isinstance(logprob, (int, float)):
            found[word] = max(found.get(word, -math.inf), float(logprob))
    if not found:
        return None
    unsafe, safe = found.get("unsafe", -math.inf), found.get("safe", -math.inf)
    if unsafe == -math.inf:
        return 0.0
    return 1.0 / (1.0 + math.exp(safe - unsafe)) if safe != -math.inf else 1.0


def _first_token_logprobs(choice) -> dict[str, float] | None:
    logprobs = getattr(choice, "logprobs", None)
    top = getattr(logprobs, "top_logprobs", None) if logprobs else None
    return top[0] if top else None


def _code_logprobs(choice, before: str = "") -> dict[str, float]:
    """The first category code's top log-probabilities in a completion (see the module
    docstring); {} without log-probabilities or when the answer names no code."""
    logprobs = getattr(choice, "logprobs", None)
    if not logprobs:
        return {}
    return code_logprobs_from_top(
        getattr(logprobs, "tokens", None) or [], getattr(logprobs, "top_logprobs", None) or [], before
    )


class RemoteGuardModel:
    remote = True

    def __init__(
        self,
        url: str,
        *,
        key: str | None = None,
        model: str | None = None,
        timeout_s: float = 60.0,
        context_window: int | None = None,
    ):
        """model: the served model's name (default: the first the endpoint lists). timeout_s:
        the HTTP client's timeout for one request (the transport's own; the caller sets the
        deadline on a whole check)."""
        self.url = api_base(url)
        self.client = openai_client(url, key, timeout_s)
        self.model = model or served_model(self.client)
        self.context_window = context_window or served_window(self.client, self.model) or CONTEXT_WINDOW
        self.ask_logprobs = True  # cleared when the server rejects the parameter

    def count(self, prompt: GuardPrompt) -> int:
        """An upper bound on the tokens the server reads for `prompt`: its UTF-8 bytes + 1.

        Llama 3's tokenizer is byte-level BPE: every token it makes from text stands for at
        least one byte (merges only join bytes), so n bytes are at most n tokens. The
        format's special tokens (Guard 3's headers) are one token each but 10-20 bytes
        here, also over-counted; typed special-token strings are broken up (guard.prompt),
        so they stay text. The +1 is the BOS the server adds. English runs about 4 bytes a
        token, so the bound is cautious: a remote guard splits into windows sooner than a
        local one would, never later."""
        return len(endpoint_text(prompt).encode("utf-8", "surrogatepass")) + 1

    def token_ends(self, text: str) -> list[int]:
        """The byte bound's units (see `count`), for guard.window to split on characters."""
        return utf8_ends(text)

    def _complete(self, text: str):
        kwargs = dict(model=self.model, prompt=text, max_tokens=MAX_TOKENS, temperature=0.0)
        if self.ask_logprobs:
            import openai  # imported with an endpoint only (it takes a while)

            try:
                return self.client.completions.create(logprobs=TOP_LOGPROBS, **kwargs).choices[0]
            except openai.BadRequestError as exc:
                if "logprob" not in str(exc).lower():
                    raise
                log.warning("%s rejects logprobs (%s): verdicts will rest on the answer text", self.url, exc)
                self.ask_logprobs = False
        return self.client.completions.create(**kwargs).choices[0]

    def assess(self, prompt: GuardPrompt, threshold: float) -> Assessment:
        text = endpoint_text(prompt)
        choice = self._complete(text)
        raw = choice.text or ""
        score = two_way_score(_first_token_logprobs(choice) or {})
        if score is None:
            return Assessment(None, raw, NO_LOGPROBS)
        codes = _code_logprobs(choice)
        if score >= threshold and parse_verdict(raw).safe:
            # the score says unsafe but the greedy answer said safe: ask for the categories
            forced = self.client.completions.create(
                model=self.model, prompt=text + "unsafe", max_tokens=MAX_TOKENS, temperature=0.0, logprobs=TOP_LOGPROBS
            ).choices[0]
            raw, codes = "unsafe" + (forced.text or ""), _code_logprobs(forced, before="unsafe")
        return Assessment(score, raw, code_logits=codes)
