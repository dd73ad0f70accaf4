"""The /v1 request models (moderation.api.schema): what a refusal says and which values
they take, beyond the bounds that test_bounds walks. Through the real router on a bare
FastAPI app where the HTTP answer matters, on the parse functions where only the
checked value does."""

from __future__ import annotations

import pytest
from fuzz_kit import readable
from test_api_flow import AUTH, RecordingChat, api_client, ask
from test_turn import FakeChat, FakeGuard

from moderation import schema
from moderation.api.schema import ApiError, ChatBody, parse_chat_request, parse_moderation_request

USER = [{"role": "user", "content": "Hi"}]


def refusal(parse, body: dict) -> ApiError:
    with pytest.raises(ApiError) as refused:
        parse(body)
    assert refused.value.status == 422
    return refused.value


def test_every_wrong_field_is_named_in_one_422():
    messages = USER + [{"role": "assistant", "content": "Hello"}, USER[0], {"role": "tool", "content": "x"}]
    client = api_client(FakeGuard(), FakeChat(["x"]))
    r = client.post(
        "/v1/chat/completions", json={"messages": messages, "temperature": 5, "stop": ["a", ""]}, headers=AUTH
    )
    error = r.json()["error"]
    assert r.status_code == 422 and error["type"] == "invalid_request_error" and error["code"] == "invalid_value"
    assert error["param"] == "messages[3].role"
    assert error["message"] == (
        "messages[3].role must be system, developer, user or assistant, not 'tool'; "
        "temperature must be a number from 0 to 2, not 5; stop[1] is empty"
    )


@pytest.mark.parametrize(
    "parse, body, param, says",
    [
        (
            parse_chat_request,
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content",
            "images and files are not supported",
        ),
        (parse_chat_request, {"messages": [{"content": "Hi"}]}, "messages[0].role", "must be system, developer"),
        (
            parse_chat_request,
            {"messages": USER, "stream_options": {"include_usage": "yes"}},
            "stream_options.include_usage",
            "must be true or false, not 'yes'",
        ),
        (parse_chat_request, {"messages": USER, "model": 4}, "model", "must be a string"),
        (parse_chat_request, {"messages": USER, "seed": "7"}, "seed", "must be a whole number"),
        (parse_moderation_request, {"input": ["fine", "  "]}, "input[1]", "input[1] is empty"),
        (
            parse_moderation_request,
            {"input": "x" * (schema.MAX_MESSAGE_CHARS + 1)},
            "input",
            f"has {schema.MAX_MESSAGE_CHARS + 1:,} characters; the limit is {schema.MAX_MESSAGE_CHARS:,}",
        ),
        (
            parse_moderation_request,
            {"input": "x", "conversation": [{"role": "assistant", "content": "y"}]},
            "conversation",
            "must start with a user message",
        ),
    ],
)
def test_a_refusal_names_the_field_in_words_a_person_reads(parse, body, param, says):
    error = refusal(parse, body)
    assert error.param == param and says in error.message and error.message.startswith(param), error.message
    assert readable(error.message) and "Input should" not in error.message and "instance of" not in error.message


@pytest.mark.parametrize(
    "field, value",
    [
        ("stream", 0),
        ("stream", "true"),
        ("stream_options", {"include_usage": 1}),
        ("moderation", {"input": "score"}),
        ("tools", {}),
        ("tools", [{"type": "function"}]),
        ("n", "1"),
        ("temperature", "0.5"),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_not_coerced(field, value):
    assert refusal(parse_chat_request, {"messages": USER, field: value}).param.startswith(field)


def test_max_tokens_is_checked_even_beside_max_completion_tokens_which_wins():
    assert (
        refusal(parse_chat_request, {"messages": USER, "max_completion_tokens": 5, "max_tokens": 0}).param
        == "max_tokens"
    )
    assert parse_chat_request({"messages": USER, "max_completion_tokens": 5, "max_tokens": 9}).max_tokens == 5
    assert parse_chat_request({"messages": USER, "max_completion_tokens": None, "max_tokens": 9}).max_tokens == 9


def test_fields_openai_clients_send_that_this_server_does_not_use_are_ignored():
    chat = RecordingChat(["ok"])
    r = ask(
        api_client(FakeGuard(), chat),
        user="u-1",
        frequency_penalty=0.5,
        logprobs=False,
        tools=[],
        response_format={"type": "text"},
        metadata={"a": "b"},
    )
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "ok", r.text


def test_the_request_models_take_their_ranges_from_the_settings_schema():
    for name in ("temperature", "top_p"):
        assert schema.bound(name, ChatBody) == schema.bound(name)
    longest = "a" * schema.MAX_MESSAGE_CHARS
    assert (
        parse_chat_request({"messages": [{"role": "user", "content": [{"type": "text", "text": longest}]}]}).user
        == longest
    )
    assert (
        refusal(parse_chat_request, {"messages": [{"role": "user", "content": longest + "b"}]}).param
        == "messages[0].content"
    )


def test_text_parts_are_joined_and_cleaned_as_before():
    body = {
        "messages": [
            {"role": "developer", "content": " Be brief.\x00 "},
            {"role": "user", "content": [{"type": "text", "text": t} for t in ("one", "two")]},
            {"role": "user", "content": "three"},
        ],
        "stop": "x",
        "stream": None,
    }
    request = parse_chat_request(body)
    assert (request.system, request.user, request.stop, request.stream) == (
        "Be brief.",
        "one\ntwo\n\nthree",
        ("x",),
        False,
    )
    moderation = parse_moderation_request({"input": ["a", {"type": "text", "text": " b "}]})
    assert moderation.inputs == ("a", "b") and moderation.conversation == ()
