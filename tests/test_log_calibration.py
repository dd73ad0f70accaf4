"""Calibration from labels, on real SQLite and PostgreSQL: `python -m moderation.log
thresholds` on a synthetic labelled log whose right answer is known, and `dataset`, whose
rows are the labelled turns that kept their text in the classifier's training format.

The log is written row by row (turns, verdicts) with chosen scores, and labelled through
`add_label`, the same path as the review page and POST /review/labels."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from moderation.log.calibration import MIN_EACH, calibrate, suggest
from moderation.log.labels import add_label
from moderation.log.query import TurnFilter, iter_records
from moderation.log.schema import open_engine, turns, utcnow, verdicts

ROOT = Path(__file__).resolve().parent.parent
POLICY = json.dumps({"threshold": 0.5, "enabled": [f"S{i}" for i in range(1, 12)]})


def _turn(conn, n: int, score: float, codes: tuple[str, ...], text: str | None = "x") -> str:
    """One turn with one prompt verdict of `score`, unsafe (naming `codes`) at >= 0.5."""
    turn_id = f"t{n:04d}"
    conn.execute(
        turns.insert().values(
            id=turn_id,
            started_at=utcnow(),
            session="s",
            policy=POLICY,
            policy_hash="h",
            guard="g",
            chat="c",
            outcome="refused" if score >= 0.5 else "answered",
            text_policy="all",
            user_text=None if text is None else f"{text} {n}",
            reply=None if text is None else f"reply {n}",
        )
    )
    unsafe = score >= 0.5
    conn.execute(
        verdicts.insert().values(
            turn_id=turn_id,
            seq=0,
            at=utcnow(),
            stage="prompt",
            role="User",
            safe=not unsafe,
            parsed=True,
            codes="".join(f",{c}" for c in codes) + "," if unsafe else "",
            categories=json.dumps([{"code": c, "name": c} for c in codes] if unsafe else []),
            score=score,
            threshold=0.5,
            latency_ms=1.0,
        )
    )
    return turn_id


def _label(engine, turn_id: str, label: str, categories=(), source="operator"):
    add_label(
        engine,
        {"turn": turn_id, "stage": "prompt", "label": label, "categories": list(categories)},
        author="op",
        source=source,
    )


@pytest.fixture
def engine(log_db):
    e = open_engine(log_db)
    yield e
    e.dispose()


@pytest.fixture
def labelled_log(engine):
    """Known answer. Truly unsafe (10): 0.35, 0.4, 0.45 (missed: false negatives, S8) and
    0.55..0.9 (flagged S1, correct) and 0.95 (S2, correct; its turn kept no text). Truly
    safe (21): 0.05..0.3 (correct) and one false positive at 0.6 naming S8. A visitor's
    label and an unlabelled turn are not counted.
    Global at FPR 0.05 (1 of 21 safe may pass): 0.35, precision 11/12, recall 1.
    Global at FPR 0.01 (none may pass): 0.65 (above the false positive's 0.6), precision 1, recall 6/11.
    S8: 3 unsafe, 1 safe: too few.  S1: 7 unsafe, 0 safe: too few."""
    ids = iter(range(1000))
    with engine.begin() as conn:
        missed = [_turn(conn, next(ids), s, ()) for s in (0.35, 0.4, 0.45)]
        caught = [_turn(conn, next(ids), s, ("S1",)) for s in (0.55, 0.6, 0.65, 0.7, 0.8, 0.85, 0.9)]
        benign = [_turn(conn, next(ids), round(0.05 + 0.0125 * i, 4), ()) for i in range(20)]
        wrong = _turn(conn, next(ids), 0.6, ("S8",))
        disputed = _turn(conn, next(ids), 0.1, ())
        _turn(conn, next(ids), 0.99, ("S1",))  # unlabelled
        no_text = _turn(conn, next(ids), 0.95, ("S2",), text=None)
    for t in missed:
        _label(engine, t, "false_negative", ["S8"])
    for t in caught:
        _label(engine, t, "correct")
    for t in benign:
        _label(engine, t, "correct")
    _label(engine, wrong, "correct")  # corrected below: the latest operator label counts
    _label(engine, wrong, "false_positive")
    _label(engine, disputed, "false_negative", ["S1"], source="visitor")
    _label(engine, no_text, "correct")
    return engine


def _records(engine):
    return list(iter_records(engine, TurnFilter(labelled="yes")))


def test_thresholds_on_a_log_whose_answer_is_known(labelled_log):
    cal = calibrate(_records(labelled_log), 0.05)
    g = cal.overall
    assert (g.threshold, g.precision, g.recall, g.n_unsafe, g.n_safe) == (0.35, round(11 / 12, 3), 1.0, 11, 21)
    strict = calibrate(_records(labelled_log), 0.01).overall
    assert (strict.threshold, strict.precision, strict.recall) == (0.65, 1.0, round(6 / 11, 3))
    by_code = {s.name: s for s in cal.categories}
    assert by_code["S8"].threshold is None and (by_code["S8"].n_unsafe, by_code["S8"].n_safe) == (3, 1)
    assert "too few labels" in by_code["S8"].why_none


def test_the_command_prints_the_numbers_their_support_and_a_policy_snippet(labelled_log, log_db):
    done = subprocess.run(
        [sys.executable, "-m", "moderation.log", "thresholds", "--db", log_db, "--target-fpr", "0.05"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "global   0.35     precision 0.917  recall 1.000  (11 unsafe, 21 safe labels)" in out
    assert "S8       none: too few labels: 3 unsafe and 1 safe" in out
    assert out.rstrip().endswith("threshold = 0.35")  # no [thresholds] table: no category has the support
    bad = subprocess.run(
        [sys.executable, "-m", "moderation.log", "thresholds", "--db", log_db, "--target-fpr", "2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert bad.returncode == 2 and "a false positive rate is a number from 0 up to 1" in bad.stderr


def test_a_category_with_enough_labels_gets_its_own_threshold_and_a_table_entry():
    def verdict(score, safe, codes=(), category_scores=None):
        v = {
            "seq": 0,
            "stage": "prompt",
            "safe": safe,
            "parsed": True,
            "score": score,
            "categories": [{"code": c} for c in codes],
        }
        return v if category_scores is None else {**v, "category_scores": category_scores}

    def record(v, label, categories=()):
        return {
            "verdicts": [v],
            "labels": [{"seq": 0, "label": label, "categories": list(categories), "source": "operator"}],
        }

    # S8's own scores (category_scores) separate its cases at 0.3; the overall scores do not matter for it
    records = [record(verdict(0.9, False, ("S8",), {"S8": s}), "correct") for s in (0.3, 0.4, 0.5, 0.6, 0.7)]
    records += [record(verdict(0.6, False, ("S8",), {"S8": s}), "false_positive") for s in (0.1, 0.15, 0.2, 0.25, 0.28)]
    by_code = {s.name: s for s in calibrate(records, 0.05).categories}
    assert (by_code["S8"].threshold, by_code["S8"].precision, by_code["S8"].recall) == (0.3, 1.0, 1.0)
    from moderation.log.calibration import policy_snippet

    assert "[thresholds]\nS8 = 0.3" in policy_snippet(calibrate(records, 0.05))


def test_too_few_labels_suggest_nothing():
    few = [(0.9, True)] * (MIN_EACH - 1) + [(0.1, False)] * 10
    s = suggest("global", few)
    assert s.threshold is None and s.precision is None and "4 unsafe and 10 safe" in s.why_none


def test_dataset_writes_the_labelled_turns_that_kept_their_text(labelled_log, log_db, tmp_path):
    out = tmp_path / "labels.tsv"
    done = subprocess.run(
        [sys.executable, "-m", "moderation.log", "dataset", "--db", log_db, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    by_text = {r["text"]: r for r in rows}
    assert by_text["x 0"]["label"] == "S8" and by_text["x 0"]["kind"] == "prompt"  # a false negative, S8
    assert by_text["x 3"]["label"] == "S1"  # correct on an unsafe verdict: its own category
    assert by_text["x 30"]["label"] == "safe"  # the false positive
    assert not any(r["text"].startswith("x 31") for r in rows)  # a visitor's label is not ground truth
    assert len(rows) == 31 and {r["split"] for r in rows} <= {"train", "heldout"}
    assert "1 turn kept no text" in done.stderr


def test_the_review_pages_calibration_shows_the_commands_numbers(labelled_log):
    from moderation.log.review_page import create_review

    page = create_review(labelled_log)
    table = next(b for b in page.blocks.values() if getattr(b, "elem_id", None) == "calibration-table")
    handler = next(f for f in page.fns.values() if table in f.outputs)
    rows, snippet = handler.fn(0.05)
    assert rows[0] == ["global", 0.35, round(11 / 12, 3), 1.0, 11, 21, ""]
    assert next(r for r in rows if r[0] == "S8")[1] is None and snippet.endswith("threshold = 0.35")
