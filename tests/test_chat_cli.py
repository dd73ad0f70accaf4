"""python -m chat: streams a reply to stdout; bad input is a one-line error, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_chat(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", "chat", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_help_documents_every_kind_of_model():
    result = run_chat("--help")
    assert result.returncode == 0
    for words in (
        "--model",
        "--system",
        "--max-new-tokens",
        "--temperature",
        "MESSAGE",
        "hub id",
        "local folder",
        ".gguf",
        "'offline'",
        "http(s)://",
    ):
        assert words in result.stdout.replace("\n", " "), words


@pytest.mark.slow
def test_streams_a_reply_from_the_offline_model():
    result = run_chat(
        "--model",
        "offline",
        "--temperature",
        "0",
        "--max-new-tokens",
        "20",
        "--system",
        "You answer in one sentence.",
        "What is the capital of France?",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Paris" in result.stdout
    assert "loaded " in result.stderr and "loaded" not in result.stdout  # how long loading took, apart


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "/no/such/model", "Hi"], "error: Model folder not found: /no/such/model"),
        (["--model", "nobody/no-such-model", "Hi"], "Hugging Face Hub is unreachable"),
        (["--model", "offline", "   "], "the message is empty"),
        (["--model", "offline", "--temperature", "-1", "Hi"], "--temperature at least 0"),
    ],
)
def test_bad_input_is_a_clear_error(args, message):
    result = run_chat(*args)
    assert result.returncode != 0 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_importing_chat_and_weights_loads_no_torch():
    code = "import sys, chat, chat.remote, weights; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr[-2000:]
