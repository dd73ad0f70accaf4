"""Llama Guard behind an OpenAI-compatible completions endpoint (TGI, vLLM, Inference
Endpoints). We send our own rendered prompt, so the operator's policy applies; the
score comes from the first token's log-probabilities when the server returns them,
otherwise the verdict rests on the answer text alone, and says so."""

from __future__ import annotations

import math
import os

from guard.local import Assessment
from guard.prompt import GUARD3, GuardPrompt, model_input_text
from weights.endpoint import api_base, openai_client, served_model

MAX_TOKENS = 12  # "unsafe\nS1,S10" and an end-of-turn
NO_LOGPROBS = "the endpoint returned no log-probabilities: the verdict rests on the answer text alone"


def two_way_score(top: dict[str, float]) -> float | None:
    """P(unsafe) / (P(unsafe) + P(safe)) from first-token log-probs, or None if absent.

    >>> round(two_way_score({"unsafe": -0.1, "safe": -2.4}), 3)
    0.909
    """
    found: dict[str, float] = {}
    for token, logprob in top.items():
        word = token.strip().lower()
        if word in ("safe", "unsafe"):
            found[word] = max(found.get(word, -math.inf), logprob)
    if not found:
        return None
    unsafe, safe = found.get("unsafe", -math.inf), found.get("safe", -math.inf)
    if unsafe == -math.inf:
        return 0.0
    return 1.0 / (1.0 + math.exp(safe - unsafe)) if safe != -math.inf else 1.0


class RemoteGuardModel:
    remote = True

    def __init__(self, url: str, *, key: str | None = None, model: str | None = None, timeout_s: float = 60.0):
        self.url = api_base(url)
        self.client = openai_client(url, key, timeout_s)
        self.model = model or os.environ.get("GUARD_MODEL_NAME") or served_model(self.client)

    def assess(self, prompt: GuardPrompt, threshold: float) -> Assessment:
        # Guard 2: servers add the BOS themselves; Guard 3's text carries its own header tokens
        text = model_input_text(prompt) if prompt.version == GUARD3 else prompt.text
        response = self.client.completions.create(model=self.model, prompt=text, max_tokens=MAX_TOKENS,
                                                  temperature=0.0, logprobs=5)
        choice = response.choices[0]
        top = getattr(choice.logprobs, "top_logprobs", None) if choice.logprobs else None
        score = two_way_score(top[0]) if top else None
        return Assessment(score, choice.text or "", "" if score is not None else NO_LOGPROBS)

