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
        replicas = [
            stack.enter_context(
                running_app("--chat-model", served, "--guard-model", "offline", "--api-key", KEY, "--check-every", "4")
            )
            for _ in range(2)
        ]
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


NO_LOCAL_MODELS = """
import importlib.abc, sys
class NoLocalModels(importlib.abc.MetaPathFinder):  # what requirements-remote.txt leaves out
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"torch", "transformers", "accelerate", "bitsandbytes", "gguf"}:
            raise ImportError(f"{name} is not installed in a remote-only deployment")
sys.meta_path.insert(0, NoLocalModels())
import app
from moderation.models import model_slots
from moderation.web.page import create_app
config = app.parse_config(["--chat-model", "http://127.0.0.1:9/v1", "--guard-model", "http://127.0.0.1:9/v1",
                           "--log-db", "none"])
create_app(model_slots(config), config)
print("built without", sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "transformers"}))
"""


def test_a_remote_only_install_builds_the_app_without_torch_or_transformers():
    """The Space / replica install (requirements-remote.txt) has no torch: app.py imports and
    builds its page with both models as endpoints."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    run = subprocess.run(
        [sys.executable, "-c", NO_LOCAL_MODELS],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"GRADIO_ANALYTICS_ENABLED": "False", "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("built without []")
