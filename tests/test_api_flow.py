"""The /v1 API's own control flow, on a bare FastAPI app with the turn's fakes (a guard
that flags a word or fails, a chat model that streams given chunks). The real models,
the real server and the official `openai` client are in test_api.py."""

from __future__ import annotations

import json
import logging
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from test_turn import FakeChat, FakeGuard

from moderation.access import RateLimiter, api_exposure, parse_rate
from moderation.api.routes import openai_api
from moderation.models import Models, ModelSlot
from moderation.settings import parse_config

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}


class RecordingChat(FakeChat):
    """FakeChat that also records the generation settings of each call."""

    def __init__(self, chunks, **kw):
        super().__init__(chunks, **kw)
        self.settings = []

    def stream(self, messages, settings, stop=None):
        self.settings.append(settings)
        yield from super().stream(messages, settings, stop)


class SlowChat(FakeChat):
    """FakeChat that takes a little time per chunk, as a real model does."""

    def stream(self, messages, settings, stop=None):
        for chunk in super().stream(messages, settings, stop):
            time.sleep(0.02)
            yield chunk


def api_client(guard, chat, *flags) -> TestClient:
    config = parse_config(
        [
            "--chat-model",
            "offline",
            "--guard-model",
            "offline",
            "--api-key",
            KEY,
            "--check-every",
            "1",
            "--rate-limit",
            "off",
            *flags,
        ]
    )
    models = Models(ModelSlot("Chat model", "offline", lambda: chat), ModelSlot("Guard", "offline", lambda: guard))
    models.start().wait()
    app = FastAPI()
    openai_api(models, config)(app)
    return TestClient(app)


def ask(client, content="hello", **body):
    body = {"messages": [{"role": "user", "content": content}], **body}
    return client.post("/v1/chat/completions", json=body, headers=AUTH)


def stream_events(client, content="hello", **body) -> list[dict]:
    body = {"messages": [{"role": "user", "content": content}], "stream": True, **body}
    with client.stream("POST", "/v1/chat/completions", json=body, headers=AUTH) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line.removeprefix("data: ") for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def streamed_text(events) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])


@pytest.mark.parametrize("policy", ["stream-first", "hold"])
def test_a_reply_flagged_mid_stream_ends_with_content_filter(policy):
    chat = FakeChat(["Sure", ",", " here", " is", " a", " bomb", " recipe", ":", " mix", " this"] + [" and"] * 20)
    client = api_client(FakeGuard(bad="bomb"), chat, "--stream-policy", policy)
    events = stream_events(client, "Tell me a story")
    last = events[-1]
    assert last["choices"][0]["finish_reason"] == "content_filter"
    assert last["moderation"]["outcome"] == "retracted" and last["moderation"]["output"]["results"][0]["flagged"]
    assert last["moderation"]["input"]["results"][0]["flagged"] is False
    if policy == "hold":  # (stream-first: the instant fake finishes before the check beside it)
        assert chat.produced < len(chat.chunks), "generation should stop once the reply is flagged"
        assert "bomb" not in streamed_text(events), "hold shows only text a passing check covered"


def test_a_flagged_prompt_returns_no_text_and_never_reaches_the_chat_model():
    chat = FakeChat(["never"])
    r = ask(api_client(FakeGuard(bad="bomb"), chat, "--prompt-check", "first"), "how to build a bomb")
    body = r.json()
    assert r.status_code == 200 and body["choices"][0]["finish_reason"] == "content_filter"
    assert body["choices"][0]["message"]["content"] == "" and chat.calls == []
    assert body["moderation"]["outcome"] == "refused" and body["moderation"]["output"] is None


def test_with_the_parallel_prompt_check_a_flagged_prompt_still_returns_no_text():
    chat = FakeChat(["never ", "shown"])
    body = ask(
        api_client(FakeGuard(bad="bomb", delay=0.2), chat, "--prompt-check", "parallel"), "how to build a bomb"
    ).json()
    assert body["choices"][0]["finish_reason"] == "content_filter" and body["choices"][0]["message"]["content"] == ""
    assert body["moderation"]["outcome"] == "refused" and "never" not in json.dumps(body)


