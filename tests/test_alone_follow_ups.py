"""Two-turn twins' follow-ups read alone (guard.train --alone-follow-ups,
guard.training.in_context.alone_follow_ups): which texts become safe rows without turns,
where they go, that nothing else built changes, and that the option reaches the data and
the settings an out-of-fold file records. On the real two-turn table and the real built
pairs; no training."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from guard.training.dataset import Item
from guard.training.families import family
from guard.training.in_context import ALONE, alone_follow_ups
from guard.training.options import fold_settings
from guard.training.sources import MULTITURN, Example, multiturn
from guard.training.train import parser
from guard.training.trainer import derived


def table_items(count: int, split: str = "train") -> list[Item]:
    return [Item(e, k, split) for k, e in enumerate(multiturn(MULTITURN)[:count])]


def test_each_twin_text_once_alone_safe_in_its_unsafe_rows_group_and_split():
    items = table_items(40)
    out = alone_follow_ups(items)
    assert len(out) == 20  # the table's twenty pairs, one text each
    by_text = {i.example.text: i for i in items if i.example.unsafe}
    for item in out:
        e = item.example
        assert e.label == "safe" and e.kind == "prompt" and e.context == ()
        assert e.source == "handwritten (multiturn)" + ALONE
        assert family(e.source) == "multi-turn"  # held out with its table
        assert (item.group, item.split) == (by_text[e.text].group, by_text[e.text].split)


def test_a_text_with_one_label_or_without_turns_is_not_read_alone():
    items = table_items(4)
    unsafe_only = [i for i in items if i.example.unsafe]
    assert alone_follow_ups(unsafe_only) == []
    assert alone_follow_ups([i for i in items if not i.example.unsafe]) == []
    plain = [Item(replace(i.example, context=()), i.group, i.split) for i in items]
    assert alone_follow_ups(plain) == []  # the same texts read alone are not twins


def test_twins_in_different_splits_are_not_joined():
    """A split's rows decide its own alone rows: a text unsafe in train and safe in
    validation makes none."""
    unsafe, safe = table_items(2)
    assert unsafe.example.unsafe and not safe.example.unsafe
    assert alone_follow_ups([unsafe, Item(safe.example, safe.group, "validation")]) == []


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans(), st.booleans()), max_size=12))
def test_one_alone_row_per_text_both_labels_after_turns(rows):
    """Generated rows (text, unsafe, has turns): a text gets one alone row exactly when it
    is unsafe after turns in one row and safe after turns in another."""
    items = [
        Item(
            Example(
                text, "S1" if bad else "safe", "prompt", "src", "CC0-1.0", context=("hi", "hello") if turns else ()
            ),
            k,
            "train",
        )
        for k, (text, bad, turns) in enumerate(rows)
    ]
    expected = {t for t in "abc" if {bad for text, bad, turns in rows if text == t and turns} == {True, False}}
    out = alone_follow_ups(items)
    assert sorted(i.example.text for i in out) == sorted(expected)
    assert all(not i.example.unsafe and not i.example.context for i in out)


def test_the_option_adds_only_the_alone_rows_and_keeps_every_other_row():
    items = table_items(40) + table_items(20, "validation")
    off, on = derived(items, seed=0), derived(items, seed=0, alone=True)
    added = [i for i in on if i.example.source.endswith(ALONE)]
    assert [i for i in on if not i.example.source.endswith(ALONE)] == off
    assert len(added) == 30 and {i.split for i in added} == {"train", "validation"}


def test_the_option_is_off_by_default_and_recorded_with_the_folds_when_on():
    off, on = parser().parse_args([]), parser().parse_args(["--alone-follow-ups"])
    assert off.alone_follow_ups is False and on.alone_follow_ups is True
    assert "alone_follow_ups" not in fold_settings(off, [])  # older files still go on
    assert fold_settings(on, [])["alone_follow_ups"] is True
