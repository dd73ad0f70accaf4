"""The forward pass of padded guard checks (guard.batch), eager or compiled.

    forward = compiled_forward(model.base_model, "past_key_values")
    hidden, pairs = forward(padded)   # last hidden states, [(keys, values)] per layer

The compiled one is `torch.compile` of the same pass with static shapes (guard.batch
buckets them: batch, cache and new lengths), so a shape compiles once and is then reused;
on CUDA in "reduce-overhead" mode (CUDA graphs: one launch for the whole pass instead of
one per kernel from Python). It reads only hidden states; the caller projects the few
head rows it needs (the safe/unsafe logits, the code logits), never the whole vocabulary.
"""

from __future__ import annotations

from guard.batch import Padded, make_cache

RECOMPILE_LIMIT = 64  # distinct shapes one process may compile (buckets keep them few)


def padded_forward(base_model, cache_arg: str, padded: Padded):
    """(last hidden states (batch, new, hidden), [(keys, values)] per layer) of a padded pass."""
    return _forward(base_model, cache_arg, *_tensors(padded))


def _tensors(padded: Padded) -> tuple:
    """A padded pass's inputs in _forward's order."""
    return padded.input_ids, padded.attention_mask, padded.position_ids, padded.cache_position, padded.past


def _forward(base_model, cache_arg, input_ids, attention_mask, position_ids, cache_position, past):
    kwargs = {cache_arg: make_cache(past)} if past else {}
    out = base_model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        cache_position=cache_position,
        use_cache=True,
        **kwargs,
    )
    cache = getattr(out, "cache", None)
    cache = cache if cache is not None else out.past_key_values
    return out.last_hidden_state, [(layer.keys, layer.values) for layer in cache.layers]


def compiled_forward(base_model, cache_arg: str):
    """`padded_forward` compiled for static shapes. CUDA graphs reuse their output memory:
    the caller copies what it keeps before the next pass (guard.batch.run_padded does)."""
    import torch  # heavy: loaded with a model, not with guard

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    on_cuda = next(base_model.parameters()).device.type == "cuda"
    compiled = torch.compile(_forward, dynamic=False, mode="reduce-overhead" if on_cuda else None)

    def forward(padded: Padded):
        if on_cuda:
            torch.compiler.cudagraph_mark_step_begin()
        return compiled(base_model, cache_arg, *_tensors(padded))

    return forward
