"""Incremental Llama Guard checks within one turn: each check reuses the key/value cache of
the previous check's input up to their longest common token prefix, and runs only the rest.

While a reply streams, check k judges the conversation with the reply so far; check k+1
differs only from where the reply grew, and then in the closing instruction:

    check k:    [policy prefix][User: ...][Agent: Paris is the][<END CONVERSATION> ... [/INST]]
    check k+1:  [policy prefix][User: ...][Agent: Paris is the capital of][<END CONVERSATION> ...]
                 \\______________ common tokens: cache kept _______/ \\__ run: new reply tokens + tail __/

So the cache is cropped (`DynamicCache.crop`) to the common prefix and only the new reply
tokens and the fixed tail are computed. The comparison is on token ids, not text, so a
split inside a word (BPE merges the last reply token differently once the word is whole)
is handled: the common prefix simply ends one token earlier. The score is that of a full
check (tests: within 1e-4 in float32). The first check of a session, or one whose input
shares less with the previous than with the policy prefix (the User-side prompt check
before Agent-side reply checks), starts from the backend's shared policy-prefix cache.

    session = backend.session()         # one per turn; LlamaGuard.session() wraps it
    session.assess(prompt_k, threshold)   # full cost (from the policy prefix)
    session.assess(prompt_k1, threshold)  # new tokens + tail only

A session is meant for one turn's checks, which run one after another. If two overlap (a
check abandoned at its deadline is still running), the second runs as an ordinary
cached-prefix check and leaves the session's state alone.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import replace

from guard.prompt import prompt_ids


def common_prefix_length(a: list[int], b: list[int]) -> int:
    """How many leading ids `a` and `b` share.

    >>> common_prefix_length([1, 2, 3, 4], [1, 2, 5])
    2
    """
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def crop_cache(cache, length: int) -> None:
    """Keep the first `length` positions of `cache`.

    A negative argument to `crop` means "remove that many" in every transformers 5 release
    (newer ones reject a positive one; older ones read it as the length to keep)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


def fork_cache(cache):
    """A cache that continues from `cache` without changing it, for one check.

    A DynamicLayer grows by `torch.cat` and rebinds its tensors, never writing into them,
    so new layer objects that share the prefix tensors are enough: O(layers), no copy of
    the prefix's keys and values. Any other kind of cache is deep-copied."""
    from transformers.cache_utils import DynamicLayer  # heavy: loaded with a local model, not with guard

    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        return copy.deepcopy(cache)
    fork = copy.copy(cache)
    fork.layers = [copy.copy(layer) for layer in layers]
    return fork


class IncrementalSession:
    """`assess(prompt, threshold)` like the backend's, keeping the last input's cache."""

    remote = False

    def __init__(self, backend):
        self.backend = backend
        self._ids: list[int] = []  # the last check's input ids (without the answer)
        self._cache = None  # its key/value cache, exactly len(self._ids) positions
        self._busy = threading.Lock()
        self.reused_tokens = 0  # what the last check took from the cache (for tests and benches)

    def __getattr__(self, name: str):
        """Everything else (context window, token counting, ...) is the backend's."""
        if name == "backend":
            raise AttributeError(name)
        return getattr(self.backend, name)

    def assess(self, prompt, threshold: float):
        if not self._busy.acquire(blocking=False):
            return self.backend.assess(prompt, threshold)
        try:
            return self._assess(prompt, threshold)
        finally:
            self._busy.release()

    def _assess(self, prompt, threshold: float):
        import torch  # heavy: loaded with a local model, not with guard

        backend = self.backend
        prefix_ids, rest_ids = prompt_ids(backend.tokenizer, prompt)
        ids = prefix_ids + rest_ids
        # At least the last token runs: its hidden state gives the score.
        common = min(common_prefix_length(self._ids, ids), len(ids) - 1)
        self._ids, cache, self._cache = [], self._cache, None  # nothing stale if the forward fails
        with torch.inference_mode(), backend.computing():
            if cache is not None and common > (len(prefix_ids) if backend.reuse_prefix else 0):
                crop_cache(cache, common)
            elif backend.reuse_prefix:
                common, cache = len(prefix_ids), backend._prefix_cache(prompt.prefix, prefix_ids)
            else:
                common, cache = 0, None
            step = backend.step(prompt, ids[common:], cache)
            self._ids, self._cache, self.reused_tokens = ids, step.cache, common
            # category generation grows the cache past the input: it continues on a fork
            return backend.conclude(replace(step, cache=fork_cache(step.cache)), threshold)
