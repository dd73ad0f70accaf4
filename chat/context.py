"""Fitting a conversation into the model's context window.

The system prompt and the newest message always stay; the oldest turns go first, a
user message together with its reply so roles keep alternating:

    window 100, reply room 40, turns of 20 tokens each:
    [system, u1, a1, u2, a2, u3]  ->  [system, u2, a2, u3], dropped=2
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chat.backend import ContextTooLong, Fitted, Message


def fit_messages(messages: Sequence[Message], count_tokens: Callable[[list[Message]], int],
                 context_window: int, reply_room: int) -> Fitted:
    messages = [dict(m) for m in messages]
    if not messages:
        raise ContextTooLong("There is no message to send.")
    system = messages[:1] if messages[0]["role"] == "system" else []
    history, newest = messages[len(system):-1], messages[-1:]
    dropped = 0
    while True:
        candidate = system + history + newest
        used = count_tokens(candidate)
        if used + reply_room <= context_window:
            return Fitted(candidate, dropped)
        if not history:
            raise ContextTooLong(
                f"The message is too long: it needs {used:,} tokens (with the system prompt) plus "
                f"{reply_room:,} for the reply, and the model reads at most {context_window:,}. "
                "Shorten it, or lower the maximum reply length.")
        step = 2 if len(history) >= 2 else 1
        history, dropped = history[step:], dropped + step
