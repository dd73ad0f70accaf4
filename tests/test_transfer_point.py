"""`python -m guard.training.transfer FILE.npz --point ...`: held-out folds read at a given
point (another model's temperatures and offsets) instead of one chosen on them, for a run
that holds only a few folds. Generated held-out logits; no model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard.offline_model import CLASSES
from guard.training.transfer import OutOfFold, at_point, choose, main

SOURCES = ("handwritten (handwritten)", "advbench (pyrit 1.1.0)", "freshqa (inspect-evals 0.28.0)")


def generated(seed: int, n: int = 60) -> OutOfFold:
    rng = np.random.default_rng(seed)
    rows = [
        {
            "source": SOURCES[k % 3],
            "label": "safe" if k % 2 else "S2",
            "text": f"text {k}",
            "kind": "reply" if k % 5 == 0 else "prompt",
            "context": ["q", "a"] if k % 7 == 0 else [],
        }
        for k in range(n)
    ]
    return OutOfFold(rows, rng.normal(0, 2, (n, len(CLASSES))))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_the_chosen_point_given_back_reads_the_same_figures(seed, per_context):
    oof = generated(seed)
    chosen = choose(oof, per_context=per_context)
    again = at_point(oof, chosen["temperatures"], chosen["offsets"])
    assert again["families"] == chosen["families"] and again["summary"] == chosen["summary"]


def test_a_low_point_flags_every_row_and_a_high_one_none():
    oof = generated(0)
    low, high = at_point(oof, [1.0, 1.0], [-40.0, -40.0]), at_point(oof, [1.0, 1.0], [40.0, 40.0])
    for name, m in low["families"].items():
        assert m["recall"] in (None, 1.0) and m["fpr"] in (None, 1.0), name
    for name, m in high["families"].items():
        assert m["recall"] in (None, 0.0) and m["fpr"] in (None, 0.0), name


def test_the_third_pair_reads_prompts_after_turns_only():
    oof = generated(1)
    k = np.array([r["kind"] == "prompt" and bool(r["context"]) for r in oof.rows])
    apart = at_point(oof, [1.0, 1.0, 1.0], [40.0, 40.0, -40.0])  # only prompts after turns flagged
    whole = at_point(OutOfFold([r for r, x in zip(oof.rows, k) if x], oof.logits[k]), [1.0], [-40.0])
    flagged = {n: m for n, m in apart["families"].items() if m["recall"] or m["fpr"]}
    assert flagged and all(n.endswith("(prompt)") for n in flagged)
    for name, m in whole["families"].items():
        assert (m["recall"] in (None, 1.0)) and (m["fpr"] in (None, 1.0)), name


def test_the_command_reads_at_the_point_and_refuses_a_bad_one(tmp_path, capsys):
    path = tmp_path / "oof.npz"
    generated(2).save(path)
    assert main([str(path), "--point", "1,1,-40,-40"]) == 0
    out = capsys.readouterr().out
    assert "temperatures 1.00, 1.00; offsets -40.00, -40.00" in out
    for bad in ("1,2,3", "0,1,2,3", "a,b,c,d", "1,1,nan,1"):
        with pytest.raises(SystemExit) as stop:
            main([str(path), "--point", bad])
        assert stop.value.code == 2
    assert "give four numbers" in capsys.readouterr().err
