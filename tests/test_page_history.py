"""The server's check of the conversations a browser sends back (moderation.web.history),
with hypothesis: any JSON is read without an exception and nothing of it is taken back
unless this server signed it; a saved conversation comes back as it was (less the text
the guard withheld), after the trip through the browser's JSON; any edit of it is refused
with a message; what the browser is given stays within the bounds."""

from __future__ import annotations

import json
import secrets
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.taxonomy import LLAMA_GUARD_2
from guard.verdict import Verdict
from moderation.turn import ANSWERED, ERROR, REFUSED, RETRACTED, Check, TurnState
from moderation.web.history import (
    MAX_SAVED_CONVERSATIONS,
    MAX_SAVED_TURNS,
    MAX_STORE_CHARS,
    Shelf,
    new_id,
)

KEY = secrets.token_bytes(32)
WITHHELD = "<withheld by the guard>"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)
texts = st.text(max_size=40)
units = st.floats(0.0, 1.0)


@st.composite
def verdicts(draw) -> Verdict:
    parsed = draw(st.booleans())
    return Verdict(
        safe=parsed and draw(st.booleans()),
        parsed=parsed,
        categories=tuple(draw(st.lists(st.sampled_from(LLAMA_GUARD_2), max_size=2, unique=True))),
        score=draw(st.none() | units),
        threshold=draw(st.none() | units),
        role=draw(st.sampled_from(["User", "Agent"])),
        raw=draw(texts),
        error=draw(st.none() | texts),
        note=draw(texts),
        guard=draw(texts),
        latency_s=draw(st.floats(0.0, 100.0)),
        category_scores=draw(st.dictionaries(st.sampled_from([c.code for c in LLAMA_GUARD_2]), units, max_size=3)),
    )


@st.composite
def turns(draw) -> TurnState:
    shown = draw(texts)
    checks = draw(
        st.lists(
            st.builds(
                Check,
                st.sampled_from(["prompt", "partial", "response"]),
                verdicts(),
                st.none() | st.integers(0, 500),
                st.none() | st.integers(0, 500),
            ),
            max_size=4,
        )
    )
    return TurnState(
        user=draw(st.text(min_size=1, max_size=40)),
        system_prompt=draw(texts),
        shown=shown,
        reply=shown + WITHHELD,  # what the model wrote beyond what was shown
        checks=tuple(checks),
        outcome=draw(st.sampled_from([ANSWERED, REFUSED, RETRACTED, ERROR])),
        notice=draw(texts),
        dropped=draw(st.integers(0, 9)),
        stopped=draw(st.booleans()),
        cut=draw(st.booleans()),
        log_id=secrets.token_hex(16),
        reported=draw(st.sampled_from(["", "should have been flagged"])),
        started_at=draw(st.floats(0.0, 2e9)),
    )


def through_browser(value):
    """The value after JSON.stringify in a browser and back: a whole float is written as an int."""

    def js(v):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, list):
            return [js(x) for x in v]
        if isinstance(v, dict):
            return {k: js(x) for k, x in v.items()}
        return v

    return js(json.loads(json.dumps(value)))


def as_restored(turn: TurnState) -> TurnState:
    """What a restored turn is: only what was shown of its reply, not reportable again."""
    return replace(turn, reply=turn.shown, log_id="", started_at=0.0)


def same(a: TurnState, b: TurnState) -> bool:
    strip = [
        replace(c, verdict=replace(c.verdict, categories=tuple((k.code, k.name) for k in c.verdict.categories)))
        for c in a.checks
    ]
    other = [
        replace(c, verdict=replace(c.verdict, categories=tuple((k.code, k.name) for k in c.verdict.categories)))
        for c in b.checks
    ]
    return replace(a, checks=()) == replace(b, checks=()) and strip == other


@SETTINGS
@given(json_values)
def test_anything_a_browser_sends_is_read_without_an_exception_and_nothing_unsigned_is_taken(value):
    shelf = Shelf(KEY).read(value)
    assert shelf.conversations == () and shelf.current == ""
    assert bool(shelf.problem) == (value not in (None, {}))


