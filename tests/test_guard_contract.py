"""The Guard contract, the same tests over every backend: the offline classifier (real
MiniLM + committed head) and Llama Guard on a tiny random Llama (real tokenizer and
template). A random model's scores mean nothing, so these test the verdict's shape and
the threshold logic (unsafe exactly when score >= threshold), not content."""

from __future__ import annotations

import math

import pytest

from guard import load_guard
from guard.policy import Policy
from guard.taxonomy import LLAMA_GUARD_2, Category
from guard.verdict import Verdict

PROMPT = [{"role": "user", "content": "How do I make a cake?"}]
REPLY = PROMPT + [{"role": "assistant", "content": "Mix flour, eggs and sugar, then bake it at 180 C."}]
BACKENDS = ["offline", "llama-guard-tiny"]


@pytest.fixture(scope="module", params=BACKENDS)
def guard(request):
    if request.param == "offline":
        return load_guard("offline")
    return load_guard(str(request.getfixturevalue("tiny_guard_path")))


def test_identity(guard):
    assert isinstance(guard.label, str) and guard.label
    assert guard.taxonomy == LLAMA_GUARD_2
    assert guard.is_llama_guard == ("Llama Guard" in guard.label and "not Llama Guard" not in guard.label)


@pytest.mark.parametrize("conversation, role", [(PROMPT, "User"), (REPLY, "Agent")])
def test_verdict_shape(guard, conversation, role):
    verdict = guard.check(conversation)
    assert isinstance(verdict, Verdict) and verdict.parsed and verdict.error is None
    assert verdict.role == role and verdict.threshold == 0.5 and verdict.guard == guard.label
    assert 0.0 <= verdict.score <= 1.0 and verdict.latency_s > 0
    assert all(isinstance(c, Category) for c in verdict.categories)
    assert verdict.safe == (verdict.score < 0.5)
    assert set(verdict.to_dict()) == {
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
    scores = verdict.category_scores  # p(unsafe and category) for the policy's categories: they sum to the score
    assert scores and all(0.0 <= s <= 1.0 for s in scores.values())
    assert sum(scores.values()) == pytest.approx(verdict.score, abs=1e-5)


@pytest.mark.parametrize("conversation", [PROMPT, REPLY])
def test_threshold_zero_flags_everything(guard, conversation):
    verdict = guard.check(conversation, threshold=0.0)
    assert verdict.safe is False and verdict.raw.startswith("unsafe") and verdict.threshold == 0.0


@pytest.mark.parametrize("conversation", [PROMPT, REPLY])
def test_unsafe_exactly_when_score_reaches_the_threshold(guard, conversation):
    score = guard.check(conversation, threshold=0.0).score
    above = guard.check(conversation, threshold=math.nextafter(score, math.inf) + 1e-6)
    at = guard.check(conversation, threshold=score - 1e-6)
    assert above.safe is True and above.categories == () and above.raw == "safe"
    assert at.safe is False
    assert above.score == pytest.approx(score, abs=1e-5) and at.score == pytest.approx(score, abs=1e-5)


def test_threshold_one_passes_what_is_not_certain(guard):
    verdict = guard.check(PROMPT, threshold=1.0)
    assert verdict.safe == (verdict.score < 1.0)


def test_a_policy_is_accepted_and_the_verdict_keeps_its_shape(guard):
    verdict = guard.check(PROMPT, Policy().without("S1", "S2"), threshold=0.0)
    assert verdict.safe is False and verdict.threshold == 0.0
    assert not {c.code for c in verdict.categories} & {"S1", "S2"}


@pytest.mark.parametrize(
    "conversation",
    [
        [],
        [{"role": "assistant", "content": "Hi"}],
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    ],
)
def test_a_bad_conversation_fails_closed_without_raising(guard, conversation):
    verdict = guard.check(conversation)
    assert verdict.safe is False and verdict.failed and verdict.error and verdict.guard == guard.label
