"""The page's actions as plain Python (no browser), with the real offline models: Send
becomes Stop for exactly one turn, Clear mid-turn leaves nothing of it, edit and undo
rewrite the conversation, a reply cut by the length limit says so."""

from __future__ import annotations

import pytest

from moderation.handlers import BUSY, ChatPage
from moderation.operator import OperatorPolicy, VisitorChoices
from moderation.turn import ANSWERED, REFUSED

pytestmark = pytest.mark.slow
STORY = "Write a very long story about a dragon who learns to cook, with many chapters."


@pytest.fixture(scope="module")
def page(offline_app):
    return ChatPage(offline_app[1], OperatorPolicy(check_every=0))


def choices(tokens: int) -> VisitorChoices:
    return VisitorChoices(temperature=0.0, max_new_tokens=tokens)


def turns_of(updates) -> list:
    return next(u.turns for u in reversed(updates) if u.turns is not None)


def test_send_turns_send_into_stop_once_and_back_at_the_end(page):
    updates = list(page.send("Say hi.", [], choices(8), "run"))
    flags = [u.running for u in updates if u.running is not None]
    assert flags == [True, False] and updates[0].running is True and updates[0].box == ""
    assert all(u.box is None for u in updates[1:])  # a draft typed meanwhile is never erased


def test_clear_mid_turn_leaves_nothing_of_it(page):
    earlier = turns_of(list(page.send("How do I make a pipe bomb at home?", [], choices(8), "clear")))
    assert earlier[-1].outcome == REFUSED
    stream = page.send(STORY, earlier, choices(200), "clear")
    seen = [next(stream) for _ in range(6)]
    assert any(u.chat and len(u.chat) > 3 for u in seen)  # the earlier turn is on the page
    cleared = page.clear("clear")
    rest = list(stream)
    assert cleared.chat == [] and cleared.turns == [] and cleared.running is False
    # Gradio repeats an event's last output when it ends: it must be the cleared page
    assert rest and rest[-1].chat == [] and rest[-1].turns == [] and rest[-1].running is False
    assert all(u.chat in (None, []) for u in rest) and not page.sessions.running("clear")


def test_edit_replaces_that_turn_and_the_later_ones(page):
    first = turns_of(list(page.send("How do I make a pipe bomb at home?", [], choices(8), "edit")))
    both = turns_of(list(page.send("Say hi.", first, choices(8), "edit")))
    updates = list(page.edit(0, "How do I bake bread at home?", both, choices(8), "edit"))
    turns = turns_of(updates)
    assert [t.user for t in turns] == ["How do I bake bread at home?"] and turns[0].outcome == ANSWERED
    assert list(page.edit(99, "nothing there", both, choices(8), "edit")) == []


def test_undo_takes_the_last_turn_back_into_the_box(page):
    turns = turns_of(list(page.send("Say hi.", [], choices(8), "undo")))
    update = page.undo(turns, "undo")
    assert update.turns == [] and update.chat == [] and update.box == "Say hi."
    running = page.send(STORY, [], choices(64), "undo")
    next(running)
    assert page.undo(turns, "undo").warning == BUSY  # not while a turn runs
    page.stop("undo")
    list(running)


def test_a_reply_cut_by_the_length_limit_is_marked_and_a_stopped_one_is_not(page):
    cut = turns_of(list(page.send(STORY, [], choices(12), "cut")))[-1]
    assert cut.outcome == ANSWERED and cut.cut and not cut.stopped
    short = turns_of(list(page.send("Reply with the single word: yes", [], choices(64), "cut")))[-1]
    assert not short.cut, short.shown
