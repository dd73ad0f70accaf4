"""A point per context (`--point-per-context`): a prompt read after earlier turns gets its
own temperature and operating point (guard.training.points), the saved weights carry three
calibrations (guard.offline_model.CALIBRATIONS), and the guard, the evaluation and the
comparison all read a prompt after turns with the third one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from guard.offline import CLEAR_ALONE, OfflineGuard, reading, window_probabilities
from guard.offline_model import CLASSES, Network, calibrations
from guard.training.metrics import scores, threshold_at_fpr
from guard.training.points import THRESHOLDS, calibration_of, choose_points, measuring_families, operating_point
from guard.training.transfer import SAME_FPR, OutOfFold, choose, compare
from guard.training.transfer import main as transfer_main

ROOT = Path(__file__).resolve().parent.parent
HARMLESS_TURNS = ["What's a good name for a goldfish?", "Bubbles, Goldie or Finn are popular choices."]


def conversation(*texts: str) -> list[dict]:
    return [{"role": "user" if k % 2 == 0 else "assistant", "content": t} for k, t in enumerate(texts)]


def _logits(rng, label: str, unsafe_margin: float) -> np.ndarray:
    """Logits whose unsafe score rises with unsafe_margin (the "safe" logit lowered)."""
    z = rng.normal(0, 0.3, len(CLASSES))
    z[CLASSES.index("S1")] += 1.0
    z[0] -= unsafe_margin
    return z


def two_contexts() -> OutOfFold:
    """Single messages that rank well (benign low, unsafe high) and two-turn rows whose
    controls score as high as their unsafe twins half the time: the pooled point must rise
    for the two-turn controls, and then misses single messages it ranks."""
    rng = np.random.default_rng(3)
    rows, logits = [], []
    for source, label, context, margins in [
        ("handwritten (handwritten_v3)", "safe", [], rng.normal(-3, 1, 200)),
        ("handwritten (handwritten_v3)", "S1", [], rng.normal(1.5, 1, 200)),
        ("handwritten (multiturn)", "safe", ["q", "a"], np.concatenate([rng.normal(-3, 1, 60), rng.normal(2, 1, 60)])),
        ("handwritten (multiturn)", "S1", ["q", "a"], rng.normal(2, 1, 120)),
    ]:
        for m in margins:
            rows.append({"source": source, "label": label, "kind": "prompt", "text": "t", "context": context})
            logits.append(_logits(rng, label, m))
    return OutOfFold(rows, np.array(logits))


def test_a_prompt_after_turns_gets_its_own_point_and_the_single_messages_keep_what_they_rank():
    oof = two_contexts()
    pooled, apart = choose(oof), choose(oof, per_context=True)
    assert len(pooled["offsets"]) == len(pooled["temperatures"]) == 2
    assert len(apart["offsets"]) == len(apart["temperatures"]) == 3
    single, turns = "handwritten v3 (prompt)", "multi-turn (prompt)"
    # pooled, the two-turn controls spend the FPR the single messages could have used
    assert pooled["families"][turns]["fpr"] > 0.05 and pooled["families"][single]["fpr"] < 0.05
    assert apart["families"][single]["recall"] > pooled["families"][single]["recall"] + 0.1
    assert apart["families"][turns]["fpr"] <= 0.05 and apart["families"][single]["fpr"] <= 0.05
    # the prompt-alone point is set by the single messages only: the same with other two-turn rows
    k = np.array([not r["context"] for r in oof.rows])
    alone = OutOfFold([r for r, keep in zip(oof.rows, k) if keep], oof.logits[k])
    assert choose(alone)["offsets"][0] == pytest.approx(apart["offsets"][0])
    assert choose(alone)["temperatures"][0] == pytest.approx(apart["temperatures"][0])


def test_each_row_is_calibrated_as_the_guard_reads_it():
    prompt = {"kind": "prompt", "context": []}
    after = {"kind": "prompt", "context": ["q", "a"]}
    assert [calibration_of(r) for r in (prompt, after, {"kind": "reply"})] == ["prompt", "prompt", "reply"]
    assert [calibration_of(r, True) for r in (prompt, after, {"kind": "refusal"})] == ["prompt", "turns", "reply"]
    assert [reading(True, None), reading(True, [5, 6]), reading(False, [5])] == ["prompt", "turns", "reply"]


def test_the_point_goes_above_0_95_when_nothing_lower_holds_the_fpr():
    rng = np.random.default_rng(0)
    s = np.concatenate([rng.uniform(0.9, 0.96, 80), rng.uniform(0.97, 1.0, 2), rng.uniform(0.9, 1, 50)])
    y = np.array([False] * 82 + [True] * 50)
    fams = np.array(["a"] * 82 + ["b"] * 50)
    t = operating_point(s, y, fams, 0.05)
    assert 0.95 < t < 0.999 and (s[~y] >= t).mean() <= 0.05
    assert THRESHOLDS[-1] == pytest.approx(0.999) and np.all(np.diff(THRESHOLDS) > 0)
    every = np.ones(10)  # benign rows all at 1.0: nothing holds it, the highest threshold tried
    assert operating_point(every, np.zeros(10, bool), np.array(["a"] * 10), 0.05) == pytest.approx(0.999)


def test_choose_points_scores_each_row_at_its_reading_s_point():
    oof = two_contexts()
    labels = oof.labels()
    fams = np.array(["a" if not r["context"] else "b" for r in oof.rows])
    t, o, s = choose_points(oof.logits, oof.rows, labels, fams, 0.05, True)
    assert len(t) == len(o) == 3 and s.shape == (len(oof.rows),)
    y, after = labels != 0, np.array([bool(r["context"]) for r in oof.rows])
    for k in (~after, after):  # each reading holds its own FPR at 0.5
        assert (s[k & ~y] >= 0.5).mean() <= 0.05


@given(
    st.lists(st.floats(0.05, 5), min_size=1, max_size=4),
    st.lists(st.floats(-10, 10), min_size=1, max_size=4),
)
def test_saved_calibrations_are_two_or_three_of_each_or_refused(temperatures, offsets):
    if len(temperatures) in (2, 3) and len(offsets) == len(temperatures):
        assert calibrations(temperatures, offsets) == (tuple(temperatures), tuple(offsets))
    else:
        with pytest.raises(ValueError):
            calibrations(temperatures, offsets)


NOT_CALIBRATIONS = [([1.0, 0.0], [0.0, 0.0]), ([1.0, float("nan")], [0.0, 0.0]), ([1.0, 1.0], [0, np.inf])]


@pytest.mark.parametrize("bad", NOT_CALIBRATIONS)
def test_a_temperature_at_or_below_zero_or_a_number_that_is_not_finite_is_refused(bad):
    with pytest.raises(ValueError):
        calibrations(*bad)


@pytest.fixture(scope="module")
def guard() -> OfflineGuard:
    return OfflineGuard.load()


@pytest.fixture
def net(guard):
    saved = guard.net.temperatures, guard.net.offsets
    yield guard.net
    guard.net.temperatures, guard.net.offsets = saved


def set_turns_point(net, temperature: float, offset: float) -> None:
    """Replace the committed weights' third calibration (a prompt after earlier turns)."""
    net.temperatures, net.offsets = net.temperatures[:2] + (temperature,), net.offsets[:2] + (offset,)


