"""The one interface every guard implements (Llama Guard local/remote, offline classifier).

A conversation is a list of {"role": "user"|"assistant", "content": str} messages that
alternate, starting with "user". The last message is the one judged: an odd count
judges a User message, an even count an Agent (assistant) message.
"""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence

from guard.policy import Policy
from guard.taxonomy import Category
from guard.verdict import Verdict

Conversation = Sequence[Mapping[str, str]]
DEFAULT_THRESHOLD = 0.5


class Guard(Protocol):
    label: str  # what the UI shows, e.g. "Llama Guard 2 (meta-llama/Meta-Llama-Guard-2-8B)"
    is_llama_guard: bool  # False for the offline classifier: the UI says so
    taxonomy: tuple[Category, ...]

    def check(self, conversation: Conversation, policy: Policy | None = None,
              threshold: float = DEFAULT_THRESHOLD) -> Verdict:
        """Judge the last message. Never raises: failures are unsafe, unparsed verdicts."""
        ...