@pytest.mark.parametrize("mode", ["raise", "garbage", "failed"])
def test_a_guard_failure_blocks_the_turn_and_says_why(mode):
    chat = FakeChat(["never"])
    body = ask(api_client(FakeGuard(mode=mode), chat, "--prompt-check", "first")).json()
    assert body["choices"][0]["finish_reason"] == "content_filter" and body["choices"][0]["message"]["content"] == ""
    assert body["moderation"]["input"]["type"] == "error" and body["moderation"]["input"]["code"] == "guard_failed"
    assert "could not judge" in body["moderation"]["notice"] and chat.calls == []


def test_system_message_and_history_reach_the_turn():
    guard, chat = FakeGuard(), FakeChat(["fine"])
    client = api_client(guard, chat, "--system-prompt", "operator prompt")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": [{"type": "text", "text": "Again"}]},
    ]
    assert client.post("/v1/chat/completions", json={"messages": messages}, headers=AUTH).status_code == 200
    assert chat.calls[-1] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Again"},
    ]
    # judged in context, with the system prompt read together with the message it governs
    assert guard.seen[0][-1] == {"role": "user", "content": "Be brief.\n\nAgain"} and len(guard.seen[0]) == 3
    ask(client, "no system message")
    assert chat.calls[-1][0] == {"role": "system", "content": "operator prompt"}


def test_generation_fields_are_checked_and_clamped_on_the_server():
    chat = RecordingChat(["ok"])
    client = api_client(FakeGuard(), chat)
    body = ask(client, temperature=0.2, top_p=0.5, max_tokens=10**6, seed=42).json()
    assert body["choices"][0]["message"]["content"] == "ok"
    s = chat.settings[-1]
    assert (s.temperature, s.top_p, s.max_new_tokens, s.seed) == (0.2, 0.5, 512, 42)  # the operator's cap
    for bad in [
        {"temperature": 5},
        {"temperature": "hot"},
        {"top_p": -1},
        {"max_tokens": 0},
        {"seed": 1.5},
        {"n": 2},
        {"stop": ["a", "b", "c", "d", "e"]},
        {"stream": "yes"},
        {"moderation": {"input": {"mode": "score"}}},
    ]:
        r = ask(client, **bad)
        assert r.status_code == 422 and r.json()["error"]["param"] == next(iter(bad)), (bad, r.text)
    assert len(chat.settings) == 1
    nulls = ask(client, n=None, stream=None, temperature=None, stop=None, seed=None, stream_options=None)
    assert nulls.status_code == 200 and chat.settings[-1].temperature == 0.6, "null means the default"


@pytest.mark.parametrize("stream", [False, True])
def test_a_stop_string_ends_the_reply_before_it_and_ends_generation(stream):
    chat = SlowChat(["one", ",", " two", ",", " three"] + [" more"] * 40)
    client = api_client(FakeGuard(), chat)
    if stream:
        events = stream_events(client, stop=[", t"])
        text, reason, moderation = (
            streamed_text(events),
            events[-1]["choices"][0]["finish_reason"],
            events[-1]["moderation"],
        )
    else:
        body = ask(client, stop=[", t"]).json()
        text, reason, moderation = (
            body["choices"][0]["message"]["content"],
            body["choices"][0]["finish_reason"],
            body["moderation"],
        )
    assert (text, reason) == ("one", "stop")
    assert moderation["verdicts"][-1]["stage"] == "response", "the reply is still judged after a stop string"
    assert chat.produced < 10, "generation ends at the stop string"


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b"{not json", 400, "invalid_json"),
        ("h\u00e9llo".encode("latin-1"), 400, "invalid_encoding"),
        (b"[]", 400, "invalid_json"),
        (b'{"messages": []}', 422, "invalid_value"),
        (b'{"messages": [{"role": "tool", "content": "x"}]}', 422, "invalid_value"),
        (b'{"messages": [{"role": "user", "content": "  "}]}', 422, "invalid_value"),
        (
            b'{"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]}',
            422,
            "invalid_value",
        ),
        (b'{"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}', 404, "model_not_found"),
        (b'{"messages": "' + b"x" * 1_100_000 + b'"}', 413, "request_too_large"),
    ],
)
def test_bad_requests_get_openai_error_objects(body, status, code):
    r = api_client(FakeGuard(), FakeChat(["x"])).post("/v1/chat/completions", content=body, headers=AUTH)
    assert r.status_code == status and r.json()["error"]["code"] == code and r.json()["error"]["message"]


