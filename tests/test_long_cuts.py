"""Pieces of harmless long prompts cut at any word (guard.train --long-cuts,
guard.training.dataset.long_cuts): which long prompts give pieces, what a piece is, where
it goes, that nothing else built changes, and that the option reaches the data and the
settings an out-of-fold file records. On the real hand-written table; no training."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from guard.training.dataset import Item, long_cuts, long_prompts
from guard.training.options import fold_settings
from guard.training.sources import HANDWRITTEN, Example, handwritten
from guard.training.train import parser
from guard.training.trainer import derived

SPLITS = ("train", "validation", "test")


def table_items() -> list[Item]:
    return [Item(e, k, SPLITS[k % 3]) for k, e in enumerate(handwritten(HANDWRITTEN))]


def parent_of(cut: Item, longs: list[Item]) -> Item:
    """The long prompt a piece was cut from: the one whose words hold the piece's in a row."""
    found = [
        i
        for i in longs
        if i.example.source + " +cut" == cut.example.source and f" {cut.example.text} " in f" {i.example.text} "
    ]
    assert found, cut
    return found[0]


def test_pieces_are_runs_of_words_of_harmless_long_prompts_in_their_group_and_split():
    longs = long_prompts(table_items(), seed=0)
    cuts = long_cuts(longs, seed=0)
    assert cuts and {i.split for i in cuts} == set(SPLITS)
    for cut in cuts:
        parent = parent_of(cut, longs)
        assert not parent.example.unsafe and len(parent.example.text.split()) > 110
        assert (cut.group, cut.split) == (parent.group, parent.split)
        assert cut.example.label == "safe" and cut.example.kind == "prompt"
        assert 40 <= len(cut.example.text.split()) <= 110
        assert not parent.example.text.startswith(cut.example.text)  # never the window training already reads
    safe_long = [i for i in longs if not i.example.unsafe and len(i.example.text.split()) > 110]
    assert len(cuts) == sum(len(i.example.text.split()) // 80 for i in safe_long)


def test_no_piece_of_an_unsafe_or_short_long_prompt():
    longs = long_prompts(table_items(), seed=0)
    kept = [i for i in longs if i.example.unsafe or len(i.example.text.split()) <= 110]
    assert kept and long_cuts(kept, seed=0) == []


@settings(max_examples=50, deadline=None)
@given(
    length=st.integers(1, 400),
    label=st.sampled_from(["safe", "S1", "S9"]),
    source=st.sampled_from(["handwritten (handwritten) +long", "handwritten (handwritten)", "x +frame"]),
    seed=st.integers(0, 10),
)
def test_any_text_gives_pieces_only_when_long_harmless_and_built_long(length, label, source, seed):
    text = " ".join(f"w{k}" for k in range(length))
    item = Item(Example(text, label, "prompt", source, "CC0-1.0"), 7, "validation")
    cuts = long_cuts([item], seed)
    wanted = label == "safe" and source.endswith(" +long") and length > 110
    assert len(cuts) == (length // 80 if wanted else 0)
    for cut in cuts:
        numbers = [int(w[1:]) for w in cut.example.text.split()]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) and numbers[0] >= 1
        assert numbers[-1] < length and (cut.group, cut.split) == (7, "validation")


def test_the_option_adds_only_the_pieces_and_keeps_every_other_row():
    items = table_items()
    off, on = derived(items, seed=0), derived(items, seed=0, cuts=True)
    added = [i for i in on if i.example.source.endswith(" +cut")]
    assert [i for i in on if not i.example.source.endswith(" +cut")] == off
    assert added == long_cuts(long_prompts(items, seed=0), seed=0)


def test_the_option_is_off_by_default_and_recorded_with_the_folds_when_on():
    off, on = parser().parse_args([]), parser().parse_args(["--long-cuts"])
    assert off.long_cuts is False and on.long_cuts is True
    assert "long_cuts" not in fold_settings(off, [])  # older files still go on
    assert fold_settings(on, [])["long_cuts"] is True
