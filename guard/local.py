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

Every check also reads p(category | unsafe) (guard.category_scores) in the same forward
pass: the input is followed by the answer head `unsafe \n S`, and the code numbers the
prompt listed ("1" .. "11", one token each) are read at its last position, again from those
rows of the output projection only. Causal attention keeps the input's positions blind to
the head, so the score is what it would be without it; the head is then cropped off the
cache (a session continues from it: guard.incremental). Every verdict carries these scores
(the API's category_scores, the log, the panel, per-category thresholds), so they are read
on every check; folded into its one pass they cost three more positions, not a second step.

Checks can share a pass (guard.batch: `batch`, up to that many checks padded together,
each waiting at most `batch_wait_s` for the others; default 8 on a CUDA GPU, else none),
and the pass can be compiled (`compile`: guard.compiled, static shapes per length bucket).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from compute import cpu, prepare
from guard.batch import CheckBatcher, Row, run_padded
from guard.category_scores import code_tokens, prompt_codes
from guard.compiled import compiled_forward, padded_forward
from guard.incremental import IncrementalSession, crop_cache, fork_cache
from guard.prompt import GuardPrompt, prompt_ids, token_ends
from weights import CONTEXT_WINDOW, context_window

MAX_CATEGORY_TOKENS = 16  # "\nS1,S2,S10" is a handful of tokens
MAX_CACHED_PREFIXES = 8  # one per (policy, role) in use
DEFAULT_CUDA_BATCH = 8  # checks in one pass at most, on a CUDA GPU (on a CPU: 1, no batching)
MAX_PASS_TOKENS = 8192  # a pass's new tokens, padding included, when it holds more than one check
DEFAULT_BATCH_WAIT_S = 0.002  # how long a check waits for others to share its pass
NOT_FINITE = "the model's unsafe score is not a number (overflow in float16? try --dtype bfloat16 or float32)"


@dataclass
class FirstStep:
    """What a check's one forward pass gives: the first answer token's (safe, unsafe)
    logits, the code logits after `unsafe \\n S` ({prompt code: logit}) and the cache of
    the input (without the answer head)."""

    logits: object
    code_logits: dict[str, float]
    cache: object


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

    def __init__(
        self,
        model,
        tokenizer,
        reuse_prefix: bool = True,
        compile: bool = False,
        batch: int | None = None,
        batch_wait_s: float = DEFAULT_BATCH_WAIT_S,
    ):
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
        self._head = self._head_weight()
        self.compiled = False  # True: checks run a compiled forward (guard.compiled)
        self.batcher = self._batcher(compile, batch, batch_wait_s)

    def _batcher(self, compile: bool, batch: int | None, wait_s: float) -> CheckBatcher | None:
        """The worker that runs checks as padded passes (guard.batch), or None: each check
        runs in its caller's thread. Batching needs a head whose rows can be read; a
        compiled forward always runs on the worker (one thread: CUDA graphs are per thread)."""
        if batch is None:
            batch = DEFAULT_CUDA_BATCH if self.model.device.type == "cuda" else 1
        if batch < 1:
            raise ValueError(f"guard batch must be at least 1, not {batch}")
        if self._head is None or (batch == 1 and not compile):
            return None
        self.compiled = compile
        forward = compiled_forward(self.model.base_model, self._cache_arg) if compile else None
        return CheckBatcher(
            lambda rows: self._run_rows(rows, forward), batch, wait_s, lambda row: len(row.ids), MAX_PASS_TOKENS
        )

    def _run_rows(self, rows: list[Row], forward=None) -> list:
        """One padded pass over `rows` (guard.batch.run_padded), eager or `forward` (compiled)."""
        import torch  # heavy: loaded with a model, not with the package

        with torch.inference_mode(), cpu.running(self.model):
            return run_padded(
                forward or self._eager_padded,
                rows,
                self.model.device,
                static=forward is not None,
                max_batch=self.batcher.max_batch if self.batcher else len(rows),
            )

    def _eager_padded(self, padded):
        """The last hidden states and [(keys, values)] per layer of a padded pass (guard.batch)."""
        return padded_forward(self.model.base_model, self._cache_arg, padded)

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

    def _head_weight(self):
        """The output projection's weight, when its rows can be read one by one (else None:
        a quantised or unusual head, whose full logits are computed instead)."""
        head = self.model.get_output_embeddings()
        weight = getattr(head, "weight", None)
        if weight is None or getattr(head, "bias", None) is not None or not weight.is_floating_point():
            return None
        return weight

    def _project(self, hidden, token_ids: list[int]):
        """Logits of `token_ids` from one position's hidden state: those rows of the head only."""
        rows = self._head[token_ids].to(device=hidden.device, dtype=hidden.dtype)
        return (rows @ hidden).float()

    def _answer_head(self, prompt: GuardPrompt) -> tuple[list[int], list[str], list[int]]:
        """(ids fed after the input to read the code logits: `unsafe \n S`, the prompt's codes,
        the token naming each); all empty when the prompt lists no codes or the tokenizer
        does not write each code's number as one token (guard.category_scores)."""
        codes = tuple(prompt_codes(prompt.text))
        if codes not in self._codes:
            self._codes[codes] = code_tokens(self.tokenizer, self.unsafe_id, list(codes)) if codes else None
        found = self._codes[codes]
        if found is None:
            return [], [], []
        forced, last = found
        return [self.unsafe_id, *forced], list(last), list(last.values())

    def step(self, prompt: GuardPrompt, ids: list[int], cache=None) -> FirstStep:
        """One forward pass over `ids` (after `cache`) and the answer head `unsafe \n S`:
        the first answer token's (safe, unsafe) logits at the input's last position, the code
        logits at the head's last, and the cache of `ids` alone. Causal attention keeps the
        input's positions blind to the head, so both read what two steps would."""
        tail, codes, code_ids = self._answer_head(prompt)
        if self.batcher is not None:
            hidden, cache = self.batcher.submit(Row(cache, ids + tail, (len(tail), 0), len(ids)))
            answer, code = self._project(hidden[0], [self.safe_id, self.unsafe_id]), self._project(hidden[1], code_ids)
        elif self._head is None:
            out = self._run(self.model, ids + tail, cache, logits_to_keep=len(tail) + 1)
            logits = out.logits[0].float()
            answer, code = logits[0, [self.safe_id, self.unsafe_id]], logits[-1, code_ids]
        else:
            out = self._run(self.model.base_model, ids + tail, cache)
            hidden = out.last_hidden_state[0]
            answer = self._project(hidden[-1 - len(tail)], [self.safe_id, self.unsafe_id])
            code = self._project(hidden[-1], code_ids)
        if self.batcher is None:
            cache = self._cache_of(out)
            crop_cache(cache, cache.get_seq_length() - len(tail))
        return FirstStep(answer, dict(zip(codes, code.tolist())), cache)

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

    def first_step(self, prompt: GuardPrompt, reuse_prefix: bool | None = None) -> FirstStep:
        """The check's one forward pass (`step`), from the cached policy prefix or from nothing."""
        prefix_ids, rest_ids = prompt_ids(self.tokenizer, prompt)
        if self.reuse_prefix if reuse_prefix is None else reuse_prefix:
            return self.step(prompt, rest_ids, self._prefix_cache(prompt.prefix, prefix_ids))
        return self.step(prompt, prefix_ids + rest_ids)

    def assess(self, prompt: GuardPrompt, threshold: float, reuse_prefix: bool | None = None) -> Assessment:
        import torch  # heavy: loaded with a model, not with the package

        with torch.inference_mode(), self.computing():
            return self.conclude(self.first_step(prompt, reuse_prefix), threshold)

    def computing(self):
        """Around a check in its caller's thread: counted as a computation on the CPU
        (compute.cpu), unless its pass runs on the batch worker, which counts itself."""
        return cpu.running(self.model) if self.batcher is None else contextlib.nullcontext()

    def conclude(self, step: FirstStep, threshold: float) -> Assessment:
        """The assessment from a first step; when unsafe, the categories are generated by
        continuing `step.cache` (which then grows)."""
        import torch  # heavy: loaded with a model, not with the package

        with torch.inference_mode():
            score = torch.sigmoid(step.logits[1] - step.logits[0]).item()
            if not math.isfinite(score):
                raise FloatingPointError(f"{NOT_FINITE} (logits {step.logits.tolist()})")
            if score < threshold:
                return Assessment(score, "safe", code_logits=step.code_logits)
            # the caller's `computing()` counts it, except beside the batch worker
            with cpu.running(self.model) if self.batcher is not None else contextlib.nullcontext():
                raw = "unsafe" + self._continue(step.cache, self.unsafe_id)
            return Assessment(score, raw, code_logits=step.code_logits)

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
