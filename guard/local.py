"""Llama Guard on a local transformers model: the unsafe score from one forward pass,
categories generated only when the verdict is unsafe, and the policy prefix's
key/value cache reused across checks.

The score is the probability of `unsafe` against `safe` for the first answer token:
sigmoid(logit_unsafe - logit_safe), the softmax restricted to the two answers the format
allows, rather than the model card's softmax over the whole vocabulary. Why: (1) it needs
two rows of the output projection instead of all 128,256, which would cost more than a
short conversation's own tokens; (2) an endpoint's top log-probabilities give the same
quantity (guard.remote), so local and remote scores mean the same thing; (3) it is a
proper probability even where mass leaks to other tokens (a quantised or random model).
Where nearly all the mass is on the two words, as the format trains it to be, the two
forms agree closely. The token ids are looked up in the tokenizer at load time
(Llama 3: safe 19193, unsafe 39257). The first token is then chosen by the threshold;
only when it is `unsafe` is the category line generated (greedy).

Every check also reads p(category | unsafe) (guard.category_scores): on a fork of the
cache it feeds `unsafe \n S` and reads the logits of the code numbers the prompt listed
("1" .. "11", one token each), again from those rows of the output projection only. The
fork leaves the check's own cache as it was (a session continues from it: guard.incremental).
"""

from __future__ import annotations

import inspect
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from compute import cpu, prepare
from guard.category_scores import code_tokens, prompt_codes
from guard.incremental import IncrementalSession, fork_cache
from guard.prompt import GuardPrompt, prompt_ids, token_ends
from weights import CONTEXT_WINDOW, context_window

MAX_CATEGORY_TOKENS = 16  # "\nS1,S2,S10" is a handful of tokens
MAX_CACHED_PREFIXES = 8  # one per (policy, role) in use
NOT_FINITE = "the model's unsafe score is not a number (overflow in float16? try --dtype bfloat16 or float32)"


@dataclass(frozen=True)
class Assessment:
    """What a backend read from the model: the unsafe score (None when not exposed), the
    answer text, a note for the verdict (e.g. why there is no score), and the logits of the
    first category code after `unsafe` ({prompt code: logit}, any constant offset; empty
    when not exposed: guard.category_scores)."""

    score: float | None
    raw: str
    note: str = ""
    code_logits: dict[str, float] = field(default_factory=dict, hash=False)


