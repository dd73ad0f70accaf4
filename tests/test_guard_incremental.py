"""Incremental checks (guard.incremental) give a full check's score, on a tiny random Llama
in float32 with the real tokenizer: many random reply splits, inside words too."""

from __future__ import annotations

import random

import pytest

from guard import load_guard
from guard.incremental import IncrementalSession, common_prefix_length
from guard.llama_guard import LlamaGuard
from guard.prompt import GUARD3, prompt_ids

USER = {"role": "user", "content": "How do I bake bread at home without a bread machine?"}
REPLY = (
    "Sure! Mix 500 g of flour, 350 ml of lukewarm water, 10 g of salt and 7 g of dried yeast. "
    "Knead the dough for ten minutes until it is smooth and elastic, then let it rise, covered, "
    "for about an hour. Shape a loaf, let it rise again, and bake at 230°C for 30–35 minutes. "
    "Tap the bottom: a hollow sound means it's done. Unbelievably, that's everything."
)


@pytest.fixture(scope="module")
def tiny_guard(tiny_guard_path):
    guard = load_guard(str(tiny_guard_path), dtype="float32")
    assert next(guard.backend.model.parameters()).dtype.is_floating_point
    return guard


def agent(text: str) -> list[dict]:
    return [USER, {"role": "assistant", "content": text}]


def full_score(guard, conversation) -> float:
    return guard.backend.assess(guard.render(conversation), 1.0, reuse_prefix=False).score


def random_cuts(rng: random.Random, n: int) -> list[int]:
    """Growing character positions in REPLY, most of them inside a word."""
    return sorted(rng.sample(range(1, len(REPLY)), n)) + [len(REPLY)]


@pytest.mark.parametrize("seed", range(6))
def test_incremental_scores_equal_full_checks_over_random_splits(tiny_guard, seed):
    rng = random.Random(seed)
    session = tiny_guard.backend.session()
    prompt_score = session.assess(tiny_guard.render([USER]), 1.0).score  # the User-side check first
    assert prompt_score == pytest.approx(full_score(tiny_guard, [USER]), abs=1e-4)
    prefix_len = len(prompt_ids(tiny_guard.backend.tokenizer, tiny_guard.render(agent("x")))[0])
    cuts = random_cuts(rng, 8)
    inside_word = [c for c in cuts[:-1] if REPLY[c - 1].isalnum() and REPLY[c].isalnum()]
    assert inside_word, cuts  # the seeds cut inside words
    for i, cut in enumerate(cuts):
        conversation = agent(REPLY[:cut])
        score = session.assess(tiny_guard.render(conversation), 1.0).score
        assert score == pytest.approx(full_score(tiny_guard, conversation), abs=1e-4), (seed, cut)
        if i:  # after the first Agent check, the previous reply's tokens come from the cache
            assert session.reused_tokens > prefix_len


def test_a_check_that_shares_less_still_equals_a_full_one(tiny_guard):
    """A shorter reply, an edited one, and the same input twice."""
    session = tiny_guard.backend.session()
    for text in (REPLY, REPLY[:40], REPLY[:40], "Something else entirely.", REPLY[:120]):
        score = session.assess(tiny_guard.render(agent(text)), 1.0).score
        assert score == pytest.approx(full_score(tiny_guard, agent(text)), abs=1e-4), text


def test_category_generation_does_not_leak_into_the_next_check(tiny_guard):
    """Threshold 0 makes every check unsafe, so each one generates its categories; every
    verdict of one session must equal a fresh, full check of the same text."""

    def fresh(text: str, threshold: float):
        return tiny_guard.backend.assess(tiny_guard.render(agent(text)), threshold, reuse_prefix=False)

    session = tiny_guard.backend.session()
    for text, threshold in (
        (REPLY[:60], 0.0),
        (REPLY[:90], 1.0),
        (REPLY[:90], 0.0),
        (REPLY[:150], 0.0),
        (REPLY[:150], 1.0),
    ):
        got, want = session.assess(tiny_guard.render(agent(text)), threshold), fresh(text, threshold)
        assert got.raw == want.raw, (text, threshold)
        assert got.score == pytest.approx(want.score, abs=1e-4)
        assert got.code_logits.keys() == want.code_logits.keys() and len(got.code_logits) == 11
        for code, logit in want.code_logits.items():  # the category step runs on a fork as well
            assert got.code_logits[code] == pytest.approx(logit, abs=1e-4), (text, threshold, code)
        assert session._cache.get_seq_length() == len(session._ids)  # neither step's tokens are in it
    assert fresh(REPLY[:60], 0.0).raw != fresh(REPLY[:150], 0.0).raw  # a stale answer would show


def test_guard3_format_and_no_policy_prefix_cache(tiny_guard):
    guard3 = LlamaGuard(tiny_guard.backend, GUARD3, "Llama Guard 3 · tiny")
    session = guard3.session()
    for cut in (33, 34, 100, len(REPLY)):
        verdict = session.check(agent(REPLY[:cut]), threshold=1.0)
        assert verdict.score == pytest.approx(full_score(guard3, agent(REPLY[:cut])), abs=1e-4)
    backend = tiny_guard.backend
    backend.reuse_prefix = False
    try:
        session = IncrementalSession(backend)
        for cut in (50, 51, 200):
            score = session.assess(tiny_guard.render(agent(REPLY[:cut])), 1.0).score
            assert score == pytest.approx(full_score(tiny_guard, agent(REPLY[:cut])), abs=1e-4)
    finally:
        backend.reuse_prefix = True


def test_guard_session_checks_like_the_guard(tiny_guard):
    turn = tiny_guard.session()
    assert turn is not tiny_guard and isinstance(turn.backend, IncrementalSession)
    assert tiny_guard.session().backend is not turn.backend  # one cache per turn
    for cut in (20, 75, len(REPLY)):
        mine, full = turn.check(agent(REPLY[:cut])), tiny_guard.check(agent(REPLY[:cut]))
        assert mine.safe == full.safe and mine.role == full.role == "Agent" and mine.guard == full.guard
        assert mine.score == pytest.approx(full.score, abs=1e-4)


def test_overlapping_checks_fall_back_to_a_plain_check(tiny_guard):
    session = tiny_guard.backend.session()
    session.assess(tiny_guard.render(agent(REPLY[:50])), 1.0)
    before = session._ids
    with session._busy:  # a check still running in another thread
        score = session.assess(tiny_guard.render(agent(REPLY[:80])), 1.0).score
    assert session._ids is before  # left alone
    assert score == pytest.approx(full_score(tiny_guard, agent(REPLY[:80])), abs=1e-4)


def test_common_prefix_length():
    assert common_prefix_length([], [1]) == 0
    assert common_prefix_length([1, 2], [1, 2]) == 2
    assert common_prefix_length([1, 2, 3], [1, 9, 3]) == 1


def test_a_sessions_category_scores_equal_a_fresh_checks(tiny_guard):
    """Through the guard: a turn's session (prompt check, then growing replies) gives the
    per-category scores of a fresh guard's check of the same conversation."""
    turn = tiny_guard.session()
    for conversation in ([USER], agent(REPLY[:50]), agent(REPLY[:120]), agent(REPLY)):
        got, want = turn.check(conversation, threshold=0.5), tiny_guard.check(conversation, threshold=0.5)
        assert got.category_scores.keys() == want.category_scores.keys() and len(got.category_scores) == 11
        for code, score in want.category_scores.items():
            assert got.category_scores[code] == pytest.approx(score, abs=1e-4), code
        assert sum(got.category_scores.values()) == pytest.approx(got.score, abs=1e-5)
