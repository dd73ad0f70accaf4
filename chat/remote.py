"""Streaming replies from an OpenAI-compatible chat-completions endpoint (TGI's
Messages API, vLLM, Inference Endpoints, `transformers serve`).

    RemoteChat("http://127.0.0.1:8080/v1", key="hf_...").stream(messages, settings)

The key, the served model's name and the context window are parameters (the app reads
OPENAI_API_KEY, CHAT_MODEL_NAME and CHAT_CONTEXT_WINDOW in `moderation.settings`).

The endpoint does the tokenising, so the context fit here is an estimate (about four
characters a token, plus a margin); the server still rejects what it cannot take, and
that rejection reaches the person as a ChatError.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from chat.backend import ChatBackend, ChatError, Fitted, GenerationSettings, Message
from chat.context import fit_messages
from weights import CONTEXT_WINDOW
from weights.endpoint import api_base, openai_client, served_model
from weights.specials import defuse_messages

CHARS_PER_TOKEN = 4


def message_estimates(messages: Sequence[Message]) -> list[int]:
    """About how many tokens each message takes, its role's framing included."""
    return [len(m["content"]) // CHARS_PER_TOKEN + 8 for m in messages]


def estimate_tokens(messages: Sequence[Message]) -> int:
    return sum(message_estimates(messages))


def _error_detail(body) -> str:
    """The server's own words from an error body: FastAPI's {"detail"}, TGI's {"error": str},
    OpenAI and vLLM's {"error": {"message"}} (the client may have unwrapped "error")."""
    if isinstance(body, str):
        return body.strip()
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            if body.get(key):
                return _error_detail(body[key])
    return ""


def endpoint_error(url: str, exc: Exception) -> ChatError:
    """A ChatError that says what went wrong with the endpoint, in words."""
    import openai  # imported with an endpoint only (it takes a while)

    if isinstance(exc, openai.APITimeoutError):
        return ChatError(f"The endpoint {url} did not answer in time.")
    if isinstance(exc, openai.APIConnectionError):
        return ChatError(f"Could not reach the endpoint {url}: is the server running and the URL right?")
    if isinstance(exc, openai.APIStatusError):
        detail = _error_detail(exc.body) or exc.message
        hint = " Check the API key (OPENAI_API_KEY or HF_TOKEN)." if exc.status_code in (401, 403) else ""
        return ChatError(f"The endpoint {url} answered {exc.status_code}: {detail}{hint}")
    return ChatError(f"The endpoint {url} failed: {type(exc).__name__}: {exc}")


def request_options(settings: GenerationSettings) -> dict:
    """Chat-completions parameters for `settings`. Greedy is temperature 0 with no top_p
    (TGI refuses top_p=1.0), and so is top_p 0, which keeps only the most likely token (as
    the local sampler does; TGI and vLLM refuse 0); repetition_penalty is a TGI/vLLM
    extension, sent only when set.

    request_options(GenerationSettings(temperature=0, max_new_tokens=64))
    -> {"max_tokens": 64, "temperature": 0.0}
    """
    options: dict = {"max_tokens": int(settings.max_new_tokens), "temperature": 0.0}
    if settings.temperature > 0 and settings.top_p > 0:
        options.update(temperature=float(settings.temperature), top_p=float(settings.top_p))
    if settings.seed is not None:
        options["seed"] = int(settings.seed)
    if settings.repetition_penalty != 1.0:
        options["extra_body"] = {"repetition_penalty": float(settings.repetition_penalty)}
    return options


class RemoteChat(ChatBackend):
    """An OpenAI-compatible endpoint behind the chat interface. `model`: the served model's
    name (default: the first the endpoint lists); `context_window`: the tokens it reads,
    prompt and reply together (the server does not say)."""

    def __init__(
        self,
        url: str,
        *,
        key: str | None = None,
        model: str | None = None,
        timeout_s: float = 60.0,
        context_window: int = CONTEXT_WINDOW,
    ):
        self.url = api_base(url)
        self.client = openai_client(url, key, timeout_s)
        self.model = model or self._served_model()
        self.context_window = context_window
        self.label = f"{self.model} @ {self.url}"
        self.served_model = self.model

    def _served_model(self) -> str:
        try:
            return served_model(self.client)
        except Exception as exc:
            raise endpoint_error(self.url, exc) from exc

    def fit(self, messages: Sequence[Message], settings: GenerationSettings) -> Fitted:
        return fit_messages(messages, estimate_tokens, self.context_window, settings.max_new_tokens, message_estimates)

    def stream(
        self, messages: Sequence[Message], settings: GenerationSettings, stop: threading.Event | None = None
    ) -> Iterator[str]:
        fitted = self.fit(messages, settings)
        try:
            response = self.client.chat.completions.create(
                model=self.model, messages=defuse_messages(fitted.messages), stream=True, **request_options(settings)
            )
        except Exception as exc:
            raise endpoint_error(self.url, exc) from exc
        try:
            for chunk in response:
                if stop is not None and stop.is_set():
                    break
                for choice in chunk.choices or []:
                    text = getattr(choice.delta, "content", None)
                    if text:
                        yield text
        except Exception as exc:
            raise endpoint_error(self.url, exc) from exc
        finally:
            response.close()  # closing the connection makes TGI/vLLM stop generating
