"""A visitor's report of a wrong verdict, stored in the moderation log as a `visitor` label.

    turn = file_report(log, turns[2], session, "false_positive", category="", note="a cooking question")
    # -> the turn with `reported` set; the label is in the log's labels table

A report names one of the session's own turns (the log checks the turn's session against
the reporter's pseudonym), says the verdict was wrong one way or the other, and may name
a category and add a short note. What it keeps:

- "should not have been flagged" (`false_positive`) goes on the turn's first unsafe
  verdict; "should have been flagged" (`false_negative`) on its last verdict, the one
  that let the turn through (or that decided it);
- the note is the visitor's own words, at most REPORT_NOTE_MAX characters, and kept only
  when --log-text keeps this turn's text (`moderation.log.writer.keeps_text`); otherwise
  the label is stored with an empty note;
- at most REPORTS_PER_SESSION reports per session (counted in the log), one per turn.

Every refusal is a `ReportRefused` whose message is shown to the visitor as it is.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import func, select

from moderation.log import TurnLog
from moderation.log.labels import LabelError, UnknownTurn, add_label
from moderation.log.schema import labels
from moderation.log.writer import keeps_text, session_hash
from moderation.turn import TurnState, clean_message

REPORTS_PER_SESSION = 10
REPORT_NOTE_MAX = 500  # characters of the visitor's note
CHOICES = {"false_positive": "should not have been flagged", "false_negative": "should have been flagged"}
NOT_LOGGED = "Reports are not kept on this server: it has no moderation log."
LIMIT = f"You have sent {REPORTS_PER_SESSION} reports in this session, the most one session may send."


class ReportRefused(ValueError):
    """A report that cannot be stored; the message says why, for the visitor."""


def report_target(turn: TurnState, label: str) -> int:
    """The seq (index in the turn's checks) of the verdict a report of `label` is about.

    >>> from guard.verdict import Verdict
    >>> from moderation.turn import Check
    >>> t = TurnState("q", checks=(Check("prompt", Verdict(safe=True)), Check("response", Verdict(safe=False))))
    >>> report_target(t, "false_positive"), report_target(t, "false_negative")
    (1, 1)
    """
    if not isinstance(label, str) or label not in CHOICES:
        raise ReportRefused("Choose whether the verdict should or should not have been flagged.")
    if not turn.checks:
        raise ReportRefused("This turn has no verdict to report.")
    if label == "false_negative":
        return len(turn.checks) - 1
    unsafe = [i for i, check in enumerate(turn.checks) if not check.verdict.safe]
    if not unsafe:
        raise ReportRefused("Nothing in this turn was flagged: report it as 'should have been flagged'.")
    return unsafe[0]


def _note(note: object) -> str:
    text = clean_message(note) if isinstance(note, str) else ""
    if len(text) > REPORT_NOTE_MAX:
        raise ReportRefused(f"The note is {len(text):,} characters; a report's note may have {REPORT_NOTE_MAX}.")
    return text


def reports_sent(log: TurnLog, pseudonym: str) -> int:
    """How many reports this session (by its pseudonym) has stored."""
    query = select(func.count()).select_from(labels).where(labels.c.source == "visitor", labels.c.author == pseudonym)
    with log.engine.connect() as conn:
        return conn.execute(query).scalar_one()


def file_report(
    log: TurnLog, turn: TurnState, session: str | None, label: str, category: object = "", note: object = ""
) -> TurnState:
    """Store the report as a visitor label on the turn's verdict; returns the turn marked as
    reported. Raises ReportRefused (nothing stored) when it cannot be kept."""
    if log.engine is None:
        raise ReportRefused(NOT_LOGGED)
    if not session or not turn.log_id or not turn.done:
        raise ReportRefused("Only a finished turn of this page can be reported.")
    if turn.reported:
        raise ReportRefused("This turn has already been reported.")
    seq = report_target(turn, label)
    text = _note(note)
    codes = [category.strip()] if isinstance(category, str) and category.strip() else []
    pseudonym = session_hash(session)
    log.flush(timeout=10.0)  # the turn's rows are written before the label names them
    if reports_sent(log, pseudonym) >= REPORTS_PER_SESSION:
        raise ReportRefused(LIMIT)
    body = {
        "turn": turn.log_id,
        "stage": seq,
        "label": label,
        "categories": codes,
        "note": text if keeps_text(log.text, turn.outcome, turn.flagged) else "",
    }
    try:
        add_label(log.engine, body, author=pseudonym, source="visitor", own_session=pseudonym)
    except UnknownTurn:
        raise ReportRefused("That turn is not one of this session's: it cannot be reported here.") from None
    except LabelError as exc:
        raise ReportRefused(f"The report was not stored: {exc}.") from None
    return replace(turn, reported=CHOICES[label])
