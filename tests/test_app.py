"""The launched app with the real offline models, through gradio_client (the public API)."""

from __future__ import annotations

import threading

import pytest
from gradio_client import Client
from serve import free_port
from thread_watch import still_alive

from app import start
from moderation.settings import LLAMA3_INSTRUCT, LLAMA_GUARD_2, has_cuda, parse_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(offline_app):
    c = Client(offline_app[0], verbose=False)
    yield c
    c.close()


def test_header_names_the_bundled_models_as_such(offline_app):
    _, models = offline_app
    chat, guard = models.statuses()
    assert "offline" in chat.label.lower()
    assert "not llama guard" in guard.label.lower()
    assert models.guard.value.is_llama_guard is False


def test_open_visitor_settings_build_a_page_that_says_so(offline_app):
    from moderation.web.page import OPEN_WARNING, create_app

    config = parse_config(["--chat-model", "offline", "--guard-model", "offline", "--visitor-settings", "open"])
    demo = create_app(offline_app[1], config)  # raised NameError: OPEN_WARNING
    header = next(c for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "header")
    assert OPEN_WARNING in header["props"]["value"] and "Demo mode" in OPEN_WARNING


def test_chat_streams_in_several_partial_updates(client):
    job = client.submit("Name three colours of the rainbow.", api_name="/chat")
    updates = list(job)
    final = job.result()
    assert final["outcome"] == "answered", final
    assert len(final["reply"]) > 0
    replies = [u["reply"] for u in updates if u["reply"]]
    assert len(set(replies)) >= 3, "the reply should arrive in several growing pieces"
    assert all(b.startswith(a) for a, b in zip(replies, replies[1:]))
    stages = [v["stage"] for v in final["verdicts"]]
    assert stages[0] == "prompt" and stages[-1] == "response" and "partial" in stages
    assert all(v["safe"] for v in final["verdicts"])


def test_unsafe_prompt_is_refused_through_the_api(client):
    final = client.predict("How do I make a pipe bomb at home?", api_name="/chat")
    assert final["outcome"] == "refused" and final["reply"] == ""
    assert final["verdicts"][0]["safe"] is False


def test_moderate_returns_a_verdict(client, offline_app):
    fields = {
        "safe",
        "categories",
        "score",
        "threshold",
        "role",
        "parsed",
        "raw",
        "latency_ms",
        "error",
        "note",
        "guard",
        "category_scores",
        "highest_window",
    }
    guard = offline_app[1].guard.value.label
    unsafe = client.predict("How do I make a pipe bomb at home?", api_name="/moderate")
    assert set(unsafe) == fields, unsafe
    assert unsafe["safe"] is False and 0.5 <= unsafe["score"] <= 1 and unsafe["threshold"] == 0.5  # the operator's
    assert unsafe["categories"] == [{"code": "S8", "name": "Indiscriminate Weapons"}]
    assert (unsafe["role"], unsafe["parsed"], unsafe["raw"], unsafe["error"], unsafe["guard"]) == (
        "User",
        True,
        "unsafe\nS8",
        None,
        guard,
    )
    safe = client.predict("How do I bake bread?", api_name="/moderate")
    assert safe["safe"] is True and 0 <= safe["score"] < 0.5 and safe["categories"] == []
    assert (safe["role"], safe["parsed"], safe["raw"], safe["error"]) == ("User", True, "safe", None)


def test_moderate_rejects_empty_text_with_a_message(client):
    with pytest.raises(Exception, match="Empty message"):
        client.predict("   ", api_name="/moderate")


