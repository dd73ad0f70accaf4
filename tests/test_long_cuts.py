"""Pieces of long prompts cut at any word (guard.train --long-cuts,
guard.training.cuts.long_cuts): which long prompts give pieces, what a piece is and
holds, where it goes, that nothing else built changes, and that the option reaches the data
and the settings an out-of-fold file records. On the real hand-written table; no training."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from guard.training.cuts import long_cuts
from guard.training.dataset import Item, long_prompts
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
        if i.example.source + " +cut" == cut.example.source
        and (i.group, i.split) == (cut.group, cut.split)
        and f" {cut.example.text} " in f" {i.example.text} "
    ]
    assert found, cut
    return found[0]


def test_pieces_of_harmless_long_prompts_are_safe_runs_of_their_words():
    items = table_items()
    longs = long_prompts(items, seed=0)
    cuts = [c for c in long_cuts(longs, 0, items) if not c.example.unsafe]
    assert cuts and {i.split for i in cuts} == set(SPLITS)
    for cut in cuts:
        parent = parent_of(cut, longs)
        assert not parent.example.unsafe and len(parent.example.text.split()) > 110
        assert cut.example.kind == "prompt" and 40 <= len(cut.example.text.split()) <= 110
        assert not parent.example.text.startswith(cut.example.text)  # never the window training already reads
    safe_long = [i for i in longs if not i.example.unsafe and len(i.example.text.split()) > 110]
    assert len(cuts) == sum(len(i.example.text.split()) // 80 for i in safe_long)


def test_a_piece_of_a_long_prompt_with_a_request_holds_the_whole_request_and_its_label():
    items = table_items()
    longs = long_prompts(items, seed=0)
    cuts = [c for c in long_cuts(longs, 0, items) if c.example.unsafe]
    assert len(cuts) > len([i for i in longs if i.example.unsafe]) // 2
    for cut in cuts:
        parent = parent_of(cut, longs)
        assert cut.example.label == parent.example.label
        assert len(cut.example.text.split()) < len(parent.example.text.split())
        held = [
            r
            for r in items
            if r.example.unsafe and (r.group, r.split) == (cut.group, cut.split) and r.example.text in cut.example.text
        ]
        assert held, cut


def test_without_its_requests_a_long_prompt_with_one_inside_gives_no_piece():
    longs = [i for i in long_prompts(table_items(), seed=0) if i.example.unsafe]
    assert longs and long_cuts(longs, seed=0) == []


@settings(max_examples=60, deadline=None)
@given(
    before=st.integers(0, 300),
    after=st.integers(0, 300),
    request=st.integers(1, 130),
    label=st.sampled_from(["safe", "S1", "S9"]),
    built=st.booleans(),
    seed=st.integers(0, 10),
)
def test_any_long_prompt_gives_pieces_within_its_words(before, after, request, label, built, seed):
    words = [f"w{k}" for k in range(before + request + after)]
    inner = " ".join(words[before : before + request])
    source = "handwritten (handwritten)" + (" +long" if built else "")
    item = Item(Example(" ".join(words), label, "prompt", source, "CC0-1.0"), 7, "validation")
    asked = Item(Example(inner, label, "prompt", "handwritten (handwritten)", "CC0-1.0"), 7, "validation")
    cuts = long_cuts([item], seed, [asked])
    if not built or (label == "safe" and len(words) <= 110):
        assert cuts == []
    elif label == "safe":
        assert len(cuts) == len(words) // 80
    else:
        assert len(cuts) == (1 if max(40, request) <= min(110, len(words) - 1) else 0)
    for cut in cuts:
        numbers = [int(w[1:]) for w in cut.example.text.split()]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        assert len(numbers) < len(words) and (cut.group, cut.split, cut.example.label) == (7, "validation", label)
        if label != "safe":
            assert numbers[0] <= before and numbers[-1] >= before + request - 1  # the whole request


def test_the_option_adds_only_the_pieces_and_keeps_every_other_row():
    items = table_items()
    off, on = derived(items, seed=0), derived(items, seed=0, cuts=True)
    added = [i for i in on if i.example.source.endswith(" +cut")]
    assert [i for i in on if not i.example.source.endswith(" +cut")] == off
    prompts = [i for i in items if i.example.kind == "prompt"]
    assert added == long_cuts(long_prompts(items, seed=0), 0, prompts)


def test_the_option_is_off_by_default_and_recorded_with_the_folds_when_on():
    off, on = parser().parse_args([]), parser().parse_args(["--long-cuts"])
    assert off.long_cuts is False and on.long_cuts is True
    assert "long_cuts" not in fold_settings(off, [])  # older files still go on
    assert fold_settings(on, [])["long_cuts"] is True
