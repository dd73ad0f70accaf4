"""docs/deploy.md, the app side: app replicas in front of one model server.

A real `transformers serve` stands in for vLLM / TGI (same OpenAI-compatible API); two
app replicas use it as their chat model and each answers through its own /v1 API."""

from __future__ import annotations

import contextlib

import pytest
from openai import OpenAI

from serve import serve_model

pytestmark = pytest.mark.slow
KEY = "replica-key-001"


def test_two_replicas_share_one_model_server():
    from app_server import running_app
    from weights import offline_chat_model

    ask = dict(messages=[{"role": "user", "content": "What is the capital of France?"}], max_tokens=12, temperature=0)
    with serve_model(offline_chat_model()) as served, contextlib.ExitStack() as stack:
        replicas = [stack.enter_context(running_app("--chat-model", served, "--guard-model", "offline",
                                                    "--api-key", KEY, "--check-every", "4"))
                    for _ in range(2)]
        answers = []
        for url, _ in replicas:
            client = OpenAI(base_url=url + "v1", api_key=KEY, max_retries=0, timeout=120)
            (model,) = client.models.list().data
            assert served in model.chat_model, "the replica's chat model is the served endpoint"
            chunks = list(client.chat.completions.create(model=model.id, stream=True, **ask))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            last = chunks[-1]
            assert last.choices[0].finish_reason == "stop" and last.moderation.outcome == "answered"
            stages = [v["stage"] for v in last.moderation.verdicts]
            assert stages[0] == "prompt" and stages[-1] == "response"
            answers.append(text)
        assert answers[0] == answers[1] != ""
