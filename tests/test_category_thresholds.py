"""Per-category thresholds: the policy file's [thresholds] table and --category-thresholds
(bad codes and values are one-line usage errors), a visitor who may lower one but never
raise it, and the turn that flags by a category's own threshold (moderation.thresholds).

The guard here is a fake of our own control flow: it scores a message by a table, names
the message's category, and flags at `score >= threshold` as every real guard does, so
the test sees which threshold the turn asked it at."""

from __future__ import annotations

import pytest
from test_turn import FakeChat

from guard.base import Guard
from guard.taxonomy import LLAMA_GUARD_2
from guard.verdict import Verdict
from moderation.policy import OperatorPolicy, SettingsRefused, VisitorChoices, turn_settings
from moderation.settings import parse_config
from moderation.thresholds import decide, floor
from moderation.turn import ANSWERED, REFUSED, run_turn

S1, S8, S10 = LLAMA_GUARD_2[0], LLAMA_GUARD_2[7], LLAMA_GUARD_2[9]


class ScoredGuard(Guard):
    """Scores a prompt by the first word it contains from `table` {word: (score, categories)};
    flags at score >= threshold like a real guard; records the thresholds it was asked at."""

    label, is_llama_guard, taxonomy = "scored fake", False, LLAMA_GUARD_2

    def __init__(self, table):
        self.table, self.asked = table, []

    def check(self, conversation, policy=None, threshold=0.5):
        self.asked.append(threshold)
        text = conversation[-1]["content"]
        score, categories = next((v for w, v in self.table.items() if w in text), (0.05, ()))
        unsafe = score >= threshold
        return Verdict(
            safe=not unsafe,
            categories=categories if unsafe else (),
            score=score,
            raw="unsafe" if unsafe else "safe",
            role="User",
            threshold=threshold,
        )


TABLE = {"fertilizer": (0.4, (S8,)), "punch": (0.4, (S1,)), "sad": (0.7, (S10,)), "both": (0.7, (S10, S1))}


def _turn(text: str, guard: Guard, operator: OperatorPolicy):
    settings = turn_settings(operator, VisitorChoices(), LLAMA_GUARD_2)
    return list(run_turn(guard, FakeChat(["Sure", ", here"]), [], text, settings))[-1]


@pytest.mark.parametrize(
    "text, outcome, codes",
    [
        ("fertilizer bomb", REFUSED, ["S8"]),  # 0.4 >= S8's own 0.3
        ("a punch", ANSWERED, []),  # 0.4 < the global 0.5 for S1
        ("so sad", ANSWERED, []),  # 0.7 < S10's own 0.8
        ("both", REFUSED, ["S1"]),  # S10 passes at 0.8, S1 does not at 0.5
    ],
)
def test_the_turn_flags_by_a_categorys_own_threshold(text, outcome, codes):
    operator = OperatorPolicy(threshold=0.5, thresholds={"S8": 0.3, "S10": 0.8})
    guard = ScoredGuard(TABLE)
    state = _turn(text, guard, operator)
    prompt = state.checks[0].verdict
    assert state.outcome == outcome
    assert [c.code for c in prompt.categories] == codes
    assert guard.asked[0] == 0.3  # the guard is asked at the lowest threshold in force


def test_without_category_thresholds_the_guard_is_asked_at_the_global_threshold():
    guard = ScoredGuard(TABLE)
    state = _turn("fertilizer", guard, OperatorPolicy(threshold=0.5))
    assert state.outcome == ANSWERED and guard.asked == [0.5, 0.5]


def test_a_safe_decision_says_which_category_stayed_below_its_threshold():
    verdict = Verdict(safe=False, categories=(S10,), score=0.7, raw="unsafe\nS10", threshold=0.3)
    decided = decide(verdict, 0.5, {"S10": 0.8})
    assert decided.safe and decided.categories == () and decided.threshold == 0.8
    assert "S10 below its threshold 0.8" in decided.note
    assert floor(0.5, {"S10": 0.8, "S8": 0.3}) == 0.3


def test_a_failed_verdict_stays_failed_whatever_the_thresholds():
    failed = Verdict(safe=False, parsed=False, error="boom")
    assert decide(failed, 0.5, {"S1": 0.9}) is failed


def test_a_visitor_may_lower_a_category_threshold_but_never_raise_it():
    operator = OperatorPolicy(threshold=0.5, thresholds={"S8": 0.3})
    lowered = turn_settings(operator, VisitorChoices(thresholds={"s8": 0.2, "S1": 0.4}), LLAMA_GUARD_2)
    assert lowered.category_thresholds == {"S8": 0.2, "S1": 0.4}
    with pytest.raises(SettingsRefused, match="S8 0.4 is above the operator's 0.3"):
        turn_settings(operator, VisitorChoices(thresholds={"S8": 0.4}), LLAMA_GUARD_2)
    with pytest.raises(SettingsRefused, match="S1 0.6 is above the operator's 0.5"):  # the global one stands for S1
        turn_settings(operator, VisitorChoices(thresholds={"S1": 0.6}), LLAMA_GUARD_2)
    with pytest.raises(SettingsRefused, match="not a category code"):
        turn_settings(operator, VisitorChoices(thresholds={"bad": 0.1}), LLAMA_GUARD_2)


def test_a_visitors_lower_global_threshold_caps_every_categorys():
    operator = OperatorPolicy(threshold=0.5, thresholds={"S8": 0.3, "S10": 0.8})
    settings = turn_settings(operator, VisitorChoices(threshold=0.2), LLAMA_GUARD_2)
    assert settings.threshold == 0.2 and settings.category_thresholds == {"S8": 0.2, "S10": 0.2}


def test_the_policy_file_and_the_flag_give_category_thresholds(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("threshold = 0.5\n\n[thresholds]\ns8 = 0.3\nS10 = 0.8\n")
    assert parse_config(["--policy", str(path)]).policy.category_thresholds == {"S8": 0.3, "S10": 0.8}
    flagged = parse_config(["--policy", str(path), "--category-thresholds", "S8=0.25"])
    assert flagged.policy.category_thresholds == {"S8": 0.25}  # the flag wins over the file, as for every key


@pytest.mark.parametrize(
    "table, why",
    [
        ("X8 = 0.3", "thresholds: 'X8' is not a category code"),
        ("S8 = 1.5", "thresholds: S8 must be a number from 0 to 1, not 1.5"),
        ("S8 = '0.3'", "thresholds: S8 must be a number from 0 to 1, not '0.3'"),
        ("S8 = true", "thresholds: S8 must be a number from 0 to 1, not True"),
        ("S15 = 0.3", "thresholds: no category S15"),
        ("C1 = 0.3", "thresholds: no category C1"),
    ],
)
def test_a_bad_category_threshold_is_one_line_and_exit_2(tmp_path, capsys, table, why):
    path = tmp_path / "policy.toml"
    path.write_text(f"[thresholds]\n{table}\n")
    with pytest.raises(SystemExit) as exit_:
        parse_config(["--policy", str(path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and why in err and len(err.strip().splitlines()) == 1


def test_a_malformed_flag_value_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_config(["--category-thresholds", "S8"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "CODE=NUMBER" in err and len(err.strip().splitlines()) == 1
