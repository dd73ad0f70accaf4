"""Compiled decoding for a local chat model: static KV caches in a few length buckets, and
the decoding step compiled by transformers' own `generate` (torch.compile, mode
"reduce-overhead" on CUDA: the step is replayed as a CUDA graph instead of hundreds of
kernel launches from Python).

    decoding = CompiledDecoding(model, context_window=8192)
    decoding.buckets                       # (1024, 4096, 8192): cache lengths, one shape each
    model.generate(..., **decoding.kwargs(needed=prompt + max_new_tokens))
                                           # {"cache": <this thread's StaticCache of the
                                           #  smallest bucket that holds it, emptied>,
                                           #  "compile_config": ...}; {} above the largest

Why buckets: a static cache's length is the attention's key length at every step, so each
bucket is one shape. After the first bucket, torch.compile makes the length dynamic and
the others reuse that graph (two compilations in all); `warm_up` runs one short reply per
bucket so every compilation, and every CUDA graph recording, happens before a visitor's
first turn. A reply longer than the largest bucket (`MAX_COMPILED_TOKENS`) decodes eagerly.

Why one cache per bucket per thread: CUDA graphs replay fixed memory addresses and torch
keeps them per thread (cudagraph trees), so each generation thread reuses its own caches:
the graphs it recorded at warm-up stay valid, and concurrent replies never share a cache.
A fresh cache per reply, as `generate(cache_implementation="static")` makes, would record
new graphs for every reply.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off")
FIRST_BUCKET = 1024  # tokens, prompt and reply together
BUCKET_GROWTH = 4  # each bucket this many times the one before (fewer compilations, little padding)
MAX_COMPILED_TOKENS = 8192  # the largest bucket: 1 GiB of cache per thread for the Llama 3 8B shape


def buckets_for(context_window: int) -> tuple[int, ...]:
    """Cache lengths from FIRST_BUCKET up, each BUCKET_GROWTH times the last, the last the
    context window (at most MAX_COMPILED_TOKENS): buckets_for(8192) -> (1024, 4096, 8192),
    buckets_for(2048) -> (1024, 2048), buckets_for(300) -> (300,)."""
    top = min(context_window, MAX_COMPILED_TOKENS)
    sizes, size = [], FIRST_BUCKET
    while size < top:
        sizes.append(size)
        size *= BUCKET_GROWTH
    return (*sizes, top)


def wanted(mode: str, device_type: str) -> bool:
    """Whether to compile at all: 'on' always, 'off' never, 'auto' on CUDA only (and there
    only if `CompiledDecoding.faster` measures it faster)."""
    if mode not in MODES:
        raise ValueError(f"compile must be one of {', '.join(MODES)}, not {mode!r}")
    return mode == "on" or (mode == "auto" and device_type == "cuda")


class CompiledDecoding:
    """The static caches and compile settings of one model's compiled decoding."""

    def __init__(self, model, context_window: int, buckets: tuple[int, ...] | None = None):
        from transformers import CompileConfig  # heavy: loaded with a model, not with the package

        self.model = model
        self.buckets = buckets or buckets_for(context_window)
        cuda = model.device.type == "cuda"
        # On CUDA, CUDA graphs ("reduce-overhead"); elsewhere plain inductor kernels.
        self.compile_config = CompileConfig(mode="reduce-overhead" if cuda else "default")
        self.compile_config._compile_all_devices = not cuda  # generate compiles on CUDA only, unless told
        self._local = threading.local()  # per thread: {bucket: StaticCache}

    def bucket(self, needed: int) -> int | None:
        """The smallest bucket of at least `needed` tokens; None above the largest."""
        return next((b for b in self.buckets if b >= needed), None)

    def kwargs(self, needed: int) -> dict:
        """`generate` arguments for a reply of `needed` tokens (prompt and new) on this
        thread: its emptied static cache of the right bucket, and the compile settings; {}
        (eager, a dynamic cache) when no bucket holds it."""
        size = self.bucket(needed)
        if size is None:
            return {}
        return {"cache": self._cache(size), "compile_config": self.compile_config}

    def _cache(self, size: int):
        """This thread's cache of `size` tokens, emptied. Made and emptied in inference mode,
        as generation runs, so its tensors are always of one kind (a compiled step guards on
        that: a cache made outside would recompile it)."""
        import torch  # heavy: loaded with a model, not with the package
        from transformers import StaticCache  # heavy: loaded with a model, not with the package

        caches = self._local.__dict__.setdefault("caches", {})
        with torch.inference_mode():
            if size not in caches:
                caches[size] = StaticCache(config=self.model.config, max_cache_len=size)
            else:
                caches[size].reset()
        return caches[size]

    def warm_up(self, generate: Callable[[dict, int], int], say: Callable[[str], None] = lambda _: None) -> None:
        """Compile and record every bucket on the calling thread: `generate(kwargs, new)`
        runs one greedy reply of up to `new` tokens with those `generate` arguments and
        returns how many it made; `say`
        hears what is being done."""
        for i, size in enumerate(self.buckets, 1):
            say(f"{size:,}-token cache, {i} of {len(self.buckets)}")
            t0 = time.perf_counter()
            generate(self.kwargs(size), 4)  # CUDA graphs: a warm-up run, a recording, then replays
            log.info("decoding warmed up for a %d-token cache in %.1f s", size, time.perf_counter() - t0)

    def rates(self, generate: Callable[[dict, int], int], tokens: int = 32) -> dict[str, float]:
        """Tokens/s of a greedy reply of `tokens` new tokens, eager and compiled, each timed
        on its second run (after `warm_up`): {"eager": 41.0, "compiled": 180.2}."""
        ways = {"eager": dict, "compiled": lambda: self.kwargs(self.buckets[0])}
        out = {}
        for name, kwargs in ways.items():
            generate(kwargs(), tokens)  # unmeasured: eager's first run warms its own kernels up
            t0 = time.perf_counter()
            made = generate(kwargs(), tokens)
            out[name] = round(made / (time.perf_counter() - t0), 1)
        return out
