"""The one interface every guard implements (Llama Guard local/remote, offline classifier).

A conversation is a list of {"role": "user"|"assistant", "content": str} messages that
alternate, starting with "user". The last message is the one judged: an odd count
judges a User message, an even count an Agent (assistant) message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from guard.policy import Policy
from guard.taxonomy import Category
from guard.verdict import Verdict

Conversation = Sequence[Mapping[str, str]]
DEFAULT_THRESHOLD = 0.5


class Guard(Protocol):
    """What the moderated turn, the page and the API use of a guard. Guards subclass it
    explicitly, so the optional capability (`session`) has its default here."""

    label: str  # what the UI shows, e.g. "Llama Guard 2 (meta-llama/Meta-Llama-Guard-2-8B)"
    is_llama_guard: bool  # False for the offline classifier: the UI says so
    taxonomy: tuple[Category, ...]  # the categories a policy may switch on and off
    languages: str = "English"  # which languages it is made and measured for, as the page says it

    def check(
        self, conversation: Conversation, policy: Policy | None = None, threshold: float = DEFAULT_THRESHOLD
    ) -> Verdict:
        """Judge the last message. Never raises: failures are unsafe, unparsed verdicts."""
        ...

    def session(self) -> Guard:
        """A guard with the same `check` for one turn's checks, which may keep state between
        them (a local Llama Guard reuses the previous check's key/value cache). The default:
        this guard itself, for guards with nothing to keep."""
        return self
