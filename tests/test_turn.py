"""The moderated turn's control flow, driven with fakes that record what they were asked.

The fakes stand in only for our own control flow (a guard that flags a word, errors,
hangs, or answers garbage; a chat model that errors). Real models are exercised in the
guard, chat and app tests."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest
from thread_watch import still_alive

from chat import ChatError, ContextTooLong
from chat.backend import ChatBackend
from guard.base import Guard
from guard.taxonomy import LLAMA_GUARD_2
from guard.verdict import Verdict, failed_verdict
from moderation.judge import GuardPool
from moderation.turn import (
    ANSWERED,
    ERROR,
    FIRST,
    HOLD,
    PARALLEL,
    REFUSED,
    RETRACTED,
    STREAM_FIRST,
    TurnSettings,
    clean_message,
    history_messages,
    run_turn,
)


class FakeGuard(Guard):
    """Flags any judged message containing `bad`; records every conversation it saw."""

    label, is_llama_guard, taxonomy = "fake guard", False, LLAMA_GUARD_2

    def __init__(self, bad="bomb", mode="ok", delay=0.0):
        self.bad, self.mode, self.delay, self.seen, self.threads = bad, mode, delay, [], []

    def check(self, conversation, policy=None, threshold=0.5):
        self.seen.append([dict(m) for m in conversation])
        self.threads.append(threading.current_thread())
        role = "User" if len(conversation) % 2 else "Agent"
        time.sleep(self.delay)
        if self.mode == "raise":
            raise RuntimeError("guard exploded")
        if self.mode == "hang":
            time.sleep(5)
        if self.mode == "garbage":
            return Verdict(safe=False, raw="¯\\_(ツ)_/¯", parsed=False, role=role)
        if self.mode == "failed":
            return failed_verdict("connection refused", role=role)
        unsafe = self.bad in conversation[-1]["content"]
        return Verdict(
            safe=not unsafe,
            categories=(LLAMA_GUARD_2[7],) if unsafe else (),
            score=0.9 if unsafe else 0.1,
            raw="unsafe\nS8" if unsafe else "safe",
            role=role,
            threshold=threshold,
        )


@dataclass
class Fitted:
    messages: list
    dropped: int


class FakeChat(ChatBackend):
    """Streams the given chunks; records calls; can fail, or notice a stop."""

    label = "fake chat"

    def __init__(self, chunks, fail_after=None, too_long=False):
        self.chunks, self.fail_after, self.too_long = chunks, fail_after, too_long
        self.calls, self.produced = [], 0

    def fit(self, messages, settings):
        if self.too_long:
            raise ContextTooLong("Your message is 9,000 tokens; the model reads at most 8,192.")
        return Fitted(list(messages), 0)

    def stream(self, messages, settings, stop=None):
        self.calls.append(messages)
        for i, chunk in enumerate(self.chunks):
            if stop is not None and stop.is_set():
                return
            if self.fail_after is not None and i == self.fail_after:
                raise ChatError("endpoint answered 500")
            self.produced += 1
            yield chunk


def run(guard, chat, text="hello", records=(), stop=None, **kw):
    states = list(run_turn(guard, chat, records, text, TurnSettings(**kw), stop))
    assert all(s.outcome is None for s in states[:-1]) and states[-1].done
    return states


def test_safe_turn_streams_and_checks_both_sides():
    guard, chat = FakeGuard(), FakeChat(["Bread ", "needs ", "flour."])
    states = run(guard, chat, "How do I bake bread?", check_every=0)
    final = states[-1]
    assert final.outcome == ANSWERED and final.shown == "Bread needs flour."
    assert [c.stage for c in final.checks] == ["prompt", "response"]
    assert [c.verdict.role for c in final.checks] == ["User", "Agent"]
    assert guard.seen[-1] == [
        {"role": "user", "content": "How do I bake bread?"},
        {"role": "assistant", "content": "Bread needs flour."},
    ]
    shown = [s.shown for s in states if s.shown]
    assert shown[:3] == ["Bread ", "Bread needs ", "Bread needs flour."]


def refused_without_a_word(states, chat, prompt_check):
    """Nothing was shown; "first" never called the chat model, "parallel" started and stopped it."""
    final = states[-1]
    assert final.outcome == REFUSED and all(s.shown == "" for s in states) and final.reply == ""
    assert [c.stage for c in final.checks] == ["prompt"]
    if prompt_check == FIRST:
        assert chat.calls == [] and not final.chat_started and not final.chat_stopped
    else:
        assert len(chat.calls) == 1 and final.chat_started and final.chat_stopped
    return final


@pytest.mark.parametrize("prompt_check", [FIRST, PARALLEL])
def test_unsafe_prompt_shows_nothing(prompt_check):
    guard, chat = FakeGuard(delay=0.05), FakeChat(["never"] * 50)
    final = refused_without_a_word(
        run(guard, chat, "how do I build a bomb", prompt_check=prompt_check), chat, prompt_check
    )
    assert final.checks[0].verdict.categories[0].name == "Indiscriminate Weapons"
    assert chat.produced < 50  # parallel: stopped, not run to the end


def test_unsafe_prompt_never_reaches_the_chat_model_when_checked_first():
    chat = FakeChat(["never"])
    refused_without_a_word(run(FakeGuard(), chat, "how do I build a bomb", prompt_check=FIRST), chat, FIRST)


@pytest.mark.parametrize("prompt_check", [FIRST, PARALLEL])
@pytest.mark.parametrize("mode", ["raise", "garbage", "failed"])
def test_guard_failure_blocks_the_turn(mode, prompt_check):
    chat = FakeChat(["never"])
    final = refused_without_a_word(run(FakeGuard(mode=mode), chat, prompt_check=prompt_check), chat, prompt_check)
    assert "could not judge" in final.notice


@pytest.mark.parametrize("prompt_check", [FIRST, PARALLEL])
def test_guard_timeout_blocks_the_turn(prompt_check):
    chat = FakeChat(["never"])
    final = refused_without_a_word(
        run(FakeGuard(mode="hang"), chat, guard_timeout_s=0.2, prompt_check=prompt_check), chat, prompt_check
    )
    assert "timed out" in final.notice


def test_parallel_check_safe_prompt_streams_after_the_verdict():
    guard, chat = FakeGuard(delay=0.1), FakeChat(["Bread ", "needs ", "flour."])
    states = run(guard, chat, "How do I bake bread?", check_every=0, prompt_check=PARALLEL)
    final = states[-1]
    assert final.outcome == ANSWERED and final.shown == "Bread needs flour." and final.chat_started
    assert not final.chat_stopped and [c.stage for c in final.checks] == ["prompt", "response"]
    first_shown = next(i for i, s in enumerate(states) if s.shown)
    assert states[first_shown].checks[0].stage == "prompt"  # no text before the prompt verdict


def test_parallel_check_with_a_chat_error_still_reports_the_flagged_prompt():
    chat = FakeChat(["a", "b"], fail_after=0)
    final = run(FakeGuard(delay=0.05), chat, "a bomb please", prompt_check=PARALLEL)[-1]
    assert final.outcome == REFUSED and final.chat_started and final.chat_stopped


def test_stream_first_retracts_when_a_partial_check_flags():
    chunks = ["Sure. ", "Take ", "a ", "bomb ", "and ", "then ", "more ", "text ", "here ", "end"]
    guard = FakeGuard()
    # the check runs beside the stream; a slow consumer lets it finish in time
    chat = FakeChat(chunks)
    states = []
    for s in run_turn(guard, chat, (), "hi", TurnSettings(check_every=1, stream_policy=STREAM_FIRST)):
        states.append(s)
        time.sleep(0.02)
    final = states[-1]
    assert final.outcome == RETRACTED and final.shown == ""
    assert any("bomb" in s.shown for s in states)  # stream first: it was visible...
    assert chat.produced < len(chunks)  # ...and generation stopped early
    assert final.checks[-1].stage == "partial" and not final.checks[-1].verdict.safe


class PassRecordingGuard(FakeGuard):
    """FakeGuard that records each reply text it passed, once its verdict is given."""

    def __init__(self):
        super().__init__()
        self.passed: list[str] = []

    def check(self, conversation, policy=None, threshold=0.5):
        verdict = super().check(conversation, policy, threshold)
        if verdict.safe and conversation[-1]["role"] == "assistant":
            self.passed.append(conversation[-1]["content"])
        return verdict


def test_hold_never_shows_unchecked_text():
    chunks = ["Fine ", "words ", "then ", "a ", "bomb ", "recipe ", "and ", "more"]
    guard, chat = PassRecordingGuard(), FakeChat(chunks)
    shown = []
    for state in run_turn(guard, chat, [], "hi", TurnSettings(check_every=2, stream_policy=HOLD)):
        # at every update, what is shown is covered by a reply text the guard has already passed
        assert not state.shown or any(text.startswith(state.shown.rstrip()) for text in guard.passed), (
            state.shown,
            guard.passed,
        )
        shown.append(state.shown)
    assert state.outcome == RETRACTED and "withheld" in state.notice
    assert "Fine words then a " in shown and not any("bomb" in s for s in shown)  # it did show the checked text


def test_hold_shows_everything_once_the_final_check_passes():
    chunks = ["one ", "two ", "three ", "four ", "five"]
    final = run(FakeGuard(), FakeChat(chunks), check_every=2, stream_policy=HOLD)[-1]
    assert final.outcome == ANSWERED and final.shown == "one two three four five"


def test_unsafe_final_reply_is_retracted():
    final = run(FakeGuard(), FakeChat(["a ", "bomb"]), check_every=0)[-1]
    assert final.outcome == RETRACTED and final.shown == "" and final.reply == "a bomb"


def test_chat_error_ends_turn_and_conversation_stays_usable():
    guard = FakeGuard()
    first = run(guard, FakeChat(["partial ", "text"], fail_after=1))[-1]
    assert first.outcome == ERROR and "endpoint answered 500" in first.notice and first.shown == ""
    chat = FakeChat(["ok"])
    second = run(guard, chat, "again", records=[first])[-1]
    assert second.outcome == ANSWERED
    assert chat.calls[0] == [{"role": "user", "content": "again"}]  # the failed turn is not history


def test_too_long_message_is_a_clear_error_without_guard_or_chat():
    guard, chat = FakeGuard(), FakeChat(["x"], too_long=True)
    final = run(guard, chat, "x " * 10)[-1]
    assert final.outcome == ERROR and "8,192" in final.notice and guard.seen == [] and chat.calls == []


def test_stop_ends_the_stream_and_judges_what_was_shown():
    stop = threading.Event()
    chunks = [f"w{i} " for i in range(50)]
    chat, states = FakeChat(chunks), []
    for s in run_turn(FakeGuard(), chat, (), "hi", TurnSettings(check_every=0), stop):
        states.append(s)
        if len(s.reply.split()) == 3:
            stop.set()
    final = states[-1]
    assert final.stopped and final.outcome == ANSWERED and chat.produced <= 4
    assert final.checks[-1].stage == "response" and final.shown == final.reply


def test_history_and_system_prompt_reach_the_chat_model_but_not_refusals():
    guard = FakeGuard()
    answered = run(guard, FakeChat(["Hi!"]), "hello")[-1]
    refused = run(guard, FakeChat(["x"]), "bomb please")[-1]
    chat = FakeChat(["ok"])
    run(guard, chat, "next", records=[answered, refused], system_prompt="Be brief.")
    assert chat.calls[0] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "next"},
    ]
    # the prompt is judged in context, the system prompt read with the message it governs
    assert guard.seen[-2] == chat.calls[0][1:3] + [{"role": "user", "content": "Be brief.\n\nnext"}]
    assert history_messages([answered, refused]) == chat.calls[0][1:3]


def test_clean_message_removes_control_characters_and_surrogates():
    assert clean_message("  a\x00b\x1b[31mc\n\td\ud800  ") == "ab[31mc\n\td\ufffd"
    assert clean_message("<script>alert(1)</script>") == "<script>alert(1)</script>"


# ---- the pool the checks run on ----------------------------------------------------


def test_a_turn_runs_its_checks_on_the_pool_it_is_given_and_leaves_it_open():
    pool, guard = GuardPool(1, name="given-pool"), FakeGuard()
    final = list(
        run_turn(guard, FakeChat(["Bread ", "needs ", "flour."]), (), "bread?", TurnSettings(check_every=1), pool=pool)
    )[-1]
    assert final.outcome == ANSWERED and len(guard.threads) >= 3
    assert {t.name.rsplit("_", 1)[0] for t in guard.threads} == {"given-pool"}
    assert pool.submit(lambda: "open").result(5) == "open"  # the turn does not close its caller's pool
    pool.close()
    assert still_alive(guard.threads) == []


def test_a_turn_without_a_pool_leaves_no_check_thread_behind():
    guard = FakeGuard()
    final = run(guard, FakeChat(["Bread ", "needs ", "flour."]), "bread?", check_every=1)[-1]
    assert final.outcome == ANSWERED and guard.threads
    assert still_alive(guard.threads) == []  # the turn's own pool was shut down with it


def test_the_pool_runs_two_checks_per_place_of_concurrency_and_queues_the_rest():
    pool = GuardPool(3, name="sized-pool")
    assert pool.size == 6
    running, release = threading.Barrier(7, timeout=10), threading.Event()

    def check():
        running.wait()  # all six at once, or this times out
        release.wait(10)

    held = [pool.submit(check) for _ in range(6)]
    running.wait()
    queued = pool.submit(lambda: "ran")
    assert not queued.done()  # every thread is busy until released: the seventh waits
    release.set()
    assert queued.result(10) == "ran" and all(f.result(10) is None for f in held)
    pool.close()
