"""The chat side's one small interface, its settings and its errors.

A backend turns messages into a stream of text deltas:

    backend.stream([{"role": "user", "content": "Hi"}], GenerationSettings(temperature=0))
    -> "Hello", "!", " How", " can", ...

`fit` says which messages will be sent (the oldest turns are dropped to make room
for the reply); `stream` fits by itself, so calling it alone is safe.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Message = dict  # {"role": "system"|"user"|"assistant", "content": str}


class ChatError(Exception):
    """A chat failure whose message can be shown to a person as it is."""


class ContextTooLong(ChatError):
    """The newest message (with the system prompt and the reply's room) cannot fit."""


@dataclass(frozen=True)
class GenerationSettings:
    temperature: float = 0.6  # 0 means greedy
    top_p: float = 0.9
    max_new_tokens: int = 512
    repetition_penalty: float = 1.0
    seed: int | None = None


@dataclass(frozen=True)
class Fitted:
    messages: list[Message]
    dropped: int  # how many of the oldest history messages were left out


class ChatBackend(Protocol):
    """What the moderated turn, the page and the API use of a chat model. Backends subclass
    it explicitly, so the optional capabilities have their defaults here."""

    label: str  # what the page shows
    context_window: int  # tokens the model reads, prompt and reply together
    tokenizer: Any = None  # the model's own tokenizer; None where the server tokenizes (an endpoint)
    served_model: str | None = None  # the model name an endpoint serves; None for a local model

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """The token ids the model reads for `messages`; only a backend with a `tokenizer` can tell."""
        raise ChatError(f"{self.label} does not tokenize for itself")

    def close(self) -> None:
        """Release what the backend holds (a local model's generation threads); the default
        holds nothing."""

    def fit(self, messages: Sequence[Message], settings: GenerationSettings) -> Fitted: ...

    def stream(
        self, messages: Sequence[Message], settings: GenerationSettings, stop: threading.Event | None = None
    ) -> Iterator[str]: ...