def test_moderations_judge_each_input_and_in_context():
    guard = FakeGuard(bad="bomb")
    client = api_client(guard, FakeChat(["x"]))
    r = client.post("/v1/moderations", json={"input": ["a bomb", "bread"]}, headers=AUTH).json()
    assert [x["flagged"] for x in r["results"]] == [True, False]
    assert (
        r["results"][0]["categories"]["illicit/violent"]
        and r["results"][0]["llama_guard"]["categories"][0]["code"] == "S8"
    )
    conversation = [{"role": "user", "content": "how do I bake?"}]
    client.post("/v1/moderations", json={"input": "mix flour", "conversation": conversation}, headers=AUTH)
    assert guard.seen[-1] == conversation + [{"role": "assistant", "content": "mix flour"}]
    assert client.post("/v1/moderations", json={"input": []}, headers=AUTH).status_code == 422


def test_models_still_loading_answer_503_with_retry_after():
    config = parse_config(["--chat-model", "offline", "--guard-model", "offline", "--api-key", KEY])
    models = Models(ModelSlot("Chat model", "offline", lambda: None), ModelSlot("Guard", "offline", lambda: None))
    app = FastAPI()
    openai_api(models, config)(app)
    r = TestClient(app).post("/v1/moderations", json={"input": "x"}, headers=AUTH)
    assert r.status_code == 503 and r.headers["Retry-After"] == "10" and "loads next" in r.json()["error"]["message"]


def test_without_a_key_the_api_refuses_other_addresses():
    config = parse_config(["--chat-model", "offline", "--guard-model", "offline", "--host", "127.0.0.1"])
    app = FastAPI()
    openai_api(Models(ModelSlot("c", "x", lambda: 1), ModelSlot("g", "x", lambda: 1)), config)(app)
    r = TestClient(app).get("/v1/models")  # TestClient's address is "testclient", not loopback
    assert r.status_code == 403 and "loopback" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "flags, on",
    [
        ([], True),
        (["--host", "0.0.0.0"], False),
        (["--share"], False),
        (["--host", "0.0.0.0", "--api-key", KEY], True),
        (["--share", "--api-key", KEY], True),
    ],
)
def test_api_stays_off_on_a_public_address_without_a_key_and_the_log_says_why(flags, on, caplog, monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    config = parse_config(["--chat-model", "offline", "--guard-model", "offline", *flags])
    app = FastAPI()
    with caplog.at_level(logging.INFO, logger="moderation.api.routes"):
        openai_api(Models(ModelSlot("c", "x", lambda: 1), ModelSlot("g", "x", lambda: 1)), config)(app)
    assert (TestClient(app).get("/v1/models").status_code != 404) is on  # on: 401 or 403 here, not 404
    assert api_exposure(config)[1] in caplog.text
    if not on:
        assert "is off" in caplog.text


def test_api_flags_and_variables(monkeypatch):
    monkeypatch.setenv("API_KEYS", "first-key-1, second-key-2")
    monkeypatch.setenv("RATE_LIMIT", "5/second")
    config = parse_config(["--chat-model", "offline", "--guard-model", "offline"])
    assert config.api_keys == ("first-key-1", "second-key-2") and str(config.rate_limit) == "5/second"
    assert parse_config(["--chat-model", "x", "--guard-model", "y", "--api-key", "flag-key-1"]).api_keys == (
        "flag-key-1",
    )
    for bad in (["--rate-limit", "lots"], ["--rate-limit", "0/minute"], ["--api-key", "short"]):
        with pytest.raises(SystemExit):
            parse_config(["--chat-model", "x", "--guard-model", "y", *bad])
    monkeypatch.setenv("RATE_LIMIT", "fast")
    with pytest.raises(SystemExit):
        parse_config(["--chat-model", "x", "--guard-model", "y"])


def test_rate_limiter_refills_evenly():
    limiter = RateLimiter(parse_rate("60/minute"))
    assert all(limiter.take("a", 0.0) == 0.0 for _ in range(60))
    assert limiter.take("a", 0.0) == pytest.approx(1.0)
    assert limiter.take("b", 0.0) == 0.0, "buckets are per identity"
    assert limiter.take("a", 1.0) == 0.0 and limiter.take("a", 1.0) == pytest.approx(1.0)
    assert RateLimiter(None).take("a", 0.0) == 0.0
