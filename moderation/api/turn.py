"""The API's side of a moderated turn: its settings, a thread that runs it, stop strings.

The turn itself is `moderation.turn.run_turn`, called exactly as the page calls it.
An API request runs it in a thread of its own (`turn_states`), under the server's one
limit on moderated work (`moderation.admission`), and an async handler reads the
states; when the client goes away the thread closes the turn, which ends generation
within one step and cancels the checks that have not started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import TypeVar

from chat import ChatBackend
from guard import Guard
from guard.taxonomy import LLAMA_GUARD_2
from moderation.admission import Admission
from moderation.api.schema import ApiError, ChatRequest
from moderation.limits import LimitsFull, LimitsUnavailable
from moderation.policy import VisitorChoices, turn_settings
from moderation.turn import ANSWERED, TurnSettings, TurnState

_END = object()
log = logging.getLogger(__name__)
T = TypeVar("T")


def api_turn_settings(config, guard: Guard | None, request: ChatRequest | None = None) -> TurnSettings:
    """How an API turn is moderated: the operator's policy (moderation.policy: threshold,
    categories, streaming checks), with the caller's generation fields (max_tokens capped
    at the operator's --max-new-tokens). The caller's system message, if any, is the
    chat model's system prompt and is judged with the message like the page's: an API
    caller holds a key (or is on this machine), so it is the operator's own app, which may
    instruct its model but not loosen its moderation. Without a request (/v1/moderations):
    the operator's policy and threshold."""
    operator = config.policy
    request = request or ChatRequest(model=None, system=None, turns=(), user="")
    default = VisitorChoices()
    choices = VisitorChoices(
        temperature=default.temperature if request.temperature is None else request.temperature,
        top_p=default.top_p if request.top_p is None else request.top_p,
        max_new_tokens=min(request.max_tokens or operator.max_new_tokens, operator.max_new_tokens),
    )
    settings = turn_settings(operator, choices, guard.taxonomy if guard is not None else LLAMA_GUARD_2)
    generation = replace(settings.generation, seed=request.seed)
    system = operator.system_prompt if request.system is None else request.system
    return replace(settings, generation=generation, system_prompt=system)


def history_records(request: ChatRequest) -> list[TurnState]:
    """The caller's earlier turns as answered records, the shape run_turn takes as history."""
    return [TurnState(user=user, shown=reply, reply=reply, outcome=ANSWERED) for user, reply in request.turns]


def cut_at_stop(text: str, stops: tuple[str, ...], final: bool) -> tuple[str, bool]:
    """(the text a caller may see, whether a stop string was found). While streaming
    (`final` False) a tail that could begin a stop string is held back.

    >>> cut_at_stop("one, two", (",",), final=False)
    ('one', True)
    >>> cut_at_stop("one\\n", ("\\n\\n",), final=False)
    ('one', False)
    """
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    if found:
        return text[: min(found)], True
    if final:
        return text, False
    hold = max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
    return text[: len(text) - hold], False


def reserve(admission: Admission) -> None:
    """A place in the API's waiting line, or a 503 when it is full."""
    if not admission.reserve():
        raise ApiError(
            503,
            "the server is busy: too many requests are waiting, retry shortly",
            type="server_error",
            code="server_busy",
            retry_after=5,
        )


def limit_error(exc: LimitsFull | LimitsUnavailable) -> ApiError:
    """The 503 for a request that the API's limits cannot admit: all --api-concurrency
    places are taken, or the database that keeps the limits cannot be reached (then
    nothing runs: the API never serves without its limits)."""
    if isinstance(exc, LimitsFull):
        return ApiError(
            503, f"the API is busy: {exc}; retry shortly", type="server_error", code="server_busy", retry_after=1
        )
    log.error("refused an API request: %s", exc)
    return ApiError(
        503,
        f"the API cannot check its limits right now ({exc}); retry shortly",
        type="server_error",
        code="limits_unavailable",
        retry_after=5,
    )


async def turn_states(
    run: Callable[[threading.Event], Iterator[T]],
    admission: Admission,
    stop: threading.Event,
    gone: threading.Event | None = None,
    slot: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> AsyncIterator[T]:
    """Yield the items of `run(stop)` (a turn's states, or verdicts), which runs in a thread
    of its own once the shared admission gives it a place, and then `slot()` one of the
    API's own (--api-concurrency; its refusal is raised to the reader). `stop` ends generation (the
    turn still judges the reply and finishes); `gone` (the client left, or a reader that
    leaves early) ends the wait for a place, and the thread then closes the turn at once:
    generation joined, checks not yet started cancelled."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    gone = gone or threading.Event()

    def put(item) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody reads any more
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        try:
            with admission.held(gone, reserved=True) as got:
                if not got or gone.is_set():
                    return
                with slot():
                    items = run(stop)
                    try:
                        for item in items:
                            if gone.is_set():
                                break
                            put(item)
                    finally:
                        items.close()  # ends run_turn: guard checks cancelled, generation joined
        except Exception as exc:  # noqa: BLE001  handed to the reader
            put(exc)
        finally:
            put(_END)

    reserve(admission)
    threading.Thread(target=work, name="api-turn", daemon=True).start()
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        gone.set()
        stop.set()


def usage(chat: ChatBackend, settings: TurnSettings, messages: list[dict], reply: str) -> dict | None:
    """Token counts where the chat backend has its own tokenizer (local models); None for
    a remote endpoint, whose tokens this app never sees."""
    tokenizer = chat.tokenizer
    if tokenizer is None:
        return None
    prompt = len(chat.prompt_ids(chat.fit(messages, settings.generation).messages))
    completion = len(tokenizer(reply, add_special_tokens=False)["input_ids"]) if reply else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
