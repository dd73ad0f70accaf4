"""A leave-one-source-out run that stops goes on where it stopped: `python -m guard.train
--transfer --out-of-fold FILE` writes FILE after every fold and, when FILE exists, keeps the
folds it holds (if the same settings and data made them) instead of training them again.
Tiny real runs (hand-written data, one epoch), so each takes well under a minute."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from guard.offline_model import CLASSES
from guard.training.dataset import Item
from guard.training.families import family
from guard.training.metrics import row
from guard.training.options import fold_settings
from guard.training.sources import Example
from guard.training.train import parser
from guard.training.transfer import OutOfFold, StaleFolds, UnknownFamilies, run_folds

ROOT = Path(__file__).resolve().parent.parent


def train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "guard.train", "--tiny", "--transfer", "--folds-only", *args],
        env=dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


def families_in(oof: OutOfFold) -> set[str]:
    return {family(r["source"]) for r in oof.rows}


def test_a_stopped_run_keeps_its_folds_and_trains_only_the_missing_ones(tmp_path):
    saved = tmp_path / "replies" / "oof.npz"  # a folder not there yet is made (before training, not at the save)
    first = train("--folds", "multilingual", "--out-of-fold", str(saved), "--out", str(tmp_path / "m"))
    assert first.returncode == 0, first.stderr[-2000:]
    assert "fold without multilingual" in first.stdout and not (tmp_path / "m").exists()  # --folds-only: no model
    before = OutOfFold.load(saved)
    assert families_in(before) == {"multilingual"} and before.settings["encoder"] == "minilm"

    second = train("--folds", "multilingual,multi-turn v2", "--out-of-fold", str(saved))
    assert second.returncode == 0, second.stderr[-2000:]
    assert re.search(r"fold without multilingual: \d+ held out, taken from the earlier run", second.stdout)
    assert "fold without multi-turn v2:" in second.stdout and "multi-turn v2 (prompt)" in second.stdout
    after = OutOfFold.load(saved)
    assert families_in(after) == {"multilingual", "multi-turn v2"}
    kept = after.held("multilingual")
    assert kept[0] == before.rows and np.array_equal(kept[1], before.logits)  # not trained again

    third = train("--folds", "multi-turn", "--out-of-fold", str(saved))  # earlier folds come along
    assert third.returncode == 0, third.stderr[-2000:]
    assert families_in(OutOfFold.load(saved)) == {"multilingual", "multi-turn v2", "multi-turn"}
    assert "multilingual (prompt)" in third.stdout  # the operating point is chosen on every fold held


def test_an_output_folder_that_cannot_be_made_is_an_error_before_any_training(tmp_path):
    (tmp_path / "run").write_text("a file where the folder would go")
    refused = train("--out-of-fold", str(tmp_path / "run" / "oof.npz"))
    assert refused.returncode == 2 and "error:" in refused.stderr and "Traceback" not in refused.stderr
    assert "examples:" not in refused.stdout  # stopped before reading the data, let alone training


def test_folds_made_with_other_settings_are_refused_not_mixed(tmp_path):
    saved = tmp_path / "oof.npz"
    assert train("--folds", "multilingual", "--out-of-fold", str(saved)).returncode == 0
    other = train("--folds", "multilingual", "--seed", "1", "--out-of-fold", str(saved))
    assert other.returncode == 2 and "made with other settings" in other.stderr and "Traceback" not in other.stderr
    loose = subprocess.run(
        [sys.executable, "-m", "guard.train", "--tiny", "--folds-only"],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loose.returncode == 2 and "go with --transfer" in loose.stderr


def item(text: str, split: str = "train", label: str = "safe") -> Item:
    return Item(Example(text, label, "prompt", "handwritten (multilingual)", "CC0-1.0"), 0, split)


def test_a_saved_fold_whose_rows_differ_from_the_data_now_is_refused():
    """The held rows are compared, not only the settings: data that changed between two
    sessions cannot slip an old fold's logits into the figures."""
    base = [item("Hola."), item("Bonjour.", "validation")]
    earlier = OutOfFold([row(base[0])], np.zeros((1, len(CLASSES))), {"seed": 0})
    with pytest.raises(StaleFolds, match="other rows"):
        run_folds(base, lambda train: pytest.fail("nothing should be trained"), ["multilingual"], earlier)


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=6, unique=True), st.data())
def test_the_settings_a_fold_is_checked_by_change_with_any_example(texts, data):
    """A change anywhere in the data (here: one example's text or label) changes the
    digest, so folds whose own held rows did not change are refused too."""
    a = parser().parse_args(["--transfer"])
    items = [item(t) for t in texts]
    k = data.draw(st.integers(0, len(items) - 1))
    changed = list(items)
    changed[k] = data.draw(st.sampled_from([item(texts[k] + "!"), item(texts[k], label="S1")]))
    assert fold_settings(a, items) == fold_settings(a, list(items))
    assert fold_settings(a, items)["data"] != fold_settings(a, changed)["data"]


