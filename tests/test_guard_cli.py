"""`python -m guard` as a user runs it: real subprocesses, the tiny guard model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CAKE = [{"role": "user", "content": "How do I make a cake?"}]


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "guard", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def tokenizer_only_path(tiny_guard_path, tmp_path_factory) -> Path:
    """The tiny guard's folder without its weights: printing prompts must not need them."""
    folder = tmp_path_factory.mktemp("guard-tokenizer-only")
    for item in tiny_guard_path.iterdir():
        if not item.name.endswith(".safetensors"):
            shutil.copy(item, folder / item.name)
    return folder


def test_print_prompt_and_ids_read_the_tokenizer_only(tokenizer_only_path, llama3_tokenizer):
    out = run_cli("--model", tokenizer_only_path, "--print-prompt", "How do I make a cake?")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("<|begin_of_text|>[INST] Task:") and out.stdout.endswith("[/INST]")
    assert "User: How do I make a cake?\n\n<END CONVERSATION>" in out.stdout
    ids = run_cli("--model", tokenizer_only_path, "--print-ids", "How do I make a cake?")
    assert (
        json.loads(ids.stdout)
        == [128000] + llama3_tokenizer(out.stdout[len("<|begin_of_text|>") :], add_special_tokens=False).input_ids
    )
    guard3 = run_cli(
        "--model", tokenizer_only_path, "--version", "llama-guard-3", "--disable", "S1", "--print-prompt", "hi"
    )
    assert guard3.stdout.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nTask:")
    assert "S1: Non-Violent Crimes.\n" in guard3.stdout
    judged = run_cli("--model", tokenizer_only_path, "hi")  # judging does need the weights
    assert judged.returncode == 2 and "error:" in judged.stderr and "Traceback" not in judged.stderr


def test_cli_verdicts_for_text_conversation_and_jsonl(tiny_guard_path, tmp_path):
    conv = tmp_path / "chat.json"
    conv.write_text(json.dumps(CAKE + [{"role": "assistant", "content": "Mix."}]))
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(
        '{"text": "hello"}\n\n{"conversation": [{"role": "user", "content": "hi"}]}\nnot json\n'
        '{"conversation": [{"role": "assistant", "content": "x"}]}\n{"txt": 1}\n'
    )
    one = run_cli("--model", tiny_guard_path, "--threshold", "1.0", "hello")
    verdict = json.loads(one.stdout)
    assert one.returncode == 0 and verdict["safe"] is True and 0 <= verdict["score"] <= 1
    assert verdict["categories"] == [] and verdict["latency_ms"] > 0
    agent = json.loads(run_cli("--model", tiny_guard_path, "--threshold", "0", "--conversation", conv).stdout)
    assert agent["role"] == "Agent" and agent["safe"] is False and agent["raw"].startswith("unsafe")
    assert all(set(c) == {"code", "name"} for c in agent["categories"])
    many = run_cli("--model", tiny_guard_path, "--threshold", "1.0", "--file", jsonl)
    rows = [json.loads(line) for line in many.stdout.splitlines()]
    assert [r["safe"] for r in rows] == [True, True, False, False, False]
    assert [r["parsed"] for r in rows] == [True, True, False, False, False]
    assert rows[2]["error"].startswith("line 4: not valid JSON") and "alternating" in rows[3]["error"]
    assert rows[4]["error"].startswith("line 6: expected")
    assert "judging" in many.stderr and many.returncode == 1


def test_cli_help_and_errors(tmp_path):
    help_text = run_cli("--help").stdout
    for flag in (
        "--conversation",
        "--file",
        "--threshold",
        "--print-prompt",
        "--print-ids",
        "HF_TOKEN",
        "--version",
        "--disable",
        "--custom",
        "--load-in-4bit",
    ):
        assert flag in help_text
    bad = tmp_path / "bad.json"
    bad.write_text('{"role": ')
    for args, message in [
        (("--model", "/nonexistent/folder", "hi"), "not found"),
        (("--conversation", tmp_path / "missing.json"), "cannot read"),
        (("--conversation", bad), "not valid JSON"),
        (("--model", "http://127.0.0.1:9/v1", "hi"), "GUARD_MODEL_NAME"),
    ]:
        out = run_cli(*args)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr
    usage = run_cli("--model", "offline")
    assert usage.returncode == 2 and "exactly one of" in usage.stderr
