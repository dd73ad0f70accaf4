"""Fuzz the page's public API endpoints, /chat and /moderate, with raw queue payloads.

Any value of any JSON type goes in each parameter. The answer is a result of the
documented shape, or a refusal (gr.Error) whose message a person can read; never an
exception's text. The chat model gets only what the guard passed; the server stays up.
"""

from __future__ import annotations

import pytest
from fuzz_kit import ANYTHING, MESSAGE, assert_completed, fuzz_app, new_session, readable
from hypothesis import given
from hypothesis import strategies as st

from moderation.turn import ANSWERED, ERROR, REFUSED, RETRACTED

pytestmark = pytest.mark.slow

ROLES = st.sampled_from(["user", "assistant", "system", "tool", ""])
CONVERSATION = st.one_of(
    st.none(),
    st.lists(
        st.fixed_dictionaries({"role": st.one_of(ROLES, ANYTHING), "content": st.one_of(MESSAGE, ANYTHING)}), max_size=6
    ),
    st.integers(0, 80).map(lambda n: [{"role": ("user", "assistant")[i % 2], "content": "ok"} for i in range(n)]),
    ANYTHING,
)


@pytest.fixture(scope="module")
def app():
    with fuzz_app("--prompt-check", "first", "--check-every", "4") as app:
        yield app


@given(message=st.one_of(MESSAGE, ANYTHING), system_prompt=st.one_of(st.just(""), MESSAGE, ANYTHING))
def test_chat_answers_or_refuses_readably(app, message, system_prompt):
    since = app.checkpoint()
    end = assert_completed(app.queue(app.api_event("chat"), [message, system_prompt], new_session()), where="/chat")
    if end.get("success"):
        (update,) = end["output"]["data"]
        assert update["outcome"] in {ANSWERED, REFUSED, RETRACTED, ERROR}, update
        assert update["outcome"] in {ANSWERED} or readable(update["notice"]), update
    app.assert_sound(since)


@given(text=st.one_of(MESSAGE, ANYTHING), conversation=CONVERSATION)
def test_moderate_judges_or_refuses_readably(app, text, conversation):
    since = app.checkpoint()
    end = assert_completed(app.queue(app.api_event("moderate"), [text, conversation], new_session()), where="/moderate")
    if end.get("success"):
        (verdict,) = end["output"]["data"]
        assert isinstance(verdict["safe"], bool) and verdict["role"] in {"User", "Agent"}, verdict
    app.assert_sound(since)