@SETTINGS
@given(st.lists(st.lists(turns(), min_size=1, max_size=4), min_size=1, max_size=3))
def test_a_saved_conversation_comes_back_as_it_was_shown(conversations):
    shelf = Shelf(KEY)
    ids = [new_id() for _ in conversations]
    for ident, conv in zip(ids, conversations, strict=True):
        shelf = shelf.put(ident, conv)
    value = through_browser(shelf.value())
    assert WITHHELD not in json.dumps(value, ensure_ascii=False)  # the guard's withheld text never leaves
    back = Shelf(KEY).read(value)
    assert back.problem == "" and back.current == ids[-1]
    assert [c.id for c in back.conversations] == ids[::-1]  # newest first
    for conv, restored in zip(conversations[::-1], back.conversations, strict=True):
        assert all(same(as_restored(t), r) for t, r in zip(conv, restored.turns, strict=True))
        assert len(conv) == len(restored.turns) and restored.title
    assert Shelf(secrets.token_bytes(32)).read(value).conversations == ()  # another server's key: nothing


def _leaves(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    yield path


@SETTINGS
@given(st.lists(turns(), min_size=1, max_size=3), st.data())
def test_any_edit_of_a_saved_conversation_is_refused_with_a_message(conv, data):
    shelf = Shelf(KEY).put(new_id(), conv)
    value = through_browser(shelf.value())
    paths = [p for p in _leaves(value["conversations"][0]) if p and p != ("id",)]
    path = data.draw(st.sampled_from(paths))
    target = value["conversations"][0]
    for step in path[:-1]:
        target = target[step]
    new = data.draw(json_values.filter(lambda v: through_browser(v) != target[path[-1]]))
    target[path[-1]] = new
    back = Shelf(KEY).read(through_browser(value))
    if back.conversations:  # an edit that changed nothing the page shows (e.g. a key reordered)
        assert all(same(as_restored(t), r) for t, r in zip(conv, back.conversations[0].turns, strict=True))
    else:
        assert "could not be restored" in back.problem


def test_what_the_browser_keeps_stays_within_the_bounds():
    big = TurnState(user="q" * 16_000, shown="a" * 60_000, outcome=ANSWERED)
    shelf = Shelf(KEY)
    for _ in range(MAX_SAVED_CONVERSATIONS + 5):
        shelf = shelf.put(new_id(), [big] * (MAX_SAVED_TURNS + 3))
    value = shelf.value()
    assert len(json.dumps(value, ensure_ascii=False)) <= MAX_STORE_CHARS
    assert 1 <= len(value["conversations"]) <= MAX_SAVED_CONVERSATIONS
    newest = value["conversations"][0]["turns"]  # the conversation on the page, less its oldest turns
    assert 1 <= len(newest) < MAX_SAVED_TURNS and all(
        len(c["turns"]) <= MAX_SAVED_TURNS for c in value["conversations"]
    )
    small = Shelf(KEY)
    for _ in range(MAX_SAVED_CONVERSATIONS + 5):
        small = small.put(new_id(), [replace(big, user="q", shown="a")] * (MAX_SAVED_TURNS + 3))
    assert [len(c["turns"]) for c in small.value()["conversations"]] == [MAX_SAVED_TURNS] * MAX_SAVED_CONVERSATIONS
    assert Shelf(KEY).read(value).problem == ""
    many = {**value, "conversations": value["conversations"] * 40}  # a visitor's copy, over every bound
    assert "could not be restored" in Shelf(KEY).read(many).problem


def test_a_finished_conversation_only_and_an_empty_one_is_not_listed():
    running = TurnState(user="still running")  # no outcome yet: not saved
    shelf = Shelf(KEY).put("0" * 16, [running])
    assert shelf.conversations == () and shelf.current == "0" * 16
    assert shelf.put("1" * 16, [replace(running, outcome=ANSWERED)]).choices() == [("still running", "1" * 16)]
