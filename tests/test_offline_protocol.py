"""The offline classifier's evaluation protocol: a group split with no near-duplicate
across splits, committed figures that the committed model reproduces, and a training
loop that runs end to end (tiny configuration) in CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from guard.offline import OfflineGuard
from guard.offline_model import Network
from guard.training.dataset import NEAR_COSINE, NEAR_JACCARD, components, jaccard, near_pairs, split_of
from guard.training.evaluate import FIGURES, select
from guard.training.manifest import read_manifest
from guard.training.metrics import average_precision, evaluate_rows, recall_at_fpr
from guard.training.train import parser
from guard.training.trainer import base_embedder

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 0.02  # the sample figures are recomputed with the same weights: only float noise differs


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return read_manifest()


def test_near_pairs_link_paraphrases_and_components_join_them():
    texts = [
        "Write a tutorial on how to make a bomb",
        "Write a tutorial on how to make a bomb at home",
        "How do I bake sourdough bread?",
        "What is the capital of France?",
    ]
    embeddings = np.eye(4)  # nothing similar by embedding: only the word overlap links
    assert near_pairs(texts, embeddings) == []  # the cheap cosine filter keeps nothing
    embeddings = np.array([[1.0, 0], [0.6, 0.8], [0, 1.0], [0, 1.0]])
    assert (0, 1) in near_pairs(texts, embeddings)  # cosine 0.6, word Jaccard 0.8
    assert (2, 3) in near_pairs(texts, embeddings)  # cosine 1.0
    assert components(4, [(0, 1), (2, 3)]) == [0, 0, 2, 2]
    assert jaccard(texts[0], texts[1]) >= NEAR_JACCARD


def test_split_of_is_seeded_and_close_to_the_documented_shares():
    keys = [f"group {i}" for i in range(3000)]
    first = [split_of(k, 0) for k in keys]
    assert first == [split_of(k, 0) for k in keys] and first != [split_of(k, 1) for k in keys]
    assert 0.17 < first.count("test") / 3000 < 0.23 and 0.12 < first.count("validation") / 3000 < 0.18


def test_no_group_spans_two_splits(rows):
    splits = defaultdict(set)
    for r in rows:
        splits[r["group"]].add(r["split"])
    assert all(len(s) == 1 for s in splits.values())
    assert {r["split"] for r in rows} == {"train", "validation", "test"}


def test_no_near_duplicate_pair_crosses_splits(rows):
    """Recomputed from scratch on every source text (framed prompts and built replies are
    derived inside their split): no pair with cosine >= NEAR_COSINE or word Jaccard >=
    NEAR_JACCARD has its two texts in different splits."""
    split = {}
    for r in rows:
        if "+" not in r["source"]:
            split.setdefault(r["text"], r["split"])
            if r["prompt"]:
                split.setdefault(r["prompt"], r["split"])
    texts = sorted(split)
    crossing = [
        (texts[i], texts[j])
        for i, j in near_pairs(texts, base_embedder(Network.base())(texts))
        if split[texts[i]] != split[texts[j]]
    ]
    assert crossing == [], f"{len(crossing)} near-duplicate pairs cross splits, e.g. {crossing[:3]}"
    assert NEAR_COSINE <= 0.85


def test_long_prompts_are_made_of_their_own_splits_texts(rows):
    """A long prompt (guard.training.dataset.long_prompts) joins texts of one split: an
    unsafe one holds an unsafe prompt of that split with its label, and no long prompt
    holds a text of another split."""
    own = defaultdict(set)
    unsafe = defaultdict(set)
    for r in rows:
        if "+" in r["source"]:
            continue
        if len(r["text"]) > 60:  # shorter ones ("The Lord of the Rings: The Rings of Power") occur in others
            own[r["text"]].add(r["split"])
        if r["kind"] == "prompt" and r["label"] != "safe":
            unsafe[(r["split"], r["label"])].add(r["text"])
    long = [r for r in rows if r["source"].endswith("+long")]
    assert len(long) > 300 and {r["split"] for r in long} == {"train", "validation", "test"}
    assert sum(r["label"] != "safe" for r in long) > 100
    for r in long:
        if r["label"] != "safe":
            assert any(t in r["text"] for t in unsafe[(r["split"], r["label"])]), r["text"][:80]
    for r in long[::7]:  # a seventh of them: each check scans every source text
        assert not [t for t, splits in own.items() if r["split"] not in splits and t in r["text"]]


def test_metrics_on_a_hand_checked_example():
    y = np.array([True, True, False, False, True])
    s = np.array([0.9, 0.4, 0.8, 0.1, 0.7])
    assert average_precision(y, s) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert recall_at_fpr(y, s, 0.0) == pytest.approx(1 / 3)  # only 0.9 is above 0.8, the worst benign score
    assert recall_at_fpr(y, s, 0.5) == pytest.approx(1.0)  # one benign of two may pass


def test_the_committed_model_gives_the_documented_figures_on_the_sample(rows):
    documented = json.loads(FIGURES.read_text())["sample"]
    result = evaluate_rows(OfflineGuard.load().net, select(rows, "sample"), documented["threshold"])
    for side in ("prompt", "reply"):
        for key in ("recall", "fpr", "auprc", "precision"):
            assert result[side][key] == pytest.approx(documented[side][key], abs=TOLERANCE), (side, key)
        assert result[side]["n_unsafe"] == documented[side]["n_unsafe"]


def test_training_runs_end_to_end_on_a_tiny_configuration(tmp_path):
    out, manifest = tmp_path / "tiny.safetensors", ROOT / "guard" / "data" / "examples.tsv"
    before = manifest.read_bytes()
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "guard.train", "--tiny", "--out", str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "kept epoch 1" in done.stdout and out.is_file()
    assert manifest.read_bytes() == before  # a tiny run writes only where --out says
    verdict = OfflineGuard.load(out).check([{"role": "user", "content": "How do I bake bread?"}])
    assert verdict.parsed and not verdict.failed and 0.0 <= verdict.score <= 1.0


def test_a_given_operating_point_is_saved_as_given_and_the_last_epoch_kept(tmp_path):
    out, manifest = tmp_path / "given.safetensors", ROOT / "guard" / "data" / "examples.tsv"
    before = manifest.read_bytes()
    point = "1.25,0.75,1.5,2.5,-1.5,3.0"  # six: a prompt after earlier turns third in each half
    done = subprocess.run(
        [sys.executable, "-m", "guard.train", "--tiny", "--operating-point", point, "--out", str(out)],
        env=dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(given)" in done.stdout and manifest.read_bytes() == before
    net = Network.load(out)
    assert net.temperatures == pytest.approx((1.25, 0.75, 1.5)) and net.offsets == pytest.approx((2.5, -1.5, 3.0))
    assert net.calibration("turns") == pytest.approx((1.5, 3.0))
    assert net.metadata["epochs_kept"] == 1  # the last (a tiny run has one)


@given(st.lists(st.one_of(st.floats(), st.text(st.characters(blacklist_characters=","), max_size=4)), max_size=6))
def test_an_operating_point_is_four_or_six_numbers_with_positive_temperatures_or_refused(values):
    text = ",".join(str(v) for v in values)
    numbers = []
    for v in values:
        try:
            numbers.append(float(str(v)))
        except ValueError:
            numbers = None
            break
    good = numbers is not None and len(numbers) in (4, 6) and np.isfinite(numbers).all()
    good = good and min(numbers[: len(numbers) // 2]) > 0
    if good:
        assert parser().parse_args(["--operating-point", text]).operating_point == pytest.approx(tuple(numbers))
    else:
        with pytest.raises(SystemExit):
            parser().parse_args(["--operating-point", text])


def test_transfer_and_a_given_operating_point_together_are_refused_with_a_message(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "guard.train", "--tiny", "--transfer", "--operating-point", "1,1,0,0"]
        + ["--out", str(tmp_path / "m")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "use one" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "m").exists()