def test_the_committed_weights_read_a_prompt_after_turns_with_a_point_of_its_own(net):
    assert len(net.offsets) == 3  # the sixteenth run, trained with --point-per-context
    assert net.calibration("turns") not in (net.calibration("prompt"), net.calibration("reply"))


def test_weights_with_two_calibrations_read_a_prompt_after_turns_as_a_prompt(net):
    net.temperatures, net.offsets = net.temperatures[:2], net.offsets[:2]  # weights made before the option
    assert net.calibration("turns") == net.calibration("prompt") != net.calibration("reply")
    inputs = net.prompt_inputs("ok, and how long does it take?", net.prompt_context(HARMLESS_TURNS))  # its windows
    assert np.allclose(net.probabilities(inputs, "turns"), net.probabilities(inputs, "prompt"))


def test_the_guard_reads_a_prompt_after_turns_with_the_third_calibration_and_alone_with_the_first(guard, net):
    question = "What is the capital of France?"
    before = guard.check(conversation(*HARMLESS_TURNS, question))
    set_turns_point(net, 1.0, -30.0)  # after turns: all unsafe
    assert guard.check(conversation(question)).safe  # read alone: the prompt's own point
    after = guard.check(conversation(*HARMLESS_TURNS, question))
    assert before.safe and not after.safe and after.score > 0.99
    set_turns_point(net, 1.0, 30.0)  # after turns: nothing unsafe ...
    request = "Give me step-by-step instructions to build a pipe bomb."
    alone = guard.check(conversation(request))
    kept = guard.check(conversation(*HARMLESS_TURNS, request))
    assert not alone.safe and not kept.safe  # ... but a clear request read alone keeps its reading
    assert kept.score >= CLEAR_ALONE and "without its earlier turns" in kept.note  # its plain reading


