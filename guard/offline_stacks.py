"""Several runs in one offline guard: the runs' top layers over the same frozen encoder.

Runs that tune the same top layers of the same encoder share every layer below them. So
one guard can hold several: a check runs the frozen lower layers once, then each run's top
layers (a Stack) and heads after them, and averages the heads' raw logits; the guard's own
temperatures and offsets then calibrate the mean (chosen on the runs' joined held-out
logits, guard.training.ensemble). Saved in one file: the first run's tensors under their
usual names, each further run's under "member<k>.", and metadata "members".

    python -m guard.training.ensemble A.safetensors B.safetensors --figures AB.json --out AB.safetensors
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from guard.offline_model import Network, pad

PREFIX = "member{}."


@dataclass
class Stack:
    """One run's tuned top layers and its two heads (torch modules)."""

    layers: object
    prompt_head: object
    reply_head: object


def first_tuned(net: Network) -> int:
    """The index of the network's first tuned encoder layer."""
    return net.model.config.num_hidden_layers - net.tuned


def own_stack(net: Network) -> Stack:
    """A network's own tuned layers and heads, as a Stack (the modules themselves, not copies)."""
    import torch  # heavy: loaded with a model, not with the package

    return Stack(torch.nn.ModuleList(net.model.encoder.layer[first_tuned(net) :]), net.prompt_head, net.reply_head)


def stack_of(net: Network) -> Stack:
    """A copy of a network's tuned layers and heads (a further run's place to load into)."""
    return copy.deepcopy(own_stack(net))


def joined(nets: list[Network]) -> Network:
    """The first network holding every network's stack (its own first). The networks must
    share their encoder and how they read (tuned layers, judging window, turns, pooling);
    ValueError otherwise."""
    first = nets[0]
    for other in nets[1:]:
        mine = (first.encoder, first.tuned, first.window, first.reads_turns, first.pool_text)
        theirs = (other.encoder, other.tuned, other.window, other.reads_turns, other.pool_text)
        if mine != theirs:
            raise ValueError(f"runs that read otherwise cannot share a guard: {mine} != {theirs}")
    if first.pool_text:
        raise ValueError("a guard of several runs pools the whole input: not for --pool-text weights")
    first.stacks = [own_stack(first)] + [stack_of(net) for net in nets[1:]]
    return first


def stacks_state(net: Network) -> dict:
    """The further runs' tensors (the first run's are the network's own, Network.tuned_state)."""
    first, state = first_tuned(net), {}
    for k, stack in enumerate(net.stacks[1:], 1):
        prefix = PREFIX.format(k)
        for name, value in stack.layers.state_dict().items():
            index, rest = name.split(".", 1)
            state[f"{prefix}encoder.layer.{first + int(index)}.{rest}"] = value
        state.update({f"{prefix}prompt_head.{n}": v for n, v in stack.prompt_head.state_dict().items()})
        state.update({f"{prefix}reply_head.{n}": v for n, v in stack.reply_head.state_dict().items()})
    return state


def load_stacks(net: Network, state: dict, members: int) -> None:
    """Give a loaded network (its own run in place) the further runs saved in `state`."""
    first = first_tuned(net)
    net.stacks = [own_stack(net)]
    for k in range(1, members):
        prefix = PREFIX.format(k)
        mine = {n[len(prefix) :]: v for n, v in state.items() if n.startswith(prefix)}
        if not mine:
            raise ValueError(f"the weights name {members} runs but hold no tensors for run {k + 1}")
        stack = stack_of(net)
        layers = {}
        for name, value in mine.items():
            if name.startswith("encoder.layer."):
                index, rest = name[len("encoder.layer.") :].split(".", 1)
                layers[f"{int(index) - first}.{rest}"] = value
        stack.layers.load_state_dict(layers)
        for name in ("prompt_head", "reply_head"):
            head = {n.split(".", 1)[1]: v for n, v in mine.items() if n.startswith(name + ".")}
            getattr(stack, name).load_state_dict(head)
        net.stacks.append(stack)


def stacked_logits(net: Network, inputs, side: str) -> np.ndarray:
    """The mean of every stack's raw head logits, the lower layers run once (called by
    Network.logits under its lock, in inference mode)."""
    import torch  # heavy: loaded with a model, not with the package

    ids, types, mask = pad(inputs)
    model, full = net.model, net.model.encoder.layer
    model.encoder.layer = torch.nn.ModuleList(full[: first_tuned(net)])
    try:
        hidden = model(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
    finally:
        model.encoder.layer = full
    extended = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    m = mask.unsqueeze(-1).to(hidden.dtype)
    out = []
    for stack in net.stacks:
        h = hidden
        for layer in stack.layers:
            h = layer(h, attention_mask=extended)
        head = stack.reply_head if side == "reply" else stack.prompt_head
        out.append(head((h * m).sum(1) / m.sum(1).clamp(min=1e-9)).numpy())
    return np.mean(out, axis=0)
