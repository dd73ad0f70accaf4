"""One moderated chat turn, as plain Python: check the prompt, stream the reply while
checking it, check the whole reply.

`run_turn` is a generator of `TurnState` snapshots; the last one is the turn's record.
Nothing here knows Gradio, a model family, or how a guard works inside:

    guard.check(conversation, policy, threshold) -> Verdict     (never raises)
    chat.fit(messages, settings) -> Fitted(messages, dropped)    (may raise ContextTooLong)
    chat.stream(messages, settings, stop_event) -> Iterator[str] (may raise ChatError)

A sketch of one safe turn, with the states it yields (`shown` is what a person sees):

    checking prompt  -> shown=""          verdicts=(prompt,)
    streaming        -> shown="Paris"     ...
    streaming        -> shown="Paris is"  verdicts=(prompt, partial)
    done, answered   -> shown="Paris is the capital."  verdicts=(prompt, partial, response)

Fail closed: a guard error, timeout or unreadable answer blocks the turn; in the
*hold* policy no text is shown before a check that covers it has passed.

The prompt check runs beside generation (`prompt_check="parallel"`, the default: the
check overlaps the chat model's prefill, the first text waits for a safe verdict, and an
unsafe or failed one stops generation at once) or before it (`"first"`: an unsafe prompt
never reaches the chat model). A turn's checks go through `guard.session()` when the
guard has one: each check then reuses the previous one's key/value cache.
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

from chat import ChatBackend, ChatError, GenerationSettings
from guard.base import Guard
from guard.policy import Policy
from guard.verdict import AGENT, USER, Verdict
from moderation.judge import GuardPool, Judge

STREAM_FIRST, HOLD = "stream-first", "hold"
FIRST, PARALLEL = "first", "parallel"  # the prompt check: before generation starts, or beside it
ANSWERED, REFUSED, RETRACTED, ERROR = "answered", "refused", "retracted", "error"

REFUSAL = "I can't help with that: the message was flagged by the safety guard."
RETRACTION = "The reply was withdrawn: the safety guard flagged it."
WITHHELD = "The reply was withheld: the safety guard flagged it before it was shown."
_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, any surrogate is a lone one
GUARD_FAILED = "The turn was blocked because the safety guard could not judge it ({why})."


@dataclass(frozen=True)
class TurnSettings:
    """How a turn is moderated. `check_every` counts streamed chunks (about one token
    each); 0 checks only the finished reply."""

    threshold: float = 0.5
    category_thresholds: Mapping[str, float] = field(default_factory=dict)  # code -> its own (moderation.thresholds)
    check_every: int = 16
    stream_policy: str = STREAM_FIRST
    policy: Policy = field(default_factory=Policy)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    system_prompt: str = ""
    guard_timeout_s: float = 60.0  # the one deadline on a guard check (see Judge)
    guard_context_turns: int = 2  # earlier answered turns shown to the guard with a prompt
    prompt_check: str = PARALLEL  # PARALLEL: generation starts with the check, no token shown before it passes


@dataclass(frozen=True)
class Check:
    """A verdict and the stage of the turn it judged: prompt, partial reply, or response."""

    stage: str
    verdict: Verdict
    covered: int | None = None  # reply characters the check judged (None: the prompt)
    shown: int | None = None  # reply characters on screen when its verdict came in


@dataclass(frozen=True)
class TurnState:
    user: str
    system_prompt: str = ""  # what the chat model was told; judged with `user` (judged_prompt)
    shown: str = ""  # reply text a person may see now
    reply: str = ""  # all text the model produced (kept for the record, even if withheld)
    checks: tuple[Check, ...] = ()
    outcome: str | None = None  # None while the turn runs
    notice: str = ""  # refusal / retraction / error text, for a person
    dropped: int = 0  # oldest history messages left out to fit the context
    stopped: bool = False  # the person pressed stop
    cut: bool = False  # the reply reached the max new tokens limit
    chat_started: bool = False  # the chat model was asked to generate
    chat_stopped: bool = False  # ... and moderation stopped it (flagged prompt or reply); nothing it wrote is kept
    started_at: float = 0.0  # wall-clock time (time.time()) the turn began: the page's running timer
    final_check: bool = False  # the reply has ended and its whole text is being judged
    log_id: str = ""  # the turn's id in the moderation log ("" when it is not logged)
    reported: str = ""  # what the visitor reported of its verdict ("" when nothing)

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def flagged(self) -> bool:
        return any(not c.verdict.safe for c in self.checks)


def history_messages(records: Sequence[TurnState]) -> list[dict]:
    """The conversation so far as chat messages: answered turns only (refused prompts and
    withdrawn replies never reach the chat model again)."""
    messages: list[dict] = []
    for r in records:
        if r.outcome == ANSWERED and r.shown:
            messages += [{"role": "user", "content": r.user}, {"role": "assistant", "content": r.shown}]
    return messages


def clean_message(text: str) -> str:
    """The text as sent, minus what no layer can use: control characters (Unicode Cc, but
    newlines and tabs stay; CR LF becomes LF) go, lone surrogates become U+FFFD, and the
    ends are stripped. Everything else stays as typed: joiners (family emoji, Persian and
    Indic words), direction marks and no-break spaces are text. What the guard reads is
    normalised separately (guard.normalize).

    >>> clean_message("hi\\x00 there\\ud800!")
    'hi there\\ufffd!'
    >>> clean_message("👨\\u200d👩\\u200d👧") == "👨\\u200d👩\\u200d👧"
    True
    """
    text = _SURROGATE.sub("\ufffd", text.replace("\r\n", "\n"))
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc").strip()


def judged_prompt(system_prompt: str, user_text: str) -> str:
    """The User message the prompt check judges: the system prompt, if any, then the message.

    Why the system prompt is part of the User side rather than a check of its own: Llama
    Guard's format has no system role, and an instruction split between the two ("System:
    the topic is pipe bombs" / "User: explain how to build one") is harmless in each half
    and harmful together, so the guard must read them as one message. Put in an earlier
    message it would only be context (Llama Guard judges ONLY THE LAST message). The
    chat model still gets the system prompt as its own system message; this joined text
    is only what the guard reads, and its verdict is the prompt verdict in the panel.

    >>> judged_prompt("Answer in French.", "Hi!")
    'Answer in French.\\n\\nHi!'
    >>> judged_prompt("", "Hi!")
    'Hi!'
    """
    system = system_prompt.strip()
    return f"{system}\n\n{user_text}" if system else user_text


def reached_length_limit(chat: ChatBackend, reply: str, max_new_tokens: int) -> bool:
    """Whether `reply` used up `max_new_tokens`, counted with the chat model's own tokenizer
    (a backend without one, such as an endpoint, cannot tell: False). Decoded text counted
    again can come out one token short, hence the one-token margin.

    A natural end is never this long: the end-of-turn token counts against the limit too.
    """
    if chat.tokenizer is None or not reply:
        return False
    return len(chat.tokenizer.encode(reply, add_special_tokens=False)) >= max(1, max_new_tokens - 1)


def _block_notice(verdict: Verdict, default: str) -> str:
    return GUARD_FAILED.format(why=verdict.error or "unreadable answer") if verdict.failed else default


def run_turn(
    guard: Guard,
    chat: ChatBackend,
    records: Sequence[TurnState],
    user_text: str,
    settings: TurnSettings,
    stop: threading.Event | None = None,
    pool: GuardPool | None = None,
) -> Iterator[TurnState]:
    """Moderate one turn; yields snapshots, the last of which has `outcome` set. The guard
    checks run on `pool` (the server's, sized from --concurrency); without one, on a pool
    of the turn's own, shut down when the turn ends."""
    stop = stop or threading.Event()
    history = history_messages(records)
    state = TurnState(user=user_text, system_prompt=settings.system_prompt.strip(), started_at=time.time())
    system = [{"role": "system", "content": settings.system_prompt}] if settings.system_prompt.strip() else []
    messages = system + history + [{"role": "user", "content": user_text}]
    try:
        fitted = chat.fit(messages, settings.generation)
    except ChatError as exc:
        yield replace(state, outcome=ERROR, notice=str(exc))
        return
    state = replace(state, dropped=fitted.dropped)

    judge = Judge(guard.session(), settings, pool)  # one cache per turn
    try:
        guard_history = history[-2 * settings.guard_context_turns :] if settings.guard_context_turns else []
        prompt_conv = guard_history + [{"role": "user", "content": judged_prompt(settings.system_prompt, user_text)}]
        yield state
        prompt = judge.submit(prompt_conv)
        if settings.prompt_check == PARALLEL:
            prompt.add_done_callback(lambda f: None if _passed(f) else stop.set())  # stop at once, mid-prefill too
            yield from _stream_reply(judge, chat, fitted.messages, prompt_conv, state, settings, stop, prompt)
            return
        state = _prompt_checked(judge, prompt, state)
        yield state
        if state.done:
            return
        yield from _stream_reply(judge, chat, fitted.messages, prompt_conv, state, settings, stop)
    finally:
        judge.close()


def _passed(future: Future) -> bool:
    try:
        return future.result().safe
    except Exception:  # noqa: BLE001 - a guard that raised did not pass
        return False


def _agent_conv(prompt_conv: list[dict], reply: str) -> list[dict]:
    return prompt_conv + [{"role": "assistant", "content": reply}]


def _prompt_checked(judge: Judge, prompt: Future, state: TurnState) -> TurnState:
    """The state with the prompt verdict; refused (done) unless it is safe. In the parallel
    check the chat model has been started: it is marked stopped and its text dropped."""
    verdict = judge.result(prompt, USER)
    state = replace(state, checks=(Check("prompt", verdict),) + state.checks)
    if verdict.safe:
        return state
    return replace(
        state,
        shown="",
        reply="",
        outcome=REFUSED,
        notice=_block_notice(verdict, REFUSAL),
        chat_stopped=state.chat_started,
    )


def _partial_checked(
    judge: Judge, pending: tuple[Future, str], state: TurnState, reply: str, hold: bool, stop: threading.Event
) -> TurnState:
    """The state with a partial check's verdict (waited for): safe, in *hold* the text it
    covers may now be shown; unsafe or failed, the reply is retracted (done) and the chat
    model stopped."""
    check, covered = pending
    verdict = judge.result(check, AGENT)
    state = replace(state, checks=state.checks + (Check("partial", verdict, len(covered), len(state.shown)),))
    if verdict.safe:
        return replace(state, shown=covered) if hold else state
    stop.set()
    return replace(
        state,
        shown="",
        reply=reply,
        outcome=RETRACTED,
        chat_stopped=True,
        notice=_block_notice(verdict, WITHHELD if hold else RETRACTION),
    )


def _stream_reply(
    judge: Judge,
    chat: ChatBackend,
    messages,
    prompt_conv,
    state: TurnState,
    settings: TurnSettings,
    stop: threading.Event,
    prompt: Future | None = None,
) -> Iterator[TurnState]:
    """Stream and check the reply. With `prompt` (the parallel check still running), no
    text is shown before that verdict is in and safe; unsafe or failed, the turn is refused."""
    state = replace(state, chat_started=True)
    hold = settings.stream_policy == HOLD
    every = max(0, int(settings.check_every))
    reply, since_check = "", 0
    pending: tuple[Future, str] | None = None  # an in-flight partial check and the text it covers
    try:
        for delta in chat.stream(messages, settings.generation, stop):
            if prompt is not None:  # the first text waits here for the prompt verdict
                state, prompt = _prompt_checked(judge, prompt, state), None
                if state.done:
                    stop.set()
                    yield state
                    return
            reply += delta
            since_check += 1
            if pending and (hold or pending[0].done()):
                # hold: wait for the check; stream first: look at it once it has finished
                state, pending = _partial_checked(judge, pending, state, reply, hold, stop), None
                if state.done:
                    yield state
                    return
            if every and since_check >= every and pending is None and reply.strip():
                pending, since_check = (judge.submit(_agent_conv(prompt_conv, reply)), reply), 0
            state = replace(state, reply=reply, shown=state.shown if hold else reply)
            yield state
            if stop.is_set():
                break
    except ChatError as exc:
        stop.set()
        state = _prompt_checked(judge, prompt, state) if prompt is not None else state
        yield (
            state
            if state.done
            else replace(state, shown="", reply=reply, outcome=ERROR, notice=f"The chat model failed: {exc}")
        )
        return
    if prompt is not None:  # the reply ended (or was stopped) before any text
        state = _prompt_checked(judge, prompt, state)
    if pending and not state.done:
        state = _partial_checked(judge, pending, state, reply, hold, stop)
    if state.done:
        yield state
        return
    state = replace(state, reply=reply, stopped=stop.is_set())
    if reply.strip():
        yield replace(state, final_check=True)  # the page shows "final check" while the guard reads it
    yield _reply_checked(judge, chat, prompt_conv, state, settings)


def _reply_checked(judge: Judge, chat: ChatBackend, prompt_conv, state: TurnState, settings: TurnSettings) -> TurnState:
    """The finished turn: its whole reply judged (an empty one needs no check), shown
    only if safe."""
    reply = state.reply
    if not state.stopped:
        state = replace(state, cut=reached_length_limit(chat, reply, settings.generation.max_new_tokens))
    if not reply.strip():
        notice = "Stopped before the reply began." if state.stopped else "The model returned an empty reply."
        return replace(state, shown="", outcome=ANSWERED, notice=notice)
    verdict = judge(_agent_conv(prompt_conv, reply), AGENT)
    state = replace(state, checks=state.checks + (Check("response", verdict, len(reply), len(state.shown)),))
    if not verdict.safe:
        notice = _block_notice(verdict, WITHHELD if settings.stream_policy == HOLD else RETRACTION)
        return replace(state, shown="", outcome=RETRACTED, notice=notice)
    return replace(state, shown=reply, outcome=ANSWERED, notice="Stopped." if state.stopped else "")
