"""What the page's buttons and the API endpoints do, as plain Python (no Gradio).

`ChatPage` holds the models, the operator's policy and the running turns; each action
takes the visitor's input and yields `PageUpdate`s, which `moderation.web.page` only maps onto
widgets. Tests call these methods directly, with two session keys for two visitors:

    page = ChatPage(models, OperatorPolicy(threshold=0.5))
    for update in page.send("Hi!", turns=[], choices=VisitorChoices(), session="a"):
        ...   # update.chat, update.panel, update.turns (set once, at the end), update.warning,
              # update.running (True with the first update, False with the last: Send <-> Stop)
    page.stop("a")           # stops only session "a"'s turn
    page.clear("a")          # cancels it: its last update is the cleared page, nothing of it returns
    page.edit(0, "Hi?", turns, choices, "a"), page.undo(turns, "a")   # rewrite the conversation
    page.report(2, "false_positive", "", "a recipe", turns, "a")        # turn 2's verdict was wrong

Every visitor setting is checked here, on the server (`moderation.policy.turn_settings`),
whatever the browser allowed.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from guard.verdict import AGENT, USER
from moderation.admission import Admission
from moderation.judge import GuardPool, Judge
from moderation.log import TurnLog, TurnMeta
from moderation.models import Models
from moderation.policy import OperatorPolicy, SettingsRefused, VisitorChoices, turn_settings
from moderation.schema import MAX_MESSAGE_CHARS
from moderation.sessions import Sessions
from moderation.turn import ANSWERED, TurnState, clean_message, run_turn
from moderation.web.panel import chat_messages, guard_caption, panel_html, turn_of_message
from moderation.web.reports import ReportRefused, file_report

MAX_CONVERSATION_MESSAGES = 64
# What a visitor reads when an action must wait for the turn that runs in the same window
# (one turn at a time per session); the page and the draft stay as they are.
_WRITING = "A reply is still being written in this window: "
BUSY = _WRITING + "wait for it or press Stop. Your new message is kept in the box."
BUSY_RETRY = _WRITING + "Retry can run once it ends (wait for it or press Stop)."
BUSY_EDIT = _WRITING + "an edit can be sent once it ends (wait for it or press Stop)."
BUSY_REPORT = _WRITING + "a report can be sent once it ends (wait for it or press Stop)."
BUSY_UNDO = _WRITING + "Undo can take a turn back once it ends (wait for it or press Stop)."
NOTHING_TO_RETRY = "Nothing to retry yet: send a message first."
NOTHING_TO_UNDO = "Nothing to undo yet: the chat is empty."
NOT_TEXT = "A message must be text."
SESSION_BUSY = "This session already has a turn running: one turn at a time; wait for it to end or stop it."


class RequestError(ValueError):
    """An API request that cannot be served; the message says why, for the caller."""


@dataclass(frozen=True)
class PageUpdate:
    """What changes on the page; None leaves a widget as it is."""

    chat: list[dict] | None = None
    panel: str | None = None
    turns: list[TurnState] | None = None  # the session's stored turns (model context)
    box: str | None = None
    running: bool | None = None  # a turn runs: Send becomes Stop until it ends
    warning: str = ""  # shown to the visitor as a toast


CLEARED = PageUpdate(chat=[], panel=panel_html([]), turns=[], running=False)


def message_text(value) -> str | None:
    """A message as every layer takes it (moderation.turn.clean_message), or None when a
    crafted request sent something that is not text at all (a number, a list, ...)."""
    if value is None:
        return ""
    return clean_message(value) if isinstance(value, str) else None


def message_problem(text: str | None) -> str:
    """Why a message cannot be sent ('' if it can)."""
    if text is None:
        return NOT_TEXT
    if not text:
        return "Empty message: nothing to send."
    if len(text) > MAX_MESSAGE_CHARS:
        return f"That message is {len(text):,} characters; the limit is {MAX_MESSAGE_CHARS:,}."
    return ""


class ChatPage:
    """The page's actions and the API's, over one pair of models and one operator policy."""

    def __init__(
        self,
        models: Models,
        operator: OperatorPolicy,
        sessions: Sessions | None = None,
        log: TurnLog | None = None,
        admission: Admission | None = None,
        guard_pool: GuardPool | None = None,
    ):
        self.models, self.operator = models, operator
        self.guard_pool = guard_pool  # the server's, for every guard check (none: each turn has its own)
        self.sessions = sessions or Sessions()
        self.log = log or TurnLog(None)  # the moderation log (none: writes nothing)
        # the server's one limit on moderated work, shared with /v1 (none: no limit here)
        self.admission = admission or Admission.unbounded()

    def _run(self, history, text: str, settings, stop, session: str) -> Iterator[TurnState]:
        """run_turn once the shared admission has a place for it, every state kept in the
        moderation log as it is made. While it waits, the message is shown as running (Stop
        ends the wait); stopped before it began, the turn ends with nothing run."""
        waiting = TurnState(user=text, system_prompt=settings.system_prompt.strip())
        if not self.admission.free_now():
            yield waiting
        with self.admission.held(stop) as admitted:
            if not admitted:
                yield replace(waiting, outcome=ANSWERED, stopped=True, notice="Stopped before the turn began.")
                return
            guard, chat = self.models.guard.value, self.models.chat.value
            meta = TurnMeta.of(settings, guard, chat, session)
            log_id = uuid.uuid4().hex if self.log.engine is not None else ""  # a report names it
            states = self.log.record(
                run_turn(guard, chat, history, text, settings, stop, self.guard_pool), meta, log_id
            )
            for state in states:
                yield replace(state, log_id=log_id) if log_id else state

    @property
    def taxonomy(self):
        return self.models.guard.value.taxonomy

    def _settings(self, choices: VisitorChoices):
        return turn_settings(self.operator, choices, self.taxonomy)

    # ---- the page ---------------------------------------------------------------

    def send(
        self,
        text: str,
        turns: Sequence[TurnState],
        choices: VisitorChoices,
        session: str | None,
        clear_box: bool = True,
    ) -> Iterator[PageUpdate]:
        """A new message: cleared from the box once the turn starts (not for a clicked
        example: the box may hold a draft), then the turn streams."""
        yield from self._play(message_text(text), list(turns or []), choices, session, clear_box=clear_box)

    def retry(self, turns: Sequence[TurnState], choices: VisitorChoices, session: str | None) -> Iterator[PageUpdate]:
        """The last turn again (its message, the turns before it as context)."""
        turns = list(turns or [])
        if not turns:
            yield PageUpdate(warning=BUSY_RETRY if self.sessions.running(session) else NOTHING_TO_RETRY)
            return
        yield from self._play(turns[-1].user, turns[:-1], choices, session, clear_box=False, busy=BUSY_RETRY)

    def edit(
        self, index: int, text: str, turns: Sequence[TurnState], choices: VisitorChoices, session: str | None
    ) -> Iterator[PageUpdate]:
        """The user message at chat position `index` was edited: its turn and every later
        one are replaced by a new turn with `text` (as ChatInterface does)."""
        turns = list(turns or [])
        number = turn_of_message(turns, index) if isinstance(index, int) and not isinstance(index, bool) else None
        if number is None:  # no such message (a crafted request): nothing changes
            yield PageUpdate()
            return
        yield from self._play(
            message_text(text), turns[:number], choices, session, clear_box=False, keep=turns, busy=BUSY_EDIT
        )

    def undo(self, turns: Sequence[TurnState], session: str | None) -> PageUpdate:
        """Take the last turn back: its message returns to the box to be changed and sent again.
        While the session's turn runs, or with nothing to take back, only a warning says why."""
        turns = list(turns or [])
        if self.sessions.running(session):
            return PageUpdate(warning=BUSY_UNDO)
        if not turns:
            return PageUpdate(warning=NOTHING_TO_UNDO)
        kept = turns[:-1]
        guard = self.models.guard.value
        return PageUpdate(
            chat=chat_messages(kept),
            panel=panel_html(kept, guard_caption(guard)),
            turns=kept,
            box=turns[-1].user,
        )

    def report(
        self, number: object, label: str, category: str, note: str, turns: Sequence[TurnState], session: str | None
    ) -> PageUpdate:
        """The visitor says turn `number`'s (1-based, as its card) verdict was wrong: stored as a
        visitor label (moderation.web.reports); its card then says it was reported. A refusal
        (no log, the limit, not this session's turn, a turn still running) is one warning."""
        turns = list(turns or [])
        if self.sessions.running(session):
            return PageUpdate(warning=BUSY_REPORT)
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= len(turns):
            return PageUpdate(warning="There is no such turn to report.")
        try:
            turns[number - 1] = file_report(self.log, turns[number - 1], session, label, category, note)
        except ReportRefused as exc:
            return PageUpdate(warning=str(exc))
        return PageUpdate(turns=turns, panel=panel_html(turns, guard_caption(self.models.guard.value)))

    def stop(self, session: str | None) -> None:
        self.sessions.stop(session)

    def clear(self, session: str | None) -> PageUpdate:
        """Start over: the running turn (if any) is stopped and nothing of it comes back."""
        self.sessions.cancel(session)
        return CLEARED

    def _play(
        self,
        text: str,
        history: list[TurnState],
        choices: VisitorChoices,
        session: str | None,
        clear_box: bool,
        keep: list[TurnState] | None = None,
        busy: str = BUSY,
    ) -> Iterator[PageUpdate]:
        """Run one turn after `history`. A turn that cannot start yields one update: the
        reason as a warning (`busy` when the session's turn still runs), the page as it was
        (`keep`: the turns on the page, when not just `history`) and the box untouched."""
        problem = message_problem(text) or (self.models.not_ready_message() if not self.models.ready else "")
        if not problem:
            try:
                settings = self._settings(choices)
            except SettingsRefused as exc:
                problem = str(exc)
        if problem:
            yield PageUpdate(warning=problem, chat=chat_messages(keep) if keep is not None else None)
            return
        turn = self.sessions.begin(session)
        if turn is None:
            yield PageUpdate(warning=busy, chat=chat_messages(keep) if keep is not None else None)
            return
        guard = self.models.guard.value
        state, drawn, first = TurnState(user=text), None, True
        try:
            for state in self._run(history, text, settings, turn.stop, turn.session):
                if turn.cancelled:
                    # Gradio repeats an event's last output when it completes: make that the
                    # cleared page, or the old conversation would be painted back.
                    yield CLEARED
                    return
                shown = history + [state]
                panel = None
                stage = (len(state.checks), state.final_check, state.outcome)
                if stage != drawn:  # the panel changes only with a verdict or the turn's stage
                    drawn, panel = stage, panel_html(shown, guard_caption(guard))
                # The last state also stores the turn and ends "running", in the same update: what
                # looks finished is finished, so a message sent right after it is not refused.
                done = state.done
                if done:  # free the session now: the turn's generation may take a step to wind down
                    self.sessions.end(turn)
                yield PageUpdate(
                    chat=chat_messages(shown),
                    panel=panel,
                    box="" if clear_box and first else None,
                    running=False if done else (True if first else None),
                    turns=history + [state] if done else None,
                )
                first = False
            if turn.cancelled:
                yield CLEARED
            elif not state.done:
                yield PageUpdate(turns=history + [state], running=False)
        finally:
            self.sessions.end(turn)

    # ---- the API ----------------------------------------------------------------

    def _require_ready(self) -> None:
        if not self.models.ready:
            raise RequestError(self.models.not_ready_message())

    def moderate(self, text: str, conversation: list[dict] | None = None) -> dict:
        """Judge `text` with the operator's policy and threshold; with `conversation` (the
        earlier messages), judged in that context: after a user message it is the reply."""
        self._require_ready()
        messages = checked_conversation(conversation or [])
        text = message_text(text)
        problem = message_problem(text)
        if problem:
            raise RequestError(problem.replace("send", "judge"))
        messages.append({"role": "user" if len(messages) % 2 == 0 else "assistant", "content": text})
        settings = self._settings(VisitorChoices())
        with self.admission.held(threading.Event()):  # nothing stops it: it waits for its place
            judge = Judge(self.models.guard.value, settings, self.guard_pool)
            try:
                verdict = judge(messages, USER if len(messages) % 2 else AGENT)
            finally:
                judge.close()
        return verdict.to_dict()

    def chat_turn(self, message: str, system_prompt: str = "", session: str | None = None) -> Iterator[dict]:
        """One moderated turn for an API caller: {"reply", "outcome", "notice", "verdicts"} as it runs.
        A caller in a browser session (`session`) that already has a turn running is refused."""
        self._require_ready()
        text = message_text(message)
        problem = message_problem(text)
        if problem:
            raise RequestError(problem)
        try:
            settings = self._settings(VisitorChoices(system_prompt=system_prompt or None))
        except SettingsRefused as exc:
            raise RequestError(str(exc)) from None
        turn = self.sessions.begin(session)
        if turn is None:
            raise RequestError(SESSION_BUSY)
        try:
            for state in self._run([], text, settings, turn.stop, "api:/chat"):
                yield {
                    "reply": state.shown,
                    "outcome": state.outcome,
                    "notice": state.notice,
                    "verdicts": [dict(c.verdict.to_dict(), stage=c.stage) for c in state.checks],
                }
        finally:
            self.sessions.end(turn)


def checked_conversation(conversation) -> list[dict]:
    """Earlier messages for /moderate: user/assistant, alternating from user, text only."""
    if not isinstance(conversation, list) or len(conversation) > MAX_CONVERSATION_MESSAGES:
        raise RequestError(f"conversation must be a list of at most {MAX_CONVERSATION_MESSAGES} messages")
    messages = []
    for i, message in enumerate(conversation):
        expected = "user" if i % 2 == 0 else "assistant"
        if (
            not isinstance(message, dict)
            or message.get("role") != expected
            or not isinstance(message.get("content"), str)
        ):
            raise RequestError(
                f"conversation message {i + 1} must be {{'role': '{expected}', 'content': text}} "
                "(user and assistant alternate, starting with user)"
            )
        content = clean_message(message["content"])
        if len(content) > MAX_MESSAGE_CHARS:
            raise RequestError(f"conversation message {i + 1} is over {MAX_MESSAGE_CHARS:,} characters")
        messages.append({"role": expected, "content": content})
    return messages
