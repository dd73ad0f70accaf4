"""`python -m guard.training.ensemble A.npz B.npz --out AB.npz`: two runs' held-out logits
read as one guard's (their mean, rows matched by what they say). Generated held-out
logits; no model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_transfer_point import generated as point_logits

from guard.offline_model import CLASSES
from guard.training.ensemble import AmbiguousRows, join, main
from guard.training.transfer import OutOfFold, choose


def generated(seed: int, n: int = 60, split: str = "train") -> OutOfFold:
    """test_transfer_point's generated held-out logits, each row in `split` with a group of its own."""
    oof = point_logits(seed, n)
    oof.rows = [dict(r, split=split, group=f"{split}-{k}") for k, r in enumerate(oof.rows)]
    return oof


def test_rows_are_matched_by_what_they_say_and_their_logits_averaged():
    a, b = generated(0), generated(1, split="validation")  # the same rows in another split
    b.rows, b.logits, b.folds = b.rows[::-1], b.logits[::-1], b.folds[::-1]  # in another order
    joined = join([a, b])
    assert [r["text"] for r in joined.oof.rows] == [r["text"] for r in a.rows]
    assert np.allclose(joined.oof.logits, (a.logits + b.logits[::-1]) / 2)
    assert joined.oof.folds == a.folds and (joined.held_by_some, joined.other_folds) == (0, 0)


def test_rows_only_some_files_hold_and_rows_in_other_folds_are_left_out():
    a, b = generated(0), generated(1, n=50)  # b lacks rows 50 to 59
    b.rows.append({**a.rows[0], "text": "only in b"})
    b.logits = np.vstack([b.logits, np.zeros((1, len(CLASSES)))])
    b.folds = list(b.folds) + [b.folds[0]]
    b.folds[49] = "another fold"  # row 49 held out by another fold in b
    joined = join([a, b])
    texts = [r["text"] for r in joined.oof.rows]
    assert "text 55" not in texts and "only in b" not in texts and "text 49" not in texts
    assert len(texts) == 49 and joined.held_by_some == 11 and joined.other_folds == 1


def test_a_row_held_out_twice_in_one_file_is_refused():
    a = generated(0)
    a.rows[1] = dict(a.rows[0], split="validation")
    with pytest.raises(AmbiguousRows):
        join([a, generated(1)])
    with pytest.raises(ValueError):
        join([a])


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_a_run_joined_with_itself_reads_as_itself(seed, per_context):
    oof = generated(seed)
    joined = join([oof, oof]).oof
    assert np.allclose(joined.logits, oof.logits)
    assert choose(joined, per_context=per_context)["families"] == choose(oof, per_context=per_context)["families"]


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_the_mean_lies_between_its_members(s1, s2):
    a, b = generated(s1), generated(s2)
    joined = join([a, b]).oof.logits
    assert np.all(joined >= np.minimum(a.logits, b.logits) - 1e-12)
    assert np.all(joined <= np.maximum(a.logits, b.logits) + 1e-12)


def test_the_command_writes_a_file_the_transfer_tools_read(tmp_path, capsys):
    generated(0).save(tmp_path / "a.npz")
    generated(1).save(tmp_path / "b.npz")
    assert main([str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--out", str(tmp_path / "ab.npz")]) == 0
    assert "60 rows held out by every file" in capsys.readouterr().out
    loaded = OutOfFold.load(tmp_path / "ab.npz")
    assert len(loaded.rows) == 60 and len(loaded.settings["joined"]) == 2


@pytest.mark.parametrize("args", [["a.npz"], ["a.npz", "missing.npz"]])
def test_the_command_says_what_is_wrong_without_a_traceback(tmp_path, capsys, args):
    generated(0).save(tmp_path / "a.npz")
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / x) for x in args] + ["--out", str(tmp_path / "out.npz")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and ("two out-of-fold files" in err or "missing.npz" in err)
