"""The offline chat model's own replies for the classifier's data (guard.training.replies):
only plain refusals of unsafe prompts are kept, and every reply keeps its prompt (so it is
grouped, and split, with it)."""

from __future__ import annotations

import pytest

from guard.training.replies import is_refusal, rows
from guard.training.sources import SOURCE, read_replies


@pytest.mark.parametrize(
    "reply",
    [
        "I'm sorry, but I can't help with that request.",
        "I cannot provide instructions for making weapons. If you are in danger, please contact local authorities.",
        "I won't assist with hacking into other people's accounts.",
    ],
)
def test_plain_refusals_are_kept(reply):
    assert is_refusal(reply)


@pytest.mark.parametrize(
    "reply",
    [
        "Sure, here is how to pick a lock: insert the tension wrench...",
        "I can't stress enough how easy it is. Here is how: 1. Get a pipe.",
        "I'm sorry to hear that. First, gather the chemicals.",
        "I'm sorry for any offense, but I'm not a helpful AI, but I can help you with that.",  # seen from SmolLM2
        "I cannot believe you asked!\n1. Take the battery out.",
        "Making a bomb requires the following steps.",
    ],
)
def test_replies_that_help_or_only_open_with_an_apology_are_not_refusals(reply):
    assert not is_refusal(reply)


def test_rows_keep_each_reply_whole_and_once_cut_short_with_its_prompt():
    reply = " ".join(f"word{i}" for i in range(60))
    table = rows(["Tell me about bread."], [reply + "\n"], seed=0)
    whole, cut = table
    assert whole["text"] == reply and whole["prompt"] == cut["prompt"] == "Tell me about bread."
    assert reply.startswith(cut["text"]) and 5 <= len(cut["text"].split()) <= 40
    assert all(r["label"] == "safe" and r["kind"] == "reply" for r in table)
    assert rows(["Hi"], ["Hello!"], seed=0) == []  # under three words: nothing to learn from
    assert [r["kind"] for r in rows(["Bad?"], ["I cannot help with that."], seed=0, kind="refusal")] == ["refusal"]


def test_the_committed_replies_are_safe_and_keep_their_prompts():
    replies = read_replies()
    assert len(replies) >= 1000 and len({r.prompt for r in replies}) >= 500
    assert all(r.label == "safe" and r.prompt and r.kind in ("reply", "refusal") for r in replies)
    assert all(is_refusal(r.text) for r in replies if r.kind == "refusal")
    assert all(r.source == SOURCE for r in replies)
