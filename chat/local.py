"""Streaming replies from a local transformers model.

Each `stream` call gets its own token pipe (chat.streamer), and its generation runs on a
thread of its own, taken from the model's kept generation threads (chat.workers), so
concurrent calls never share tokens. The generation is tied to the call: a stop event,
an error, or a consumer that stops iterating sets `halt`, which a stopping criterion
checks after every decoding step. Before it returns, the call waits up to `join_timeout_s`
(10 s) for the generation to end; one still running then is logged and left to finish on
its own thread (`generating` counts those still running).

`compile(mode)`, once after loading, may switch decoding to static caches and a compiled
step (chat.compiled); it warms up on the generation threads, so a reply never compiles.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence

from chat.backend import ChatBackend, ChatError, Fitted, GenerationSettings, Message
from chat.compiled import CompiledDecoding, wanted
from chat.context import fit_messages
from chat.sampling import own_sampler
from chat.streamer import IncrementalText, TokenPipe
from chat.workers import GenerationThreads
from compute import cpu, prepare
from weights import context_window
from weights.specials import defuse_messages, special_strings

log = logging.getLogger(__name__)
LLAMA3_EOT = "<|eot_id|>"


def stop_token_ids(model, tokenizer) -> list[int]:
    """The model's EOS ids plus `<|eot_id|>` where the vocabulary has it (Llama 3 ends
    a turn with it; its model card passes both as eos_token_id)."""
    ids: list[int] = []
    for value in (
        model.generation_config.eos_token_id,
        tokenizer.eos_token_id,
        tokenizer.convert_tokens_to_ids(LLAMA3_EOT) if LLAMA3_EOT in tokenizer.get_vocab() else None,
    ):
        for i in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(i, int) and i >= 0 and i not in ids:
                ids.append(i)
    return ids


def _halting_criteria(*events: threading.Event | None):
    """Ends generation after the decoding step in which any of the events is set.

    Per step it only reads the events and returns one of two tensors made at the first
    step (no allocation or copy to the device per token)."""
    from transformers import StoppingCriteria, StoppingCriteriaList  # heavy: loaded with a model, not with the package

    events = tuple(e for e in events if e is not None)

    class Halt(StoppingCriteria):
        answers: dict = {}

        def __call__(self, input_ids, scores, **kwargs):
            import torch  # heavy: loaded with a model, not with the package

            halted = any(e.is_set() for e in events)
            key = (halted, input_ids.shape[0], input_ids.device)
            if key not in self.answers:
                self.answers[key] = torch.full((input_ids.shape[0],), halted, dtype=torch.bool, device=input_ids.device)
            return self.answers[key]

    return StoppingCriteriaList([Halt()])


class LocalChat(ChatBackend):
    """A transformers causal LM behind the chat interface."""

    def __init__(self, model, tokenizer, label: str, join_timeout_s: float = 10.0):
        if not tokenizer.chat_template:
            raise ChatError(f"{label} has no chat template: use an instruct/chat model.")
        self.model, self.tokenizer, self.label = model, tokenizer, label
        self.context_window = context_window(model.config)
        self.stop_ids = stop_token_ids(model, tokenizer)
        self.special_strings = special_strings(tokenizer)
        self.join_timeout_s = join_timeout_s
        self.workers = GenerationThreads()  # closed by close(): the app's, when its server stops
        self.compiled: CompiledDecoding | None = None  # set by compile(): None decodes eagerly
        prepare(model)  # beside the guard: steady attention on CUDA, shared cores on a CPU

    def close(self) -> None:
        """End the kept generation threads (a generation still running finishes first);
        a `stream` after this raises ChatError."""
        self.workers.close()

    @property
    def generating(self) -> int:
        """Generations running now (each ends soon after its `stream` call returns)."""
        return self.workers.busy

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """Token ids from the model's own chat template, with the assistant header; special
        tokens typed in a message stay text (weights.specials)."""
        out = self.tokenizer.apply_chat_template(
            defuse_messages(messages, self.special_strings), add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(out["input_ids"])

    def fit(self, messages: Sequence[Message], settings: GenerationSettings) -> Fitted:
        return self._fit(messages, settings)[0]

    def _fit(self, messages: Sequence[Message], settings: GenerationSettings) -> tuple[Fitted, list[int]]:
        """The fitted messages and their prompt ids: every render is kept by its length, so
        the one returned needs no second tokenization."""
        rendered: dict[int, list[int]] = {}

        def count(candidate: list[Message]) -> int:
            rendered[len(candidate)] = self.prompt_ids(candidate)
            return len(rendered[len(candidate)])

        fitted = fit_messages(messages, count, self.context_window, settings.max_new_tokens, self.message_tokens)
        ids = rendered.get(len(fitted.messages))
        return fitted, ids if ids is not None else self.prompt_ids(fitted.messages)

    def message_tokens(self, messages: Sequence[Message]) -> list[int]:
        """Tokens of each message's own text (defused, stripped as the template does), in
        one batched tokenizer call: what the chat template adds around them is not counted."""
        texts = [m["content"].strip() for m in defuse_messages(messages, self.special_strings)]
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def generate_kwargs(self, settings: GenerationSettings) -> dict:
        """Keyword arguments for `model.generate`, fresh for each call. Decoding is greedy;
        with temperature > 0 the call's own sampler (chat.sampling) picks every token."""
        from transformers import LogitsProcessorList  # heavy: loaded with a model, not with the package

        kwargs = dict(
            max_new_tokens=int(settings.max_new_tokens),
            do_sample=False,
            eos_token_id=self.stop_ids,
            pad_token_id=self.stop_ids[0] if self.stop_ids else None,
            repetition_penalty=float(settings.repetition_penalty),
            temperature=None,
            top_p=None,
            top_k=None,
        )  # no warpers of generate's own
        if settings.temperature > 0:
            kwargs["logits_processor"] = LogitsProcessorList(
                [own_sampler(float(settings.temperature), float(settings.top_p), settings.seed)]
            )
        return kwargs

    def compile(
        self, mode: str, say: Callable[[str], None] = lambda _: None, buckets: tuple[int, ...] | None = None
    ) -> dict:
        """Decode with static caches and a compiled step from now on: mode 'on' always, 'auto'
        on CUDA when it measures faster than eager, 'off' never. Compiles and warms up every
        cache bucket (`buckets`, default chat.compiled.buckets_for the context window) on
        each kept generation thread first (CUDA graphs are per thread; on a CPU one thread
        does), telling `say` what it does. Returns what it decided, e.g.
        {"compiled": True, "buckets": [1024, 4096, 8192], "tokens_per_s": {...}}."""
        if not wanted(mode, self.model.device.type):
            return {"compiled": False}
        try:
            out, decoding = self._compiled(mode, say, buckets)
        except Exception as exc:  # noqa: BLE001  auto falls back to eager; on says why it cannot
            if mode == "on":
                raise ChatError(
                    f"{self.label}: compiling the decoding step failed ({type(exc).__name__}: {exc}); "
                    "run with --compile off"
                ) from exc
            log.warning("%s decodes eagerly: compiling failed", self.label, exc_info=True)
            return {"compiled": False, "error": f"{type(exc).__name__}: {exc}"}
        if out["compiled"]:
            self.compiled = decoding
        log.info("%s decoding: %s", self.label, out)
        return out

    def _compiled(self, mode: str, say: Callable[[str], None], buckets) -> tuple[dict, CompiledDecoding]:
        """Warm up compiled decoding on the kept threads; with 'auto', measure it against eager."""
        decoding = CompiledDecoding(self.model, self.context_window, buckets)
        threads = self.workers.keep if self.model.device.type == "cuda" else 1

        def warm(i: int) -> None:
            decoding.warm_up(
                self._short_reply, lambda what: say(f"compiling the decoding step: {what}, thread {i + 1} of {threads}")
            )

        self.workers.on_each(warm, threads)
        out = {"compiled": True, "buckets": list(decoding.buckets)}
        if mode == "auto":
            say("measuring the compiled decoding step against eager")
            rates: list[dict] = []
            self.workers.on_each(lambda _: rates.append(decoding.rates(self._short_reply)), 1)
            out.update(compiled=rates[0]["compiled"] > rates[0]["eager"], tokens_per_s=rates[0])
        return out, decoding

    def _short_reply(self, extra: dict, new_tokens: int) -> int:
        """A greedy reply of exactly `new_tokens` tokens to a short prompt, with `extra`
        `generate` arguments (a warm-up or a measurement); returns how many it made."""
        import torch  # heavy: loaded with a model, not with the package

        ids = torch.tensor([self.prompt_ids([{"role": "user", "content": "Hello"}])], device=self.model.device)
        kwargs = self.generate_kwargs(GenerationSettings(temperature=0.0, max_new_tokens=new_tokens))
        with torch.inference_mode(), cpu.running(self.model):
            out = self.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), min_new_tokens=new_tokens, **kwargs, **extra
            )
        return out.shape[1] - ids.shape[1]

    def decode_kwargs(self, prompt_tokens: int, settings: GenerationSettings) -> dict:
        """`generate` arguments for the decoding itself on this thread: a static cache and
        the compile settings when compiled and a bucket holds the reply, else none."""
        if self.compiled is None:
            return {}
        return self.compiled.kwargs(prompt_tokens + int(settings.max_new_tokens))

    def stream(
        self, messages: Sequence[Message], settings: GenerationSettings, stop: threading.Event | None = None
    ) -> Iterator[str]:
        import torch  # heavy: loaded with a model, not with the package

        ids = torch.tensor([self._fit(messages, settings)[1]], device=self.model.device)
        pipe, text = TokenPipe(), IncrementalText(self.tokenizer)
        halt = threading.Event()
        failure: list[BaseException] = []

        def generate() -> None:
            if halt.is_set():  # the consumer left before the generation started
                pipe.end()
                return
            try:
                with torch.inference_mode(), cpu.running(self.model):
                    self.model.generate(
                        input_ids=ids,
                        attention_mask=torch.ones_like(ids),
                        streamer=pipe,
                        stopping_criteria=_halting_criteria(halt, stop),
                        **self.generate_kwargs(settings),
                        **self.decode_kwargs(ids.shape[1], settings),
                    )
            except BaseException as exc:  # noqa: BLE001  reported to the consumer below
                failure.append(exc)
                pipe.end()

        try:
            done = self.workers.run(generate)
        except RuntimeError as exc:  # closed: the server is stopping
            raise ChatError(f"{self.label} is closed: {exc}") from exc
        try:
            for new_ids in pipe:
                if stop is not None and stop.is_set():
                    break
                if delta := text.add(new_ids):
                    yield delta
            else:
                if not failure and (rest := text.flush()):
                    yield rest
        finally:
            halt.set()
            if not done.wait(self.join_timeout_s):
                log.warning("generation still running after %.0f s", self.join_timeout_s)
        if failure:
            exc = failure[0]
            raise ChatError(f"{self.label} failed while generating: {type(exc).__name__}: {exc}") from exc
