"""bench/common_rows.py compares one-fold files on the rows they all hold out: a row is its
text, its turns and its label, and the figures are of those rows only. Hand-made files (our
own arithmetic, no model)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard.offline_model import CLASSES
from guard.training.transfer import OutOfFold

BENCH = Path(__file__).resolve().parent.parent / "bench"
SPEC = importlib.util.spec_from_file_location("common_rows", BENCH / "common_rows.py")
common_rows = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(common_rows)

SCENES = "handwritten (multiturn_scenes)"


def held_out(rows: list[tuple[str, str, str, float]], kind: str = "prompt") -> OutOfFold:
    """(label, first turn, follow-up, unsafe score) -> an OutOfFold of scenes rows with those scores."""
    logits = np.full((len(rows), len(CLASSES)), -50.0)
    for k, (label, _, _, p) in enumerate(rows):
        logits[k, 0], logits[k, CLASSES.index("S1" if label == "safe" else label)] = np.log(1 - p), np.log(p)
    return OutOfFold(
        [{"source": SCENES, "label": lab, "text": t, "context": [c, "Sure."], "kind": kind} for lab, c, t, _ in rows],
        logits,
    )


def test_only_rows_in_every_file_are_compared(tmp_path, capsys):
    a = held_out([("S1", "I hate him", "where does he park?", 0.9), ("safe", "I love him", "where does he park?", 0.2)])
    b = held_out(
        [
            ("S1", "I hate him", "where does he park?", 0.1),  # the same rows, ranked the other way
            ("safe", "I love him", "where does he park?", 0.8),
            ("S1", "I hate her", "when is she home?", 0.99),  # held out by b only: not compared
        ]
    )
    a.save(tmp_path / "a.npz")
    b.save(tmp_path / "b.npz")
    assert common_rows.main(["multi-turn scenes", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "multi-turn scenes (prompt): 2 rows held out in every file (1 unsafe)"
    assert "2 held out   AUPRC 1.000  recall@5% 1.000" in out[1]
    assert "3 held out   AUPRC 0.500  recall@5% 0.000" in out[2]


def test_the_turns_tell_rows_apart():
    """The same follow-up after another first turn is another row."""
    a = held_out([("S1", "I hate him", "where does he park?", 0.9)])
    b = held_out([("S1", "I hate her", "where does he park?", 0.9)])
    assert not set(common_rows.held_rows(a, "multi-turn scenes", "prompt")) & set(
        common_rows.held_rows(b, "multi-turn scenes", "prompt")
    )


def test_no_common_rows_is_a_clear_error(tmp_path, capsys):
    held_out([("S1", "I hate him", "where does he park?", 0.9)]).save(tmp_path / "a.npz")
    held_out([("S1", "x", "y", 0.9)], kind="reply").save(tmp_path / "b.npz")
    with pytest.raises(SystemExit) as stop:
        common_rows.main(["multi-turn scenes", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")])
    assert stop.value.code == 2
    assert "no prompt rows of 'multi-turn scenes' held out in every file" in capsys.readouterr().err


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=12))
def test_common_rows_are_the_intersection(held):
    """Row i is in file a when held[i][0] and in b when held[i][1]: the compared rows are
    exactly those in both, whatever their order in each file."""
    rows = [("S1" if i % 2 else "safe", f"first {i}", f"follow {i}", 0.5) for i in range(len(held))]
    a = held_out([r for r, (in_a, _) in zip(rows, held) if in_a])
    b = held_out([r for r, (_, in_b) in reversed(list(zip(rows, held))) if in_b])
    keys_a, keys_b = (set(common_rows.held_rows(f, "multi-turn scenes", "prompt")) for f in (a, b))
    both = {(f"follow {i}", (f"first {i}", "Sure."), rows[i][0]) for i, (x, y) in enumerate(held) if x and y}
    assert keys_a & keys_b == both
