"""Reading Llama Guard's answers (a table of what models really emit, garbage included) and
the verdict's fail-closed control flow, with fake backends (the behaviour lives in our code)."""

from __future__ import annotations

import math

import pytest

from guard.llama_guard import LlamaGuard
from guard.local import Assessment
from guard.parse import parse_verdict
from guard.policy import Policy
from guard.taxonomy import LLAMA_GUARD_3

CAKE = [{"role": "user", "content": "How do I make a cake?"}]

PARSE_TABLE = [
    ("safe", True, [], True),
    ("safe\n", True, [], True),
    (" Safe ", True, [], True),
    ("safe.", True, [], True),
    ("\n\nsafe", True, [], True),  # Guard 3 through its own template writes the header's newlines
    ("safe<|eot_id|>", True, [], True),  # a server that leaves special tokens in the text
    ("unsafe\nS1", False, ["S1"], True),
    ("unsafe \nS1, S2\n", False, ["S1", "S2"], True),
    ("unsafe\nS10,S11", False, ["S10", "S11"], True),
    ("unsafe\nS1\nS2", False, ["S1", "S2"], True),
    ("unsafe\nS3,S3", False, ["S3"], True),
    ("unsafe\nS1<|eot_id|>", False, ["S1"], True),
    ("Unsafe.\ns3", False, ["S3"], True),
    ("unsafe", False, [], True),
    ("unsafe\n", False, [], True),
    ("unsafe\nS99", False, ["S99"], True),
    ("unsafe S8", False, ["S8"], True),
    ("unsafe, S4", False, ["S4"], True),
    ("unsafe\nhate speech", False, [], True),
    ("", False, [], False),
    ("   \n", False, [], False),
    ("I'm sorry, I can't help with that.", False, [], False),
    ("The message is safe", False, [], False),
    ("not safe", False, [], False),
    ("safe-ish", False, [], False),
    ("unsafely S1", False, [], False),
    ("S1", False, [], False),
    ("¯\\_(ツ)_/¯", False, [], False),
    (None, False, [], False),
    (b"safe", False, [], False),
]


@pytest.mark.parametrize("raw, safe, codes, parsed", PARSE_TABLE)
def test_parse_table(raw, safe, codes, parsed):
    answer = parse_verdict(raw)
    assert (answer.safe, [c.code for c in answer.categories], answer.parsed) == (safe, codes, parsed)


def test_parse_maps_codes_through_the_policy_and_keeps_unknown_ones():
    policy = Policy().without("S1").with_custom("Spoilers", "Reveals plot twists.")
    answer = parse_verdict("unsafe\nS1,S11,S12", policy)
    assert [(c.code, c.name) for c in answer.categories] == [
        ("S2", "Non-Violent Crimes"),
        ("C1", "Spoilers"),
        ("S12", "Unknown category"),
    ]


def test_a_code_means_what_the_guards_version_says():
    assert parse_verdict("unsafe\nS5").categories[0].name == "Specialized Advice"
    assert parse_verdict("unsafe\nS5", Policy(taxonomy=LLAMA_GUARD_3)).categories[0].name == "Defamation"


class CharBackend:
    """Counts one token per character, in an 8,192-token window (guard.window's interface)."""

    remote = False
    context_window = 8192

    def count(self, prompt):
        return len(prompt.text)

    def token_ends(self, text):
        return list(range(1, len(text) + 1))


class Raising(CharBackend):
    def assess(self, prompt, threshold):
        raise RuntimeError("CUDA out of memory")


class Answering(CharBackend):
    """Replies with a fixed assessment and records the prompts it was given."""

    def __init__(self, raw, score=None, note=""):
        self.reply, self.prompts = Assessment(score, raw, note), []

    def assess(self, prompt, threshold):
        self.prompts.append(prompt)
        return self.reply


def test_a_backend_that_raises_gives_an_unsafe_unparsed_verdict():
    verdict = LlamaGuard(Raising(), label="LG").check(CAKE, threshold=0.3)
    assert (verdict.safe, verdict.parsed, verdict.score) == (False, False, None)
    assert "CUDA out of memory" in verdict.error and verdict.guard == "LG" and verdict.threshold == 0.3


def test_an_unreadable_answer_fails_closed_and_keeps_the_raw_text():
    verdict = LlamaGuard(Answering("Sure! Here is a cake recipe", score=0.01)).check(CAKE)
    assert (verdict.safe, verdict.parsed, verdict.raw) == (False, False, "Sure! Here is a cake recipe")


@pytest.mark.parametrize("score", [math.nan, math.inf])
def test_a_score_that_is_not_a_number_fails_closed(score):
    verdict = LlamaGuard(Answering("safe", score=score)).check(CAKE)
    assert (verdict.safe, verdict.parsed, verdict.score) == (False, False, None) and "not a number" in verdict.error


@pytest.mark.parametrize("bad", [[{"role": "system", "content": "x"}], [], None, "hello"])
def test_a_bad_conversation_fails_closed_with_the_reason(bad):
    verdict = LlamaGuard(Answering("safe")).check(bad)
    assert (verdict.safe, verdict.parsed) == (False, False) and verdict.error.startswith("ConversationError: ")


def test_the_score_decides_when_there_is_one():
    assert LlamaGuard(Answering("unsafe\nS1", score=0.7)).check(CAKE, threshold=0.7).safe is False
    safe = LlamaGuard(Answering("unsafe\nS1", score=0.69)).check(CAKE, threshold=0.7)
    assert safe.safe is True and safe.categories == () and safe.score == 0.69 and safe.threshold == 0.7


def test_text_alone_decides_without_a_score_and_the_note_says_so():
    verdict = LlamaGuard(Answering("unsafe\nS9", note="no log-probabilities")).check(CAKE)
    assert verdict.safe is False and verdict.score is None and [c.name for c in verdict.categories] == ["Hate"]
    assert verdict.note == "no log-probabilities"


def test_the_policy_reaches_the_prompt_and_maps_the_answer_back():
    backend = Answering("unsafe\nS1")
    verdict = LlamaGuard(backend).check(CAKE, Policy().without("S1", "S2"))
    assert "S1: Sex Crimes. " in backend.prompts[0].text
    assert [(c.code, c.name) for c in verdict.categories] == [("S3", "Sex Crimes")]
