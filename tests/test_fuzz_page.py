"""Fuzz the page's events with hand-made Gradio queue payloads (no browser, no Gradio client).

Each event (Send, an example's click, Retry, Edit, Undo, Clear, Stop, and the saved
conversations' load, save, choice and New chat) is sent as the page
sends it (`/gradio_api/queue/join` or `/gradio_api/run/predict`, with its fn index and
trigger), with generated values for every input: first values the page's widgets can hold
(within each slider's range, a radio's choices, ...), then anything JSON can carry. A
refusal is a warning with a readable message, never a Gradio error; a crafted value may
be refused with a readable error, never with an exception's text. Whatever is sent, the
chat model gets only what the guard passed and the server stays up.
"""

from __future__ import annotations

import pytest
from fuzz_kit import ANYTHING, JSON, MESSAGE, SAFE, UNSAFE, assert_completed, fuzz_app, new_session, readable, warnings
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

QUEUED = ["on_send", "on_example", "on_retry", "on_edit"]
UNQUEUED = ["on_undo", "on_clear", "on_stop"]
SAVED = ["on_load", "on_turns", "on_pick", "on_new"]  # the conversations kept in the browser


@pytest.fixture(scope="module")
def app():
    with fuzz_app("--prompt-check", "first", "--check-every", "4") as app:
        yield app


def widget_strategy(app, name: str):
    """Values the page's widget `name` can hold."""
    if name == "state":
        return st.just([])  # the server keeps the session's turns; what is sent is not used
    if name == "browserstate":
        return st.just({})  # a first visit's (what comes back later is fuzzed as ANYTHING)
    kind, props = app.widget(name)
    if kind == "slider":
        low, high = props["minimum"], props["maximum"]
        whole = float(props.get("step", 1)).is_integer() and float(low).is_integer()
        return st.integers(int(low), int(high)) if whole else st.floats(low, high)
    if kind == "radio":
        return st.sampled_from([value for _, value in props["choices"]])
    if kind == "dropdown":  # the saved conversations' list: none chosen, or one of its choices
        return st.sampled_from([None, *(value for _, value in props["choices"])])
    if kind == "checkboxgroup":
        return (
            st.lists(st.sampled_from([value for _, value in props["choices"]]), unique=True)
            if props["choices"]
            else st.just([])
        )
    return MESSAGE if name == "message" else st.one_of(st.just(props.get("value") or ""), MESSAGE)


def event_data_strategy(name: str):
    """What the page sends with an example's click or an edit."""
    if name == "on_example":
        return st.fixed_dictionaries(
            {
                "index": st.integers(0, 3),
                "value": st.fixed_dictionaries({"text": st.one_of(st.sampled_from(SAFE + UNSAFE), MESSAGE)}),
            }
        )
    if name == "on_edit":
        return st.fixed_dictionaries({"index": st.integers(0, 5), "value": MESSAGE, "previous_value": MESSAGE})
    return st.none()


def warm_up(app, session: str) -> None:
    """A safe turn in `session`, so that Retry, Edit and Undo have one to work on."""
    send = app.page_event("on_send")
    values = {name: app.widget(name)[1].get("value") if name != "state" else [] for name in send.inputs}
    values.update({"message": "Tell me about tea.", "max-new-tokens": 4})
    assert_completed(app.queue(send, [values[name] for name in send.inputs], session), False, "warm-up send")


def play(app, name: str, data: list, event_data, warm: bool, typed: bool) -> None:
    """One generated event in a new session; every check that holds for any input."""
    session, since = new_session(), app.checkpoint()
    if warm:
        warm_up(app, session)
    event = app.page_event(name)
    if event.queued:
        messages = app.queue(event, data, session, event_data)
        assert_completed(messages, refusals_only=not typed, where=name)
        assert all(readable(w) for w in warnings(messages)), f"{name}: unreadable warnings {warnings(messages)}"
    else:
        answer = app.direct(event, data, session, event_data)
        assert answer.status_code != 500, f"{name}: {answer.status_code} {answer.text[:500]}"
        assert answer.status_code == 200 or readable(answer.json().get("error")), answer.text[:500]
    app.assert_sound(since)


@pytest.mark.parametrize("name", QUEUED + UNQUEUED + SAVED)
@given(data=st.data(), warm=st.booleans())
def test_what_the_page_can_send_never_breaks_it(app, name, data, warm):
    event = app.page_event(name)
    values = [data.draw(widget_strategy(app, widget), label=widget) for widget in event.inputs]
    play(app, name, values, data.draw(event_data_strategy(name), label="event_data"), warm, typed=True)


@pytest.mark.parametrize("name", QUEUED + UNQUEUED + SAVED)
@given(data=st.data(), warm=st.booleans())
def test_a_crafted_payload_is_refused_readably(app, name, data, warm):
    event = app.page_event(name)
    values = [data.draw(st.one_of(widget_strategy(app, widget), ANYTHING), label=widget) for widget in event.inputs]
    event_data = data.draw(st.one_of(event_data_strategy(name), JSON), label="event_data")
    play(app, name, values, event_data, warm, typed=False)
