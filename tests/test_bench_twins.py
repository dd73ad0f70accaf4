"""bench/clear_alone.py reads the prompts after earlier turns as twins too: a pair is an
unsafe and a safe row of the same text and table, told apart when only the unsafe one is
flagged. Hand-made rows and scores (our own arithmetic, no model)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

BENCH = Path(__file__).resolve().parent.parent / "bench"
SPEC = importlib.util.spec_from_file_location("clear_alone_bench", BENCH / "clear_alone.py")
clear_alone_bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(clear_alone_bench)
twin_rates = clear_alone_bench.twin_rates


def row(text: str, label: str, source: str = "handwritten (multiturn)") -> dict:
    return {"text": text, "label": label, "source": source}


def test_pairs_told_apart_both_flagged_and_missed():
    rows = [row("a", "S1"), row("a", "safe"), row("b", "S2"), row("b", "safe"), row("c", "S1"), row("c", "safe")]
    scores = np.array([0.9, 0.1, 0.9, 0.8, 0.2, 0.1])  # a told apart, b both flagged, c neither
    assert twin_rates(rows, scores) == {"twins told apart": 0.333, "twins both flagged": 0.333, "twins": 3}


def test_rows_of_another_table_or_one_label_make_no_pair():
    rows = [row("a", "S1"), row("a", "safe", "advbench (pyrit 1.1.0) +follow"), row("b", "S1"), row("b", "S2")]
    assert twin_rates(rows, np.ones(4)) == {}


@given(st.lists(st.tuples(st.sampled_from("xyz"), st.booleans(), st.floats(0, 1)), max_size=20))
def test_told_apart_and_both_flagged_are_shares_of_the_pairs(data):
    rows = [row(t, "S1" if bad else "safe") for t, bad, _ in data]
    out = twin_rates(rows, np.array([p for *_, p in data]))
    pairs = sum(min(sum(b for t2, b, _ in data if t2 == t), sum(not b for t2, b, _ in data if t2 == t)) for t in "xyz")
    assert out.get("twins", 0) == pairs
    if pairs:
        assert 0 <= out["twins told apart"] + out["twins both flagged"] <= 1
