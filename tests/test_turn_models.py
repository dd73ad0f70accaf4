"""The moderated turn with real local models: a tiny random Llama 3 chat model (real
tokenizer and template) and a tiny random Llama Guard, through `run_turn`."""

from __future__ import annotations

import time

import pytest

from chat import GenerationSettings, load_chat
from guard import load_guard
from guard.base import Guard
from guard.verdict import Verdict
from moderation.turn import ANSWERED, PARALLEL, REFUSED, TurnSettings, run_turn

LONG = GenerationSettings(temperature=0.0, max_new_tokens=3000)


class SlowFlaggingGuard(Guard):
    """Flags every prompt after `delay` seconds (our control flow: when the verdict lands)."""

    label, is_llama_guard, taxonomy = "slow guard", False, ()

    def __init__(self, delay: float):
        self.delay = delay

    def check(self, conversation, policy=None, threshold=0.5):
        time.sleep(self.delay)
        return Verdict(safe=False, score=0.99, raw="unsafe\nS1", role="User", threshold=threshold)


@pytest.fixture(scope="module")
def tiny_chat(tiny_chat_path):
    return load_chat(str(tiny_chat_path))


@pytest.fixture(scope="module")
def tiny_guard(tiny_guard_path):
    return load_guard(str(tiny_guard_path), dtype="float32")


def test_parallel_check_unsafe_prompt_shows_no_token_and_the_generation_ends(tiny_chat):
    settings = TurnSettings(prompt_check=PARALLEL, generation=LONG)
    states = list(run_turn(SlowFlaggingGuard(0.3), tiny_chat, [], "Talk.", settings))
    final = states[-1]
    assert final.outcome == REFUSED and final.chat_started and final.chat_stopped
    assert all(s.shown == "" for s in states) and final.reply == ""
    deadline = time.monotonic() + 1.0
    while tiny_chat.generating and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not tiny_chat.generating


def test_turn_checks_with_one_incremental_session_per_turn(tiny_chat, tiny_guard):
    settings = TurnSettings(
        threshold=1.0,
        check_every=4,
        prompt_check=PARALLEL,
        generation=GenerationSettings(temperature=0.0, max_new_tokens=24),
    )
    sessions = []
    make = tiny_guard.session

    def spy():
        sessions.append(make())
        return sessions[-1]

    tiny_guard.session = spy
    try:
        final = list(run_turn(tiny_guard, tiny_chat, [], "Tell me about bread.", settings))[-1]
    finally:
        del tiny_guard.session
    assert final.outcome == ANSWERED and len(sessions) == 1
    assert [c.stage for c in final.checks][0] == "prompt" and final.checks[-1].stage == "response"
    assert len(final.checks) >= 3  # partial checks ran
    assert sessions[0].backend.reused_tokens > 0  # the response check reused the last partial's cache
    conversation = [{"role": "user", "content": "Tell me about bread."}, {"role": "assistant", "content": final.shown}]
    assert final.checks[-1].verdict.score == pytest.approx(
        tiny_guard.check(conversation, threshold=1.0).score, abs=1e-4
    )
