"""`python -m guard.training.transfer FILE.npz --rank`: rank figures per held-out family,
for comparing runs that held out only some families. Hand-checked scores (our own
arithmetic, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from guard.offline_model import CLASSES
from guard.training.ranks import rank_table
from guard.training.transfer import OutOfFold, main

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


def test_ranked_against_another_familys_benign_prompts():
    """--against: each family's unsafe prompts against one family's benign prompts (what a
    joint fold of public harmful and public benign is measured by)."""
    oof = held_out(
        [
            ("advbench (pyrit 1.1.0)", "S2", "harmful a", 0.9),
            ("advbench (pyrit 1.1.0)", "S2", "harmful b", 0.3),
            ("pyrit fairness (pyrit 1.1.0)", "safe", "its own benign: not counted", 0.95),
            ("freshqa (inspect-evals 0.28.0)", "safe", "benign a", 0.4),
            ("writingbench (inspect-evals 0.28.0)", "safe", "benign b", 0.1),
        ]
    )
    table = rank_table(oof, against="public benign")
    assert list(table) == ["public harmful"]  # public benign has no unsafe rows to rank
    m = table["public harmful"]
    assert m["auprc"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-3)  # 0.9 u, 0.4 b, 0.3 u, 0.1 b
    assert m["recall@5%"] == 0.5 and m["recall@2%"] == 0.5
    assert rank_table(oof)["public harmful"]["recall@5%"] == 0  # its own benign row (0.95) sets the bar


def test_against_needs_rank_and_a_held_out_family(tmp_path, capsys):
    path = tmp_path / "oof.npz"
    OOF.save(path)
    for args in (["--against", "multi-turn"], ["--rank", "--against", "public benign"]):
        with pytest.raises(SystemExit) as stop:
            main([str(path), *args])
        assert stop.value.code == 2
    assert "--against goes with --rank" in capsys.readouterr().err