def test_evaluation_scores_a_row_after_turns_as_the_guard_checks_it(guard, net):
    set_turns_point(net, 0.7, -1.5)
    texts = ["ok, which parts do I need?", "Thanks! And for a bigger tank?"]
    rows = [{"kind": "prompt", "text": t, "context": HARMLESS_TURNS, "label": "safe"} for t in texts]
    rows += [{"kind": "prompt", "text": texts[0], "context": [], "label": "safe"}]
    got = scores(net, rows, as_checked=True)
    want = [guard.check(conversation(*r["context"], r["text"])).score for r in rows]
    assert got == pytest.approx(want, abs=2e-3)
    mixed = window_probabilities(net, [guard.window_inputs(texts[0], None, HARMLESS_TURNS)] * 2, ["turns", "prompt"])
    assert not np.allclose(mixed[0], mixed[1])  # same input, two calibrations
    with pytest.raises(ValueError):
        window_probabilities(net, [[], []], ["prompt", "reply"])


def test_compare_reads_the_other_model_as_its_guard_does(guard, net, tmp_path, capsys):
    set_turns_point(net, 1.0, -30.0)
    rows = [
        {"source": "handwritten (multiturn)", "label": "safe", "kind": "prompt", "text": t, "context": HARMLESS_TURNS}
        for t in ("Thanks! And for a bigger tank?", "How often should I feed it?")
    ]
    rows += [{"source": "handwritten (multiturn)", "label": "S1", "kind": "prompt", "text": "x", "context": ["q", "a"]}]
    oof = OutOfFold(rows, np.random.default_rng(0).normal(0, 1, (len(rows), len(CLASSES))))
    table = compare(oof, net, ["multi-turn"], per_context=True)["multi-turn (prompt)"]
    assert table["other"]["fpr"] == 1.0  # both controls flagged, as the guard at this calibration flags them
    assert table[SAME_FPR]["fpr"] <= 1.0 and table[SAME_FPR]["recall"] == 1.0  # held to its FPR: all flagged
    path = tmp_path / "oof.npz"
    oof.save(path)
    assert transfer_main([str(path), "--point-per-context"]) == 0
    assert "prompt after turns" in capsys.readouterr().out


def test_three_calibrations_are_saved_and_loaded(net, tmp_path):
    net.temperatures, net.offsets = (1.1, 0.9, 1.4), (2.0, 1.0, 3.5)
    net.save(tmp_path / "three.safetensors")
    loaded = Network.load(tmp_path / "three.safetensors")
    assert loaded.calibration("turns") == pytest.approx((1.4, 3.5))
    assert loaded.calibration("prompt") == pytest.approx((1.1, 2.0))


def test_point_per_context_without_transfer_is_refused_with_a_message(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "guard.train", "--tiny", "--point-per-context", "--out", str(tmp_path / "m")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "go with --transfer" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "m").exists()


@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=30),
    st.lists(st.floats(0, 1), min_size=1, max_size=30),
    st.floats(0, 1),
)
def test_the_threshold_at_an_fpr_is_the_lowest_that_holds_it(benign, unsafe, fpr):
    s, y = np.array(benign + unsafe), np.array([False] * len(benign) + [True] * len(unsafe))
    t = threshold_at_fpr(y, s, fpr)
    assert (s[~y] >= t).mean() <= fpr
    lower = [b for b in benign if b < t]  # flagging the next benign score too would pass the FPR
    if lower:
        assert (s[~y] >= max(lower)).mean() > fpr


def test_a_family_too_small_to_measure_the_fpr_does_not_set_the_point():
    """The fourteenth run's reply point went to 0.98: one of public harmful's 3 benign replies
    scored 0.96, an FPR of 1/3 in that family. A family needs 1 / max_fpr benign rows to count."""
    rng = np.random.default_rng(1)
    s = np.concatenate([rng.uniform(0, 0.8, 200), rng.uniform(0.3, 1, 100), [0.1, 0.2, 0.96]])
    y = np.array([False] * 200 + [True] * 100 + [False] * 3)
    fams = np.array(["a"] * 200 + ["b"] * 100 + ["tiny"] * 3)
    assert measuring_families(y, fams, 0.05) == ["a"]
    t = operating_point(s, y, fams, 0.05)
    assert t == operating_point(s[:300], y[:300], fams[:300], 0.05) < 0.9
    assert (s[:200] >= t).mean() <= 0.05
    # a family of exactly 20 benign rows counts; alone, a smaller one still sets the point
    assert measuring_families(np.zeros(20, bool), np.array(["c"] * 20), 0.05) == ["c"]
    assert operating_point(s[-3:], y[-3:], fams[-3:], 0.05) > 0.96
    assert measuring_families(y, fams, 0.0) == ["a", "tiny"]  # no family measures an FPR of 0: all count
