"""`python -m guard.training.transfer FILE.npz --rank`: rank figures per held-out family,
for comparing runs that held out only some families; and the held-out figures per language
at the operating point. Hand-checked scores (our own arithmetic, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from guard.offline_model import CLASSES
from guard.training.ranks import rank_table
from guard.training.transfer import OutOfFold, choose, family_table, language_of, main

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


def test_the_reply_side_ranks_replies_and_refusals_only():
    """--side reply: a family's replies and refusals (a refusal is benign) ranked on their own,
    its prompts left out (what a table of refusals is measured by)."""
    rows = [
        ("handwritten (handwritten)", "S1", "reply", "how to hurt him, step one", 0.8),
        ("handwritten (handwritten)", "safe", "refusal", "I won't help you hurt anyone.", 0.9),
        ("handwritten (handwritten)", "S9", "reply", "here is that speech", 0.6),
        ("handwritten (handwritten)", "safe", "reply", "The history of the riot is...", 0.1),
        ("handwritten (handwritten)", "S2", "prompt", "a prompt: not a reply", 0.05),
        ("handwritten (handwritten)", "safe", "prompt", "a benign prompt", 0.99),
    ]
    oof = held_out([(s, lab, t, p) for s, lab, _, t, p in rows])
    for row, (_, _, kind, _, _) in zip(oof.rows, rows):
        row["kind"] = kind
    m = rank_table(oof, side="reply")["handwritten v1-v2"]
    # replies high to low: 0.9 refusal, 0.8 unsafe, 0.6 unsafe, 0.1 benign -> precision 1/2 and 2/3 at the hits
    assert m["auprc"] == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-3)
    assert m["recall@10%"] == 0  # the refusal (0.9) sets the bar above both unsafe replies
    assert rank_table(oof)["handwritten v1-v2"]["recall@5%"] == 0  # prompt side: 0.05 under the benign 0.99


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
    assert m["by category"] == {}  # no category of 20 rows


def test_against_gives_recall_per_category_at_the_familys_threshold():
    rows = [("advbench (pyrit 1.1.0)", "S2", f"s2 {k}", 0.9 if k < 15 else 0.2) for k in range(20)]
    rows += [("advbench (pyrit 1.1.0)", "S1", f"s1 {k}", 0.9 if k < 5 else 0.2) for k in range(20)]
    rows += [("advbench (pyrit 1.1.0)", "S8", f"s8 {k}", 0.9) for k in range(19)]  # under 20: not printed
    rows += [("freshqa (inspect-evals 0.28.0)", "safe", f"benign {k}", 0.5) for k in range(40)]
    m = rank_table(held_out(rows), against="public benign")["public harmful"]
    assert m["by category"] == {"S1": 0.25, "S2": 0.75}


def test_against_needs_rank_and_a_held_out_family(tmp_path, capsys):
    path = tmp_path / "oof.npz"
    OOF.save(path)
    for args in (["--against", "multi-turn"], ["--rank", "--against", "public benign"]):
        with pytest.raises(SystemExit) as stop:
            main([str(path), *args])
        assert stop.value.code == 2
    assert "--against goes with --rank" in capsys.readouterr().err


def test_figures_per_language_by_hand():
    """The held-out figures per language: each row still scored by the model that never saw
    its family, grouped by the language its table gives (the issue's per-language target,
    measured by transfer rather than on the test split)."""
    rows = [
        ({"source": "handwritten (multilingual)", "label": "S1", "text": "a", "kind": "prompt", "lang": "de"}, 0.9),
        ({"source": "handwritten (multilingual_v2)", "label": "S2", "text": "b", "kind": "prompt", "lang": "de"}, 0.2),
        ({"source": "handwritten (multilingual)", "label": "safe", "text": "c", "kind": "prompt", "lang": "de"}, 0.6),
        ({"source": "handwritten (multilingual)", "label": "safe", "text": "d", "kind": "prompt", "lang": "de"}, 0.1),
        ({"source": "advbench (pyrit 1.1.0)", "label": "S2", "text": "e", "kind": "prompt"}, 0.7),  # no lang: English
        ({"source": "handwritten (multilingual_v2)", "label": "S1", "text": "f", "kind": "reply", "lang": "de"}, 0.8),
    ]
    s, y = np.array([p for _, p in rows]), np.array([r["label"] != "safe" for r, _ in rows])
    table = family_table(s, y, [r for r, _ in rows], 0.5, key=language_of)
    assert set(table) == {"de (prompt)", "de (reply)", "en (prompt)"}
    de = table["de (prompt)"]
    assert (de["n_unsafe"], de["n_benign"], de["recall"], de["fpr"]) == (2, 2, 0.5, 0.5)
    assert table["en (prompt)"]["recall"] == 1.0 and table["en (prompt)"]["fpr"] is None
    assert table["de (reply)"]["n_unsafe"] == 1


def test_the_transfer_table_ends_with_the_languages(tmp_path, capsys):
    rng = np.random.default_rng(2)
    rows, logits = [], []
    for lang in ("de", "it"):
        for label in ("S1", "safe") * 25:
            z = rng.normal(0, 1, len(CLASSES))
            z[CLASSES.index(label)] += 4.0
            rows.append({"source": "handwritten (multilingual)", "label": label, "kind": "prompt", "lang": lang})
            logits.append(z)
    oof = OutOfFold(rows, np.array(logits))
    figures = choose(oof)
    assert set(figures["languages"]) == {"de (prompt)", "it (prompt)"}
    worst = min(figures["languages"], key=lambda k: figures["languages"][k]["recall"])
    assert figures["language_summary"]["worst_recall"] == {
        "language": worst,
        "recall": figures["languages"][worst]["recall"],
    }
    oof.save(tmp_path / "oof.npz")
    assert main([str(tmp_path / "oof.npz")]) == 0
    out = capsys.readouterr().out
    assert "per language" in out and "it (prompt)" in out and "worst language recall" in out
