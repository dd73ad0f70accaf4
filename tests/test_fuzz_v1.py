"""Fuzz the OpenAI-compatible API under /v1 with generated JSON bodies.

Bodies close to valid ones (every field either plausible or of any type), any JSON, and
bytes that are not JSON at all. The answer is never a 500: a completion, a moderation
or a model list of the documented shape, or an OpenAI-style error whose message a person
can read. The chat model gets only what the guard passed; the server stays up.
"""

from __future__ import annotations

import json

import pytest
from fuzz_kit import ANYTHING, HIDDEN, JSON, MESSAGE, NUMBERS, SAFE, fuzz_app, readable
from hypothesis import example, given
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

ROLE = st.one_of(st.sampled_from(["system", "developer", "user", "assistant", "tool"]), ANYTHING)
PART = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["text", "image_url"]), ANYTHING), "text": st.one_of(MESSAGE, ANYTHING)}
)
CONTENT = st.one_of(MESSAGE, st.lists(PART, max_size=3), ANYTHING)
MESSAGES = st.one_of(
    st.builds(
        lambda history, last: history + [{"role": "user", "content": last}],
        st.lists(st.fixed_dictionaries({"role": ROLE, "content": CONTENT}), max_size=5),
        CONTENT,
    ),
    st.lists(ANYTHING, max_size=3),
    ANYTHING,
)


def plausible(good):
    """A field's value: one that makes sense for it, or anything at all."""
    return st.one_of(good, NUMBERS, ANYTHING)


CHAT_BODY = st.fixed_dictionaries(
    {"messages": MESSAGES},
    optional={
        "model": plausible(st.sampled_from(["offline", "gpt-4o"])),
        "temperature": plausible(st.floats(0, 2)),
        "top_p": plausible(st.floats(0, 1)),
        "max_tokens": plausible(st.integers(1, 16)),
        "max_completion_tokens": plausible(st.integers(1, 16)),
        "seed": plausible(st.integers()),
        "stop": plausible(st.one_of(st.text(max_size=5), st.lists(st.text(max_size=5)))),
        "stream": plausible(st.booleans()),
        "stream_options": plausible(st.fixed_dictionaries({"include_usage": st.booleans()})),
        "n": plausible(st.just(1)),
        "tools": ANYTHING,
        "moderation": plausible(st.just({"input": {"mode": "block"}})),
        "user": ANYTHING,
        "logprobs": ANYTHING,
    },
)
MODERATION_BODY = st.fixed_dictionaries(
    {"input": st.one_of(MESSAGE, st.lists(st.one_of(MESSAGE, PART), max_size=4), ANYTHING)},
    optional={"conversation": MESSAGES, "model": ANYTHING},
)
NOT_JSON = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
    st.sampled_from([b"", b"{", b"[1,2", b"\xff\xfe{}", b'{"a": NaN}', b"[" * 5000 + b"]" * 5000]),
)


@pytest.fixture(scope="module")
def app():
    with fuzz_app("--prompt-check", "first", "--check-every", "4", "--rate-limit", "off") as app:
        yield app


def assert_error_body(response) -> None:
    """An OpenAI-style error object with a readable message, and a status under 500."""
    assert response.status_code < 500, f"{response.status_code}: {response.text[:800]}"
    error = response.json().get("error")
    assert isinstance(error, dict) and readable(error.get("message")), response.text[:800]


def assert_completion(response, streamed: bool) -> None:
    if response.status_code != 200:
        return assert_error_body(response)
    if not streamed:
        choice = response.json()["choices"][0]
        assert isinstance(choice["message"]["content"], str)
        assert choice["finish_reason"] in {"stop", "length", "content_filter"}, choice
        return None
    events = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    assert events and events[-1] == "[DONE]" or "error" in json.loads(events[-1]), response.text[-800:]
    for event in events[:-1]:
        chunk = json.loads(event)
        assert "error" not in chunk or readable(chunk["error"].get("message")), chunk
    return None


@given(body=st.one_of(CHAT_BODY, JSON))
@example(body={"messages": [{"role": "user", "content": "Hi"}], "top_p": 0})  # issue 18: a 500
def test_chat_completions_answer_or_refuse_readably(app, body):
    since = app.checkpoint()
    response = app.post("v1/chat/completions", body)
    assert_completion(response, streamed=isinstance(body, dict) and body.get("stream") is True)
    app.assert_sound(since)


@given(body=st.one_of(MODERATION_BODY, JSON))
def test_moderations_judge_or_refuse_readably(app, body):
    since = app.checkpoint()
    response = app.post("v1/moderations", body)
    if response.status_code == 200:
        results = response.json()["results"]
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        assert len(results) == len(inputs) and all(isinstance(r["flagged"], bool) for r in results)
    else:
        assert_error_body(response)
    app.assert_sound(since)


@given(path=st.sampled_from(["v1/chat/completions", "v1/moderations"]), raw=NOT_JSON)
def test_a_body_that_is_not_a_json_object_is_refused_readably(app, path, raw):
    since = app.checkpoint()
    assert_error_body(app.post(path, None, raw=raw))
    app.assert_sound(since)


@given(query=st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3))
def test_models_lists_the_served_model(app, query):
    response = app.client.get(app.url + "v1/models", params=query)
    assert response.status_code == 200 and response.json()["data"][0]["id"] == "offline", response.text


@given(pairs=st.integers(1_001, 6_500))
def test_a_long_history_is_refused_with_422(app, pairs):
    """A body under 1 MB can carry thousands of tiny turns; fitting them to the context
    costs minutes (issue 18, item 3). /v1 caps the number of messages and says so."""
    messages = [{"role": ("user", "assistant")[i % 2], "content": "ok"} for i in range(2 * pairs)]
    since = app.checkpoint()
    response = app.post("v1/chat/completions", {"messages": messages + [{"role": "user", "content": SAFE[0]}]})
    assert response.status_code == 422 and response.json()["error"]["param"] == "messages", response.text[:500]
    app.assert_sound(since)


@given(text=HIDDEN, stream=st.booleans())
def test_an_unsafe_message_with_invisible_characters_never_reaches_the_chat_model(app, text, stream):
    """Invisible characters inside the words or in place of the spaces of an unsafe
    message do not hide it from the guard (issue 18, item 6)."""
    calls = len(app.chat.calls)
    response = app.post("v1/chat/completions", {"messages": [{"role": "user", "content": text}], "stream": stream})
    assert response.status_code == 200, response.text[:500]
    assert len(app.chat.calls) == calls, f"the chat model was asked to answer {text!r}"
    assert "content_filter" in response.text
