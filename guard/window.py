"""Fitting a conversation into Llama Guard's context window: nothing is cut silently, and
the judged message (the last one) is always judged whole.

The model reads at most `context_window` tokens, its answer included (ANSWER_ROOM).
When the conversation is longer:

1. Earlier turns go first, a user message with its reply from the front, so the
   conversation still alternates from "user". The note says how many went.
2. For a reply (Agent check) whose user message is itself very long, that message is
   context: it keeps its beginning and end, at most half the room unless the reply
   needs less, and the note says so.
3. A judged message that is still too long is judged in overlapping windows (`windows`),
   each a separate check; the verdict is unsafe if any window is (guard.llama_guard), and
   says where its highest-scoring window lies (`Fitted.spans`).

    window 8,192: [u1 (9,000 tokens), a1, u2 (50 tokens)]  ->  one check of [u2]
        note: "2 earlier messages left out to fit the guard's 8,192-token window"
    window 8,192: [u1 (20,000 tokens)]  ->  checks of [u1 window 1], [u1 window 2], ...
        note: "the message was judged in 4 overlapping windows of at most 7,975 tokens ..."

A backend says how it counts: `context_window`, `count(prompt)` (the tokens the model
reads for a rendered prompt) and `token_ends(text)` (where each token of a message ends,
as character offsets). The local backend counts with its tokenizer, exactly; the remote
one in UTF-8 bytes, an upper bound (guard.remote). Every window is rendered and counted
again before it is sent, so the bound holds for the prompt the model really reads. A
conversation whose bytes already fit (`byte_bound`) is not counted at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from guard.local import MAX_CATEGORY_TOKENS
from guard.normalize import guard_text
from guard.prompt import GuardPrompt, model_input_text

ANSWER_ROOM = MAX_CATEGORY_TOKENS + 4  # the verdict word, the categories, the end of turn
MIN_ROOM = 16  # fewer tokens than this left for the message: nothing sensible can be judged
ELLIPSIS = "\n[...]\n"  # where a shortened context message had its middle left out
SLACK = 8  # tokens kept free around a shortened context (the ellipsis, joins)
EDGE = 2  # a window's text may tokenize a token or so longer in place than alone

Messages = tuple[Mapping[str, str], ...]


class TooLong(ValueError):
    """The policy alone leaves no room in the guard's window for the message."""


@dataclass(frozen=True)
class Fitted:
    """What the guard will judge: one conversation per check (one, unless the judged
    message needed windows), and a note for the verdict saying what was left out."""

    conversations: tuple[Messages, ...]
    note: str = ""
    # with several checks: where each one's window lies in guard_text of the judged message
    # (character offsets, the text before strip()), in the order of `conversations`
    spans: tuple[tuple[int, int], ...] = ()


def windows(ends: Sequence[int], size: int, overlap: int) -> list[tuple[int, int]]:
    """Character spans of windows of at most `size` tokens that cover the whole text, each
    sharing `overlap` tokens with the next; `ends[i]` is where token i ends.

    >>> windows([1, 2, 3, 4, 5, 6, 7], size=3, overlap=1)
    [(0, 3), (2, 5), (4, 7)]
    """
    if not ends:
        return [(0, 0)]
    step = max(1, size - overlap)
    spans, start = [], 0
    while True:
        stop = min(start + size, len(ends))
        spans.append((ends[start - 1] if start else 0, ends[stop - 1]))
        if stop == len(ends):
            return spans
        start += step


def byte_bound(prompt: GuardPrompt) -> int:
    """At most this many tokens reach the model for `prompt`, local or remote: its UTF-8
    bytes, BOS included (a byte-level BPE token is at least one byte; see
    guard.remote.RemoteGuardModel.count). Cheap: it spares short conversations a count."""
    return len(model_input_text(prompt).encode("utf-8", "surrogatepass"))


def fit_conversation(conversation: Sequence[Mapping[str, str]], render: Callable, backend) -> Fitted:
    """The checks that judge `conversation`'s last message whole within `backend`'s window
    (see the module docstring). `render(messages) -> GuardPrompt`. Raises what `render`
    raises for a malformed conversation, and TooLong."""
    window = backend.context_window
    limit = window - ANSWER_ROOM
    where = f"to fit the guard's {window:,}-token window"

    def tokens(messages) -> int:
        return backend.count(render(messages))

    prompt = render(conversation)  # a malformed conversation raises here
    if byte_bound(prompt) <= limit:  # the common case: short enough without counting
        return Fitted((tuple(conversation),))
    used = backend.count(prompt)
    keep = 2 if len(conversation) % 2 == 0 else 1  # a reply keeps the user message it answers
    messages = [dict(m) for m in conversation]
    history, kept = messages[:-keep], messages[-keep:]
    dropped = 0
    while used > limit and history:
        history, dropped = history[2:], dropped + 2
        used = tokens(history + kept)
    notes = [f"{dropped} earlier message{'s' if dropped > 1 else ''} left out {where}"] if dropped else []
    if used <= limit:
        return Fitted((tuple(history + kept),), "; ".join(notes))

    free = limit - tokens([dict(m, content="") for m in kept])  # room for the kept messages' text
    if free < MIN_ROOM:
        raise TooLong(
            f"the guard's prompt takes {limit - free:,} of its {window:,} tokens: no room is left "
            "to judge the message (fewer categories or shorter descriptions leave more)"
        )
    read = guard_text(kept[-1]["content"])
    judged, lead = read.strip(), len(read) - len(read.lstrip())
    ends = backend.token_ends(judged)
    context = kept[:-1]
    if context:
        shortened, note = _share(guard_text(context[0]["content"]).strip(), len(ends), free, backend)
        if note:
            context, notes = [dict(context[0], content=shortened)], notes + [f"{note} {where}"]
    room = limit - tokens(context + [dict(kept[-1], content="")]) - EDGE
    while room >= MIN_ROOM:
        spans = windows(ends, room, overlap=room // 4)
        checks = tuple(tuple(context + [dict(kept[-1], content=judged[a:b])]) for a, b in spans)
        excess = max(tokens(check) for check in checks) - limit
        if excess <= 0:
            if len(checks) > 1:
                notes.append(
                    f"the message was judged in {len(checks)} overlapping windows of at most {room:,} tokens {where}"
                )
            return Fitted(checks, "; ".join(notes), tuple((a + lead, b + lead) for a, b in spans))
        room -= excess  # a window's edges tokenized a little differently in place: smaller windows
    raise TooLong(f"the message could not be split into windows that fit the guard's {window:,}-token window")


def _share(context: str, reply_tokens: int, room: int, backend) -> tuple[str, str]:
    """The user message a reply answers, shortened if the two do not fit together: it
    keeps what the reply leaves free, but at least half the room (the reply then needs
    windows), as its beginning and end. Returns (text, note); the note is "" if whole."""
    ends = backend.token_ends(context)
    share = max(room - reply_tokens, room // 2) - SLACK
    if len(ends) <= share:
        return context, ""
    head = max(1, share // 2)
    tail = max(1, share - head)
    text = context[: ends[head - 1]] + ELLIPSIS + context[ends[len(ends) - tail - 1] :]
    return text, (
        f"the user message it answers was shortened to its first {head:,} and last {tail:,} of {len(ends):,} tokens"
    )
