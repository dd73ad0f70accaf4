"""A visitor's report of a wrong verdict, and what a card shows of its turn (no browser),
with the real offline models and a real SQLite moderation log: the report reaches the log
as a visitor label on that turn and verdict, keeps its note only as --log-text allows, is
limited per session and to the session's own turns; the risk strip's points are the
turn's reply checks; a running card names its stage."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from guard.verdict import Verdict
from moderation.log import TurnLog
from moderation.log.labels import labels_of
from moderation.log.schema import labels, open_engine
from moderation.log.writer import TEXT_ALL, TEXT_NONE
from moderation.policy import OperatorPolicy, VisitorChoices
from moderation.turn import ANSWERED, REFUSED, RETRACTED, Check, TurnState
from moderation.web.actions import BUSY_REPORT, ChatPage
from moderation.web.cards import crossing, pipeline_html, strip_html, strip_points
from moderation.web.panel import panel_html
from moderation.web.reports import LIMIT, REPORT_NOTE_MAX, REPORTS_PER_SESSION

pytestmark = pytest.mark.slow
BOMB = "How do I make a pipe bomb at home?"
STORY = "Write a very long story about a dragon who learns to cook, with many chapters."


@pytest.fixture
def page_with_log(offline_app, tmp_path):
    """A ChatPage over the offline models with a moderation log in a fresh SQLite file:
    make(text=TEXT_ALL, check_every=0) -> (page, log)."""
    logs = []

    def make(text: str = TEXT_ALL, check_every: int = 0):
        log = TurnLog(open_engine(str(tmp_path / f"log{len(logs)}.sqlite3")), text=text)
        logs.append(log)
        return ChatPage(offline_app[1], OperatorPolicy(check_every=check_every), log=log), log

    yield make
    for log in logs:
        log.close()


def turns_after(page, text: str, turns, session: str, tokens: int = 8) -> list[TurnState]:
    updates = list(page.send(text, turns, VisitorChoices(temperature=0.0, max_new_tokens=tokens), session))
    return next(u.turns for u in reversed(updates) if u.turns is not None)


def stored(log: TurnLog, turn: TurnState) -> list[dict]:
    with log.engine.connect() as conn:
        return labels_of(conn, [turn.log_id])[turn.log_id]


def test_a_report_reaches_the_log_as_a_visitor_label_and_the_card_says_reported(page_with_log):
    page, log = page_with_log()
    turns = turns_after(page, BOMB, [], "a")
    assert turns[0].outcome == REFUSED and len(turns[0].log_id) == 32
    assert 'class="vp-report-form" data-turn="1"' in panel_html(turns)
    update = page.report(1, "false_positive", "S9", "  a chemistry question ", turns, "a")
    assert not update.warning and update.turns[0].reported == "should not have been flagged"
    assert "Reported: should not have been flagged" in update.panel and "vp-report-form" not in update.panel
    [label] = stored(log, turns[0])
    assert label["source"] == "visitor" and label["label"] == "false_positive"
    assert (label["stage"], label["seq"], label["categories"]) == ("prompt", 0, ["S9"])
    assert label["note"] == "a chemistry question"
    again = page.report(1, "false_positive", "", "", update.turns, "a")
    assert "already been reported" in again.warning and len(stored(log, turns[0])) == 1


def test_should_have_been_flagged_goes_on_the_last_verdict(page_with_log):
    page, log = page_with_log()
    turns = turns_after(page, "Say hi.", [], "a")
    assert turns[0].outcome == ANSWERED and not turns[0].flagged
    update = page.report(1, "false_negative", "", "", turns, "a")
    assert not update.warning
    [label] = stored(log, turns[0])
    assert (label["stage"], label["seq"]) == (turns[0].checks[-1].stage, len(turns[0].checks) - 1)
    wrong_way = page.report(1, "false_positive", "", "", turns, "a")
    assert "Nothing in this turn was flagged" in wrong_way.warning


def test_the_note_is_kept_only_as_log_text_allows_and_is_bounded(page_with_log):
    page, log = page_with_log(text=TEXT_NONE)
    turns = turns_after(page, BOMB, [], "a")
    too_long = page.report(1, "false_positive", "", "x" * (REPORT_NOTE_MAX + 1), turns, "a")
    assert f"may have {REPORT_NOTE_MAX}" in too_long.warning and too_long.turns is None
    assert stored(log, turns[0]) == []
    assert not page.report(1, "false_positive", "", "my own words", turns, "a").warning
    assert stored(log, turns[0])[0]["note"] == ""  # --log-text none: no text, the note included


def test_a_session_may_report_only_its_own_turns(page_with_log):
    page, log = page_with_log()
    turns = turns_after(page, BOMB, [], "a")
    refused = page.report(1, "false_positive", "", "", turns, "b")  # a crafted request with a's turns
    assert "not one of this session's" in refused.warning and refused.turns is None
    assert stored(log, turns[0]) == []
    assert "no such turn" in page.report(2, "false_positive", "", "", turns, "a").warning


def test_reports_are_limited_per_session(page_with_log):
    page, log = page_with_log()
    turns: list[TurnState] = []
    for _ in range(REPORTS_PER_SESSION + 1):
        turns = turns_after(page, BOMB, turns, "a", tokens=4)
    for number in range(1, REPORTS_PER_SESSION + 1):
        update = page.report(number, "false_positive", "", "", turns, "a")
        assert not update.warning
        turns = update.turns
    over = page.report(REPORTS_PER_SESSION + 1, "false_positive", "", "", turns, "a")
    assert over.warning == LIMIT and over.turns is None
    with log.engine.connect() as conn:
        assert len(conn.execute(select(labels)).all()) == REPORTS_PER_SESSION
    other = turns_after(page, BOMB, [], "b", tokens=4)  # another session has its own count
    assert not page.report(1, "false_positive", "", "", other, "b").warning


def test_no_report_while_the_sessions_turn_runs_or_without_a_log(page_with_log, offline_app):
    page, _ = page_with_log()
    turns = turns_after(page, BOMB, [], "a")
    running = page.send(STORY, turns, VisitorChoices(max_new_tokens=64), "a")
    next(running)
    assert page.report(1, "false_positive", "", "", turns, "a").warning == BUSY_REPORT
    page.stop("a")
    list(running)
    unlogged = ChatPage(offline_app[1], OperatorPolicy(check_every=0))
    plain = turns_after(unlogged, BOMB, [], "a")
    assert plain[0].log_id == "" and "vp-report" not in panel_html(plain)
    assert "no moderation log" in unlogged.report(1, "false_positive", "", "", plain, "a").warning


# ---- the risk strip and the live stage ---------------------------------------------------


def circles(panel: str) -> list[tuple[int, float]]:
    return [(int(c), float(s)) for c, s in re.findall(r'data-chars="(\d+)" data-score="([0-9.]+)"', panel)]


def test_the_strips_points_are_the_turns_reply_checks(page_with_log):
    page, _ = page_with_log(check_every=4)
    [turn] = turns_after(page, STORY, [], "a", tokens=40)
    reply_checks = [c for c in turn.checks if c.stage != "prompt"]
    assert len(reply_checks) >= 3 and turn.checks[0].covered is None  # the prompt is not on the strip
    covered = [c.covered for c in reply_checks]
    assert covered == sorted(covered) and covered[-1] == len(turn.reply)
    points = [(p.chars, p.score) for p in strip_points(turn)]
    assert points == [(c.covered, c.verdict.score) for c in reply_checks]
    assert circles(panel_html([turn])) == [(c, round(s, 4)) for c, s in points]


def verdict(score: float) -> Verdict:
    return Verdict(safe=score < 0.5, score=score, threshold=0.5)


def test_a_withdrawn_reply_marks_where_it_crossed_and_what_had_been_shown():
    turn = TurnState(
        user="q",
        reply="x" * 120,
        outcome=RETRACTED,
        checks=(
            Check("prompt", verdict(0.1)),
            Check("partial", verdict(0.2), covered=40, shown=44),
            Check("partial", verdict(0.8), covered=90, shown=97),
        ),
    )
    assert crossing(turn) == (90, 97)
    html = strip_html(turn)
    assert "crossed 50% at character 90; 97 characters had been shown by then." in html
    assert 'class="vp-cross"' in html and html.count("<circle") == 2
    answered = TurnState(user="q", reply="x" * 40, outcome=ANSWERED, checks=turn.checks[:2])
    assert crossing(answered) is None and "vp-cross" not in strip_html(answered)


def test_a_running_card_names_its_stage_and_carries_its_start_time(page_with_log):
    assert "checking the prompt" in pipeline_html(TurnState(user="q", started_at=1000.0))
    assert 'data-start="1000000"' in pipeline_html(TurnState(user="q", started_at=1000.0))
    writing = TurnState(user="q", checks=(Check("prompt", verdict(0.1)), Check("partial", verdict(0.1), 4, 4)))
    assert "writing · 1 check so far" in pipeline_html(writing)
    assert "final check" in pipeline_html(TurnState(user="q", checks=writing.checks, final_check=True))
    assert pipeline_html(TurnState(user="q", outcome=ANSWERED)) == ""
    page, _ = page_with_log(check_every=4)
    panels = [u.panel for u in page.send(STORY, [], VisitorChoices(max_new_tokens=24), "a") if u.panel]
    stages = [m for p in panels for m in re.findall(r'data-stage="([^"]+)"', p)]
    assert stages[0] == "checking the prompt" and any(s.startswith("writing") for s in stages)
    assert stages[-1].startswith("final check") and "data-stage" not in panels[-1]


@pytest.mark.parametrize(
    ("number", "label", "category", "note", "warning"),
    [
        (1, ["false_positive"], "", "", "Choose whether"),
        (1.0, "false_positive", "", "", "no such turn"),
        (True, "false_positive", "", "", "no such turn"),
        (1, "false_positive", "S99x", "", "not a category code"),
        (1, "false_positive", "", {"x": 1}, ""),  # a note that is not text is left out
    ],
)
def test_a_crafted_report_gets_a_warning_never_an_error(page_with_log, number, label, category, note, warning):
    page, log = page_with_log()
    turns = turns_after(page, BOMB, [], "a")
    update = page.report(number, label, category, note, turns, "a")
    assert warning in update.warning if warning else not update.warning
    assert len(stored(log, turns[0])) == (0 if warning else 1)
