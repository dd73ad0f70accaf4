"""bench/gpu.py's `decode` section: compiled against eager decoding of the chat model at
batch 1 (chat.compiled), each figure printed the moment it is measured.

    decode.eager      tokens/s of the decoding steps and first-token latency, eager
    decode.compiling  each warm-up stage, as the app's loading status shows it
    decode.compile    seconds the compilation and warm-up took
    decode.compiled   the same figures, compiled, and whether the greedy tokens equal eager's
    decode            all of it, with compiled_over_eager (GPU target: >= 120 tokens/s at batch 1)

Each reply runs as LocalChat.stream runs it (on a kept generation thread, with the call's
static cache when compiled), timed by a streamer that notes when each token arrives:
`first_token_ms` is from the call to the first new token (the prefill and one step),
`tokens_per_s` the decoding steps after it. The chat model stays compiled afterwards, so
the sections that follow (turn) measure compiled decoding.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


class Clock:
    """A streamer that notes the time of each new token (the first `put` is the prompt)."""

    def __init__(self):
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value) -> None:
        if self._prompt_seen:
            value.reshape(-1).tolist()  # waits for the step, as the app's token pipe does
            self.times.append(time.perf_counter())
        self._prompt_seen = True

    def end(self) -> None:
        pass


def timed_reply(chat, ids: list[int], tokens: int) -> dict:
    """One greedy reply of `tokens` tokens on a kept generation thread, decoded as `stream`
    decodes it now (compiled or eager): its ids, first-token ms and decoding tokens/s."""
    import torch

    from chat import GenerationSettings

    settings = GenerationSettings(temperature=0.0, max_new_tokens=tokens)
    out: dict = {}

    def run() -> None:
        prompt = torch.tensor([ids], device=chat.model.device)
        clock = Clock()
        t0 = time.perf_counter()
        with torch.inference_mode():
            made = chat.model.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                streamer=clock,
                min_new_tokens=tokens,
                **chat.generate_kwargs(settings),
                **chat.decode_kwargs(prompt.shape[1], settings),
            )
        steps = clock.times[-1] - clock.times[0]
        out.update(
            ids=made[0, prompt.shape[1] :].tolist(),
            first_token_ms=(clock.times[0] - t0) * 1000,
            tokens_per_s=(len(clock.times) - 1) / steps if steps > 0 else float("nan"),
        )

    chat.workers.on_each(lambda _: run(), 1)
    return out


def figures(chat, ids: list[int], tokens: int, runs: int) -> dict:
    """Median first-token ms and tokens/s over `runs` replies, after one unmeasured."""
    timed_reply(chat, ids, tokens)
    replies = [timed_reply(chat, ids, tokens) for _ in range(runs)]
    return {
        "tokens": tokens,
        "runs": runs,
        "tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in replies), 1),
        "first_token_ms": round(statistics.median(r["first_token_ms"] for r in replies), 2),
        "ids": replies[0]["ids"],
    }


def compiled_against_eager(
    chat, prompt: str, tokens: int, runs: int, report: Callable[[str, object], None], buckets=None
) -> dict:
    """The `decode` section: eager figures, then chat.compile("on") (its stages reported),
    then compiled figures; `buckets` limits the warm-up (default: the app's)."""
    ids = chat.prompt_ids([{"role": "user", "content": prompt}])
    eager = figures(chat, ids, tokens, runs)
    eager_ids = eager.pop("ids")
    report("decode.eager", eager)
    t0 = time.perf_counter()
    decided = chat.compile("on", lambda stage: report("decode.compiling", stage), buckets)
    compile_s = round(time.perf_counter() - t0, 1)
    report("decode.compile", {"seconds": compile_s, **decided})
    compiled = figures(chat, ids, tokens, runs)
    compiled["same_tokens_as_eager"] = compiled.pop("ids") == eager_ids  # bfloat16 may round apart
    report("decode.compiled", compiled)
    return {
        "prompt_tokens": len(ids),
        "eager": eager,
        "compile_s": compile_s,
        "compiled": compiled,
        "compiled_over_eager": round(compiled["tokens_per_s"] / eager["tokens_per_s"], 2),
        "first_token_compiled_over_eager": round(compiled["first_token_ms"] / eager["first_token_ms"], 3),
    }