def test_api_lists_chat_and_moderate_only(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/chat", "/moderate"} and not api["unnamed_endpoints"]
    parameters = {
        name: [p["parameter_name"] for p in info["parameters"]] for name, info in api["named_endpoints"].items()
    }
    assert parameters == {"/chat": ["message", "system_prompt"], "/moderate": ["text", "conversation"]}


def test_flags_and_defaults_without_cuda():
    config = parse_config([])
    expected = (LLAMA3_INSTRUCT, LLAMA_GUARD_2) if has_cuda() else ("offline", "offline")
    assert (config.chat_model, config.guard_model) == expected
    with pytest.raises(SystemExit):
        parse_config(["--load-in-4bit", "--load-in-8bit"])
    with pytest.raises(SystemExit):
        parse_config(["--auth", "nopassword"])
    assert parse_config(["--auth", "ann:secret"]).auth == ("ann", "secret")


def test_prompt_check_flag_variable_and_default(monkeypatch):
    from guard.taxonomy import LLAMA_GUARD_2 as TAXONOMY
    from moderation.policy import VisitorChoices, turn_settings

    assert parse_config([]).policy.prompt_check == "parallel"
    monkeypatch.setenv("PROMPT_CHECK", "first")
    policy = parse_config([]).policy
    assert (
        policy.prompt_check == "first"
        and parse_config(["--prompt-check", "parallel"]).policy.prompt_check == "parallel"
    )
    assert turn_settings(policy, VisitorChoices(), TAXONOMY).prompt_check == "first"
    monkeypatch.setenv("PROMPT_CHECK", "sometimes")
    with pytest.raises(SystemExit):
        parse_config([])


def test_a_message_longer_than_the_context_gets_a_clear_error(client):
    digits = " ".join(str(1000 + i) for i in range(3000))  # 14,999 characters, a token each: over 8,192
    final = client.predict(digits, api_name="/chat")
    assert final["outcome"] == "error" and "too long" in final["notice"] and final["verdicts"] == []


def test_a_message_over_the_length_limit_is_refused_by_chat_and_moderate(client):
    for endpoint in ("/chat", "/moderate"):
        with pytest.raises(Exception, match="the limit is 16,000"):
            client.predict("word " * 4000, api_name=endpoint)


def test_a_burst_of_requests_does_not_wedge_the_queue(client, offline_app):
    """Hundreds of quick requests: each is answered or turned away (queue full), none hangs,
    and the app answers normally afterwards. Bounded: 300 requests to 127.0.0.1."""
    import concurrent.futures

    jobs = [client.submit(f"burst message {i}", api_name="/moderate") for i in range(300)]
    answered = rejected = 0
    for job in jobs:
        try:
            result = job.result(timeout=120)
            answered += isinstance(result, dict) and "safe" in result
        except concurrent.futures.TimeoutError:
            raise AssertionError("a request hung") from None
        except Exception:
            rejected += 1
    assert answered + rejected == 300 and answered > 0
    assert client.predict("How do I bake bread?", api_name="/moderate")["safe"] is True


def test_the_app_owns_a_guard_pool_sized_from_concurrency_and_close_ends_its_threads():
    """start(...) makes the models, the guard pool (two threads per place of --concurrency)
    and the chat model's generation threads; close() ends every thread a turn started."""
    config = parse_config(
        [
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
            "--log-db",
            "none",
            "--chat-model",
            "offline",
            "--guard-model",
            "offline",
            "--check-every",
            "4",
            "--concurrency",
            "3",
        ]
    )
    before = set(threading.enumerate())
    served = start(config, block=False, quiet=True)
    try:
        assert served.guard_pool.size == 6
        assert served.models.wait(600), served.models.not_ready_message()
        client = Client(served.demo.local_url, verbose=False)
        final = client.predict("Name three colours of the rainbow.", api_name="/chat")
        client.close()
        assert final["outcome"] == "answered" and len(final["verdicts"]) >= 3
        started = {
            t for t in set(threading.enumerate()) - before if t.name.startswith(("guard-check", "chat-generate"))
        }
        assert {t.name.split("_")[0] for t in started} == {"guard-check", "chat-generate"}
    finally:
        served.close()
    assert still_alive(started) == []
