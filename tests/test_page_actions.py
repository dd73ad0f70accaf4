"""The page's actions as plain Python (no browser), with the real offline models: Send
becomes Stop for exactly one turn, Clear mid-turn leaves nothing of it, edit and undo
rewrite the conversation, a reply cut by the length limit says so, and every refused action
says why in one update that leaves the chat and the box as they are."""

from __future__ import annotations

import pytest

from moderation.models import Models, ModelSlot
from moderation.policy import OperatorPolicy, VisitorChoices
from moderation.turn import ANSWERED, REFUSED
from moderation.web.actions import (
    BUSY,
    BUSY_RETRY,
    BUSY_UNDO,
    NOT_TEXT,
    NOTHING_TO_RETRY,
    NOTHING_TO_UNDO,
    ChatPage,
    PageUpdate,
    RequestError,
)

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
    assert list(page.edit(99, "nothing there", both, choices(8), "edit")) == [PageUpdate()]


def test_undo_takes_the_last_turn_back_into_the_box(page):
    turns = turns_of(list(page.send("Say hi.", [], choices(8), "undo")))
    update = page.undo(turns, "undo")
    assert update.turns == [] and update.chat == [] and update.box == "Say hi."
    running = page.send(STORY, [], choices(64), "undo")
    next(running)
    assert page.undo(turns, "undo") == PageUpdate(warning=BUSY_UNDO)  # not while a turn runs
    page.stop("undo")
    list(running)


def test_a_reply_cut_by_the_length_limit_is_marked_and_a_stopped_one_is_not(page):
    cut = turns_of(list(page.send(STORY, [], choices(12), "cut")))[-1]
    assert cut.outcome == ANSWERED and cut.cut and not cut.stopped
    short = turns_of(list(page.send("Reply with the single word: yes", [], choices(64), "cut")))[-1]
    assert not short.cut, short.shown


def refusal(updates) -> PageUpdate:
    """The one update a refused action yields: a warning, and nothing on the page changed."""
    [update] = updates
    assert update.warning and update.chat is update.turns is update.box is update.running is None, update
    return update


def test_an_empty_or_too_long_message_is_refused_with_a_warning(page):
    assert refusal(page.send(" \n ", [], choices(8), "empty")).warning == "Empty message: nothing to send."
    assert "the limit is 16,000" in refusal(page.send("a" * 16_001, [], choices(8), "empty")).warning


def test_a_send_while_the_models_load_says_what_is_loading():
    waiting = Models(ModelSlot("Chat model", "offline", lambda: None), ModelSlot("Guard", "offline", lambda: None))
    update = refusal(ChatPage(waiting, OperatorPolicy()).send("Say hi.", [], VisitorChoices(), "early"))
    assert "The guard (the bundled offline classifier) loads next." in update.warning


def test_send_retry_and_undo_while_a_turn_runs_each_say_why_they_wait(page):
    turns = turns_of(list(page.send("Say hi.", [], choices(8), "busy")))
    running = page.send(STORY, turns, choices(64), "busy")
    next(running)
    assert refusal(page.send("Another one", turns, choices(8), "busy")).warning == BUSY
    assert refusal(page.retry(turns, choices(8), "busy")).warning == BUSY_RETRY
    assert refusal(page.retry([], choices(8), "busy")).warning == BUSY_RETRY
    assert page.undo(turns, "busy") == PageUpdate(warning=BUSY_UNDO)
    page.stop("busy")
    list(running)


def test_retry_and_undo_with_nothing_to_take_say_so(page):
    assert refusal(page.retry([], choices(8), "nothing")).warning == NOTHING_TO_RETRY
    assert page.undo([], "nothing") == PageUpdate(warning=NOTHING_TO_UNDO)


@pytest.mark.parametrize("crafted", [True, 5, ["Hi"], {"text": "Hi"}])
def test_a_message_that_is_not_text_is_refused_readably_everywhere(page, crafted):
    """Crafted requests (the page's queue, /chat, /moderate) may send any JSON as the message."""
    assert refusal(page.send(crafted, [], choices(8), "crafted")).warning == NOT_TEXT
    with pytest.raises(RequestError, match=NOT_TEXT):
        list(page.chat_turn(crafted))
    with pytest.raises(RequestError, match=NOT_TEXT):
        page.moderate(crafted)


@pytest.mark.parametrize("index", [None, "0", 1.0, True, 99])
def test_an_edit_of_no_such_message_changes_nothing(page, index):
    turns = turns_of(list(page.send("Say hi.", [], choices(4), "edit-nothing")))
    assert list(page.edit(index, "Hello?", turns, choices(4), "edit-nothing")) == [PageUpdate()]
