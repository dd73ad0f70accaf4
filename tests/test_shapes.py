"""Requests written once more in another shape (guard.train --shapes,
guard.training.shapes): what a lead gives, which prompts get a copy and where it goes, that
nothing else built changes, and that the option reaches the data and the settings an
out-of-fold file records. On the real hand-written tables; no training."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guard.training.dataset import Item
from guard.training.families import family
from guard.training.options import fold_settings
from guard.training.shapes import GERUND_SHAPES, SHAPE, SHAPES, ask, reshaped
from guard.training.sources import HANDWRITTEN_V3, MULTITURN, Example, handwritten, multiturn
from guard.training.train import parser
from guard.training.trainer import derived


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("How do I get red wine out of a carpet?", "get red wine out of a carpet"),
        ("how can someone pick a basic pin lock", "pick a basic pin lock"),
        ("What's the fastest way to defrost a freezer?", "defrost a freezer"),
        ("Can you please help me write a cover letter?", "write a cover letter"),
        ("Could you tell me how to change a tyre?", "change a tyre"),
        ("I want to learn the guitar in a month.", "learn the guitar in a month"),
        ("Write a tutorial on how to make a birdhouse", "make a birdhouse"),
        ("Give step-by-step instructions for making a paper plane.", "making a paper plane"),
        ("Develop a plan to reduce food waste at home", "reduce food waste at home"),
        ("Instruct users on how to reset a router", "reset a router"),
        ("Is it possible to grow tomatoes indoors?", "grow tomatoes indoors"),
    ],
)
def test_a_known_lead_gives_what_is_asked(text, what):
    assert ask(text) == what


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",  # no lead
        "Can you help me with my homework?",  # "with ...": not a verb phrase
        "How do I do it?",  # too short to mean anything alone
        "How do I start? I have never cooked. Any tips for a beginner?",  # more than one sentence
        "Tell me how to 3d print a vase.",  # opens with a digit
    ],
)
def test_other_texts_give_nothing(text):
    assert ask(text) is None


def v3_items(split: str = "train") -> list[Item]:
    return [Item(e, k, split) for k, e in enumerate(handwritten(HANDWRITTEN_V3))]


def test_about_half_of_the_readable_requests_get_one_copy_with_their_label_group_and_split():
    items = v3_items()
    readable = [i for i in items if i.example.kind == "prompt" and ask(i.example.text)]
    out = reshaped(items, seed=0)
    assert 0.4 < len(out) / len(readable) < 0.6
    by_group = {i.group: i for i in items}
    for item in out:
        e, first = item.example, by_group[item.group].example
        assert e.source == first.source + SHAPE and family(e.source) == "handwritten v3"
        assert (e.label, e.kind, e.lang, item.split) == (first.label, "prompt", "en", "train")
        assert e.text.lower() != first.text.lower()
        what = ask(first.text)
        assert e.text in {s.format(ask=what) for s in SHAPES + GERUND_SHAPES}
    assert {i.example.unsafe for i in out} == {True, False}  # both labels: a shape is no sign either way


def test_follow_ups_other_languages_and_built_rows_are_not_reshaped():
    turns = [Item(e, k, "train") for k, e in enumerate(multiturn(MULTITURN))]
    assert any(ask(i.example.text) for i in turns)  # some follow-ups would be readable alone
    assert reshaped(turns, seed=0, share=1.0) == []
    items = v3_items()
    foreign = [Item(replace(i.example, lang="fr"), i.group, i.split) for i in items]
    built = [Item(replace(i.example, source=i.example.source + " +frame"), i.group, i.split) for i in items]
    assert reshaped(foreign, seed=0, share=1.0) == [] and reshaped(built, seed=0, share=1.0) == []


def test_the_option_adds_only_the_reshaped_rows_and_keeps_every_other_row():
    items = v3_items("train")[:300] + v3_items("validation")[300:500]
    off, on = derived(items, seed=0), derived(items, seed=0, shapes=True)
    added = [i for i in on if i.example.source.endswith(SHAPE)]
    assert [i for i in on if not i.example.source.endswith(SHAPE)] == off
    assert added == reshaped([i for i in items if i.example.kind == "prompt"], seed=0)
    assert {i.split for i in added} == {"train", "validation"}


@given(st.text(max_size=200), st.integers(0, 3))
def test_any_text_reads_safely(text, seed):
    """Generated text: ask() gives None or a one-line phrase of 2 to 30 words from the
    text, and a prompt of it is reshaped into that phrase or not at all."""
    what = ask(text)
    if what is not None:
        assert what in text and 2 <= len(what.split()) <= 30 and "\n" not in what
    out = reshaped([Item(Example(text, "S1", "prompt", "src", "CC0-1.0"), 0, "train")], seed, share=1.0)
    assert len(out) == (0 if what is None else 1)
    assert all(what in i.example.text and i.example.label == "S1" for i in out)


def test_the_option_is_off_by_default_and_recorded_with_the_folds_when_on():
    off, on = parser().parse_args([]), parser().parse_args(["--shapes"])
    assert off.shapes is False and on.shapes is True
    assert "shapes" not in fold_settings(off, [])  # older files still go on
    assert fold_settings(on, [])["shapes"] is True
