"""bench/gpu.py's `stream` section: tokens per second of each way of running one greedy
generation (bare generate, with our streamer, through the chat backend), so the cost of
each layer shows. Loaded by bench/gpu.py (bench/ is not a package)."""

from __future__ import annotations

import statistics
import threading
import time


def stream_breakdown(chat, tokens: int, runs: int, full: bool = True, *, prompt: str, sync, in_thread) -> dict:
    """Tokens per second of each way of running the same greedy generation of `prompt`
    (`sync` and `in_thread`: bench/gpu_threads.py's, as bench/gpu.py loaded it)."""
    import torch
    from transformers import TextIteratorStreamer

    from chat import GenerationSettings
    from chat.local import _halting_criteria
    from chat.streamer import IncrementalText, TokenPipe

    settings = GenerationSettings(temperature=0.0, max_new_tokens=tokens)
    messages = [{"role": "user", "content": prompt}]
    ids = torch.tensor([chat.prompt_ids(messages)], device=chat.model.device)
    kwargs = chat.generate_kwargs(settings)

    cpu: list[float] = []  # CPU seconds per token of the thread that ran each bare generate

    def generate(**extra) -> int:
        t0 = time.thread_time()
        with torch.inference_mode():
            out = chat.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs, **extra)
        cpu.append((time.thread_time() - t0) / (out.shape[1] - ids.shape[1]))
        return out.shape[1] - ids.shape[1]

    def consumed(streamer, read) -> int:
        done = []
        thread = threading.Thread(target=lambda: done.append(generate(streamer=streamer)))
        thread.start()
        read(streamer)
        thread.join()
        return done[0]

    def text_streamer(s):
        for _ in s:
            pass

    def token_pipe(pipe):
        text = IncrementalText(chat.tokenizer)
        for new in pipe:
            text.add(new)

    def in_kept(work):  # on one of LocalChat's kept generation threads
        out: list = []
        chat.workers.run(lambda: out.append(work())).wait()
        return out[0]

    def local_stream() -> int:  # as many tokens as the bare path (same greedy decoding)
        assert list(chat.stream(messages, settings))
        return produced_by_bare

    ways = {
        "bare_worker_thread": lambda: in_thread(generate),
        "bare_main_thread": generate,
        "bare_kept_thread": lambda: in_kept(generate),
        "halt_criterion": lambda: in_thread(lambda: generate(stopping_criteria=_halting_criteria(threading.Event()))),
        "hf_text_streamer": lambda: consumed(
            TextIteratorStreamer(chat.tokenizer, skip_prompt=True, skip_special_tokens=True), text_streamer
        ),
        "token_pipe": lambda: consumed(TokenPipe(), token_pipe),
        "LocalChat.stream": local_stream,
    }
    if not full:
        ways = {k: ways[k] for k in ("bare_worker_thread", "bare_main_thread", "LocalChat.stream")}
    produced_by_bare = generate()  # also the warm-up
    local_stream()
    seconds: dict[str, list[float]] = {k: [] for k in ways}
    cpu_seconds: dict[str, list[float]] = {}
    for _ in range(runs):
        for name, way in ways.items():
            sync()
            cpu.clear()
            t0 = time.perf_counter()
            produced = way()
            seconds[name].append((time.perf_counter() - t0) / produced)
            if cpu:
                cpu_seconds.setdefault(name, []).append(cpu[0])
    per_token = {k: statistics.median(v) for k, v in seconds.items()}
    bare = per_token["bare_main_thread"]  # what a caller without streaming would run
    t0 = time.perf_counter()
    in_thread(
        lambda: chat.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), **dict(kwargs, max_new_tokens=1)
        )
    )
    bare_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    next(iter(chat.stream(messages, settings)))
    stream_first = time.perf_counter() - t0
    return {
        "tokens": tokens,
        "runs": runs,
        "prompt_tokens": ids.shape[1],
        "tokens_per_s": {k: round(1 / v, 1) for k, v in per_token.items()},
        "ms_per_token": {k: round(v * 1000, 2) for k, v in per_token.items()},
        "over_bare": {k: round(bare / v, 3) for k, v in per_token.items()},
        "generate_thread_cpu_ms_per_token": {k: round(statistics.median(v) * 1000, 2) for k, v in cpu_seconds.items()},
        "stream_over_bare_tokens_per_s": round(bare / per_token["LocalChat.stream"], 3),
        "first_token_ms": {"bare": round(bare_first * 1000, 1), "LocalChat.stream": round(stream_first * 1000, 1)},
    }
