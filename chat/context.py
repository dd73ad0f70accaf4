"""Fitting a conversation into the model's context window.

The system prompt and the newest message always stay; the oldest turns go first, a
user message together with its reply so roles keep alternating:

    window 100, reply room 40, turns of 20 tokens each:
    [system, u1, a1, u2, a2, u3]  ->  [system, u2, a2, u3], dropped=2

The work is linear in the history: each history message is counted once (`count_each`,
one batched call), the cut is read off the running totals from the newest message back,
and full renders (`count_tokens`) only confirm it. A render may differ from the sum of
its parts (a chat template adds tokens around every message), so the first confirming
render calibrates that per-message overhead and a few more find the exact cut: the
result is the one that dropping two messages a round and re-rendering would give.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import accumulate

from chat.backend import ContextTooLong, Fitted, Message

CountAll = Callable[[list[Message]], int]  # tokens of the whole rendered prompt
CountEach = Callable[[list[Message]], list[int]]  # tokens of each message's own text


def drop_counts(n: int) -> list[int]:
    """How many of `n` history messages may be dropped: whole turns (two at a time), and
    all of them last when `n` is odd.

    >>> drop_counts(5)
    [0, 2, 4, 5]
    """
    return list(range(0, n, 2)) + [n]


def fit_messages(
    messages: Sequence[Message],
    count_tokens: CountAll,
    context_window: int,
    reply_room: int,
    count_each: CountEach | None = None,
) -> Fitted:
    """The newest messages that fit with `reply_room` tokens to spare. `count_each` (by
    default `count_tokens` of each message alone) counts every message once, in one call."""
    messages = [dict(m) for m in messages]
    if not messages:
        raise ContextTooLong("There is no message to send.")
    system = messages[:1] if messages[0]["role"] == "system" else []
    history, newest = messages[len(system) : -1], messages[-1:]
    limit = context_window - reply_room
    renders: dict[int, int] = {}

    def used(dropped: int) -> int:
        if dropped not in renders:
            renders[dropped] = count_tokens(system + history[dropped:] + newest)
        return renders[dropped]

    drops = drop_counts(len(history))
    if used(len(history)) > limit:
        raise _too_long(used(len(history)), reply_room, context_window)
    if not history:
        return Fitted(system + newest, 0)
    fixed = system + newest
    each = count_each(history + fixed) if count_each else [count_tokens([m]) for m in history + fixed]
    start = _estimate(
        drops,
        each[: len(history)],
        used,
        limit,
        first_overhead=((used(len(history)) - sum(each[len(history) :])) / len(fixed)),
    )
    dropped = drops[_first_fitting(drops, lambda d: used(d) <= limit, start)]
    return Fitted(system + history[dropped:] + newest, dropped)


def _estimate(drops: list[int], each: list[int], used: Callable[[int], int], limit: int, first_overhead: float) -> int:
    """Where in `drops` the cut probably is, from the running totals of `each` (the newest
    message's first) and a per-message overhead: first the one of the system prompt and
    newest message's render (which also carries the prompt's own framing, so it errs
    long), then the one measured by rendering that first guess."""
    n, base = len(each), used(drops[-1])
    kept = [0] + list(accumulate(reversed(each)))  # kept[j]: tokens of the newest j messages

    def guess(overhead: float) -> int:
        return next(i for i, d in enumerate(drops) if base + kept[n - d] + overhead * (n - d) <= limit or d == n)

    first = guess(max(0.0, first_overhead))
    if drops[first] == n:
        return first
    overhead = (used(drops[first]) - base - kept[n - drops[first]]) / (n - drops[first])
    return guess(max(0.0, math.ceil(overhead * 100) / 100))


def _first_fitting(drops: list[int], fits: Callable[[int], bool], start: int) -> int:
    """The index of the first drop count that fits (the last one does), searching out from
    `start` in growing steps and then halving: few renders when the estimate is close."""
    low, high = -1, len(drops) - 1  # drops[low] does not fit (or none); drops[high] does
    step = 1
    if fits(drops[start]):
        high = start
        while high - step > low and fits(drops[high - step]):
            high, step = high - step, step * 2
        low = max(low, high - step)
    else:
        low = start
        while low + step < high and not fits(drops[low + step]):
            low, step = low + step, step * 2
        high = min(high, low + step)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(drops[middle]) else (middle, high)
    return high


def _too_long(used: int, reply_room: int, context_window: int) -> ContextTooLong:
    return ContextTooLong(
        f"The message is too long: it needs {used:,} tokens (with the system prompt) plus "
        f"{reply_room:,} for the reply, and the model reads at most {context_window:,}. "
        "Shorten it, or lower the maximum reply length."
    )
