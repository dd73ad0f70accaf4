"""`python -m guard.training.transfer FILE.npz --rank`: rank figures per held-out family,
for comparing runs that held out only some families. Hand-checked scores (our own
arithmetic, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from guard.offline_model import CLASSES
from guard.training.transfer import OutOfFold, main, rank_table

PAIRS = "handwritten (multiturn)"


def held_out(rows: list[tuple[str, str, str, float]]) -> OutOfFold:
    """(source, label, text, unsafe score) -> an OutOfFold whose logits give those scores."""
    logits = np.full((len(rows), len(CLASSES)), -50.0)
    for k, (_, label, _, p) in enumerate(rows):
        logits[k, 0], logits[k, CLASSES.index("S1" if label == "safe" else label)] = np.log(1 - p), np.log(p)
    return OutOfFold([{"source": s, "label": lab, "text": t, "kind": "prompt"} for s, lab, t, _ in rows], logits)


OOF = held_out(
    [
        (PAIRS, "S1", "how many do I need?", 0.9),
        (PAIRS, "safe", "how many do I need?", 0.2),
        (PAIRS, "S2", "and how long does it take?", 0.3),
        (PAIRS, "safe", "and how long does it take?", 0.4),
        ("advbench (pyrit 1.1.0)", "S2", "only unsafe rows: no figure", 0.7),
    ]
)


def test_rank_figures_by_hand():
    table = rank_table(OOF)
    assert list(table) == ["multi-turn"]  # a family without benign rows has no ranks
    m = table["multi-turn"]
    # scores high to low: 0.9 unsafe, 0.4 safe, 0.3 unsafe, 0.2 safe -> precision 1 and 2/3 at the hits
    assert m["auprc"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-3)
    assert m["recall@5%"] == 0.5 and m["recall@10%"] == 0.5  # no benign row may pass: above 0.4
    assert m["above twin"] == 0.5  # 0.9 > 0.2, 0.3 < 0.4


def test_the_command_prints_them_from_a_saved_file(tmp_path, capsys):
    path = tmp_path / "oof.npz"
    OOF.save(path)
    assert main([str(path), "--rank"]) == 0
    out = capsys.readouterr().out
    assert "above twin" in out and "multi-turn" in out and "0.833" in out and "advbench" not in out