class LocalGuardModel:
    """A loaded Llama Guard (model + tokenizer). `assess` is thread-safe: the shared prefix
    caches are only ever read (each check continues from its own fork of them)."""

    remote = False

    def __init__(self, model, tokenizer, reuse_prefix: bool = True):
        self.model, self.tokenizer, self.reuse_prefix = model, tokenizer, reuse_prefix
        vocab = tokenizer.get_vocab()
        missing = [t for t in ("safe", "unsafe") if t not in vocab]
        if missing:
            raise ValueError(f"the tokenizer has no {' / '.join(missing)} token: this is not a Llama Guard tokenizer")
        self.safe_id, self.unsafe_id = vocab["safe"], vocab["unsafe"]
        eos = model.generation_config.eos_token_id
        self.stop_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) | {
            vocab[t] for t in ("<|eot_id|>", "<|end_of_text|>") if t in vocab
        }
        # transformers 5.2x calls the key/value cache argument `cache`; earlier, `past_key_values`
        self._cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._prefixes: OrderedDict[str, object] = OrderedDict()
        self._codes: dict[tuple[str, ...], tuple | None] = {}  # prompt codes -> code_tokens()
        self._lock = threading.Lock()
        prepare(model)  # beside the chat model: steady attention on CUDA, shared cores on a CPU

    @property
    def context_window(self) -> int:
        """The most tokens the model reads, prompt and answer together (guard.window)."""
        return context_window(self.model.config)

    def count(self, prompt: GuardPrompt) -> int:
        """How many ids the model reads for `prompt`: exactly those `first_step` feeds it."""
        prefix_ids, rest_ids = prompt_ids(self.tokenizer, prompt)
        return len(prefix_ids) + len(rest_ids)

    def token_ends(self, text: str) -> list[int]:
        """Where each token of a message's text ends (guard.window splits messages there)."""
        return token_ends(self.tokenizer, text)

    def _run(self, module, ids: list[int], cache=None, **kwargs):
        import torch  # heavy: loaded with a model, not with the package

        if cache is not None:
            kwargs[self._cache_arg] = cache
        return module(input_ids=torch.tensor([ids], device=self.model.device), use_cache=True, **kwargs)

    @staticmethod
    def _cache_of(out):
        cache = getattr(out, "cache", None)
        return cache if cache is not None else out.past_key_values

    def _forward(self, ids: list[int], cache=None):
        """Full logits of the last position, and the cache (used for category generation)."""
        out = self._run(self.model, ids, cache, logits_to_keep=1)
        return out.logits[0, -1].float(), self._cache_of(out)

    def _answer_logits(self, ids: list[int], cache=None):
        """Logits of `safe` and `unsafe` only, and the cache.

        The score needs two rows of the output projection, not all 128,256: reading the
        whole projection would cost more than the conversation's own tokens."""
        return self._logits_of(ids, cache, [self.safe_id, self.unsafe_id])

    def _logits_of(self, ids: list[int], cache, token_ids: list[int]):
        """Logits of `token_ids` at the last position after `ids`, and the cache."""
        head = self.model.get_output_embeddings()
        weight = getattr(head, "weight", None)
        if weight is None or getattr(head, "bias", None) is not None or not weight.is_floating_point():
            logits, cache = self._forward(ids, cache)  # quantised or unusual heads: the full projection
            return logits[token_ids], cache
        out = self._run(self.model.base_model, ids, cache)
        hidden = out.last_hidden_state[0, -1]
        rows = weight[token_ids].to(device=hidden.device, dtype=hidden.dtype)
        return (rows @ hidden).float(), self._cache_of(out)

    def code_logits(self, prompt: GuardPrompt, cache) -> dict[str, float]:
        """{prompt code: logit} of the first category code after `unsafe \n S`, read on a
        fork of `cache` (the check's input, left unchanged); {} when the prompt lists no
        codes or the tokenizer does not write each code's number as one token."""
        codes = tuple(prompt_codes(prompt.text))
        if codes not in self._codes:
            self._codes[codes] = code_tokens(self.tokenizer, self.unsafe_id, list(codes)) if codes else None
        found = self._codes[codes]
        if found is None:
            return {}
        forced, last = found
        logits, _ = self._logits_of([self.unsafe_id, *forced], fork_cache(cache), list(last.values()))
        return dict(zip(last, logits.tolist()))

    def _prefix_cache(self, prefix: str, ids: list[int]):
        """The key/value cache of the policy prefix: computed once, then copied per check."""
        with self._lock:
            cache = self._prefixes.get(prefix)
            if cache is None:
                cache = self._cache_of(self._run(self.model.base_model, ids))
                self._prefixes[prefix] = cache
                while len(self._prefixes) > MAX_CACHED_PREFIXES:
                    self._prefixes.popitem(last=False)
            self._prefixes.move_to_end(prefix)
        return fork_cache(cache)

    def first_step(self, prompt: GuardPrompt, reuse_prefix: bool | None = None):
        """Logits of (safe, unsafe) for the first answer token, and the cache to continue from."""
        prefix_ids, rest_ids = prompt_ids(self.tokenizer, prompt)
        if self.reuse_prefix if reuse_prefix is None else reuse_prefix:
            return self._answer_logits(rest_ids, self._prefix_cache(prompt.prefix, prefix_ids))
        return self._answer_logits(prefix_ids + rest_ids)

    def assess(self, prompt: GuardPrompt, threshold: float, reuse_prefix: bool | None = None) -> Assessment:
        import torch  # heavy: loaded with a model, not with the package

        with torch.inference_mode(), cpu.running(self.model):
            logits, cache = self.first_step(prompt, reuse_prefix)
            return self.conclude(logits, cache, threshold, prompt)

    def conclude(self, logits, cache, threshold: float, prompt: GuardPrompt) -> Assessment:
        """The assessment from the first answer token's (safe, unsafe) logits and the code
        logits after `unsafe` (`code_logits`, on a fork of `cache`); when unsafe, the
        categories are generated by continuing `cache` (which then grows)."""
        import torch  # heavy: loaded with a model, not with the package

        with torch.inference_mode():
            score = torch.sigmoid(logits[1] - logits[0]).item()
            if not math.isfinite(score):
                raise FloatingPointError(f"{NOT_FINITE} (logits {logits.tolist()})")
            codes = self.code_logits(prompt, cache)
            if score < threshold:
                return Assessment(score, "safe", code_logits=codes)
            return Assessment(score, "unsafe" + self._continue(cache, self.unsafe_id), code_logits=codes)

    def session(self):
        """An `assess` for one turn's checks that reuses the previous check's cache up to
        the common token prefix (guard.incremental)."""
        return IncrementalSession(self)

    def _continue(self, cache, token: int) -> str:
        """Greedy decoding after the forced first token, until end of turn."""
        out_ids: list[int] = []
        for _ in range(MAX_CATEGORY_TOKENS):
            logits, cache = self._forward([token], cache)
            token = int(logits.argmax())
            if token in self.stop_ids:
                break
            out_ids.append(token)
        return self.tokenizer.decode(out_ids, skip_special_tokens=True)


class TokenizerOnly:
    """The tokenizer of a guard without its weights: enough to render and tokenize a prompt
    (`python -m guard --print-prompt/--print-ids`), not to judge one."""

    remote = False
    context_window = CONTEXT_WINDOW  # Llama 3's; nothing is judged here anyway
    count, token_ends = LocalGuardModel.count, LocalGuardModel.token_ends

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def assess(self, prompt: GuardPrompt, threshold: float) -> Assessment:
        raise RuntimeError("this guard was loaded without its weights (prompt only)")