def test_a_joint_fold_holds_out_both_families_and_never_one_twice():
    """--folds "A+B": one model trained without both families (and their groups); its rows are
    saved under the joint fold's name, and a file cannot hold a family in two folds."""
    base = [
        item("Hola."),
        item("Bonjour.", "validation"),
        Item(Example("Ciao.", "safe", "prompt", "handwritten (handwritten_v3)", "CC0-1.0"), 1, "train"),
        Item(Example("Hello.", "safe", "prompt", "handwritten (handwritten)", "CC0-1.0"), 2, "train"),
    ]
    trained_on = []

    def train_fold(train):
        trained_on.append([i.example.text for i in train])
        return None

    joint = "multilingual+handwritten v3"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("guard.training.transfer.worst_logits", lambda net, rows: np.zeros((len(rows), len(CLASSES))))
        oof = run_folds(base, train_fold, [joint])
        assert trained_on == [["Hello."]]  # neither family, and no group of theirs
        assert sorted(r["text"] for r in oof.rows) == ["Bonjour.", "Ciao.", "Hola."]
        assert set(oof.folds) == {joint} and len(oof.held(joint)[0]) == 3
        with pytest.raises(StaleFolds, match="held out twice"):
            run_folds(base, train_fold, ["multilingual"], oof)


def test_a_saved_fold_that_comes_later_is_in_every_file_written_before_it_is_reached():
    """A run started from a file holding a later fold (a probe's) keeps that fold in the file
    written after each fold it trains, so a stop before the later fold loses nothing."""
    v3 = Item(Example("Ciao.", "safe", "prompt", "handwritten (handwritten_v3)", "CC0-1.0"), 1, "train")
    base = [
        item("Hola."),
        v3,
        Item(Example("Hello.", "safe", "prompt", "handwritten (handwritten)", "CC0-1.0"), 2, "train"),
    ]
    probe = OutOfFold([row(base[0])], np.ones((1, len(CLASSES))), {"seed": 0}, ["multilingual"])
    written = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("guard.training.transfer.worst_logits", lambda net, rows: np.zeros((len(rows), len(CLASSES))))
        oof = run_folds(base, lambda train: None, ["handwritten v3", "multilingual"], probe, written.append)
    assert len(written) == 1  # one fold trained, the other taken
    assert set(written[0].folds) == {"handwritten v3", "multilingual"}
    assert np.array_equal(written[0].held("multilingual")[1], probe.held("multilingual")[1])
    assert set(oof.folds) == {"handwritten v3", "multilingual"}


def test_a_joint_folds_name_survives_saving(tmp_path):
    oof = OutOfFold([row(item("Hola."))], np.zeros((1, len(CLASSES))), {"seed": 0}, ["multilingual+public benign"])
    oof.save(tmp_path / "oof.npz")
    again = OutOfFold.load(tmp_path / "oof.npz")
    assert again.folds == ["multilingual+public benign"] and again.held("multilingual+public benign")[0] == oof.rows


def test_a_fold_name_that_is_no_family_is_refused_before_any_training():
    """A typo in one member of a joint fold would hold out less than the name says."""
    base = [item("Hola."), item("Bonjour.", "validation")]
    for names in (["multilingual+handwriten v3"], ["multilingal"]):
        with pytest.raises(UnknownFamilies, match="no source family") as refused:
            run_folds(base, lambda train: pytest.fail("nothing should be trained"), names)
        assert "multilingual" in str(refused.value)  # the families there are, to pick from
