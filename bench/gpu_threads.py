"""bench/gpu.py's diagnostic sections, which run only when named in --sections, and the
helpers every section shares:

    threads   generate in the main thread, a new thread per run, one reused thread
    profile   the ops that take a generate's CPU time, in the main thread and in a new one
"""

from __future__ import annotations

import statistics
import threading
import time


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def in_thread(work):
    out: list = []
    thread = threading.Thread(target=lambda: out.append(work()))
    thread.start()
    thread.join()
    return out[0]


def thread_probe(chat, prompt: str, tokens: int, runs: int) -> dict:
    """Why generation in a worker thread may be slower than in the main thread: the same
    greedy generate in the main thread, in a new thread per run, and in one thread reused
    for every run (per-thread warm-up, such as a cuBLAS handle, would show there)."""
    import queue

    import torch

    from chat import GenerationSettings

    settings = GenerationSettings(temperature=0.0, max_new_tokens=tokens)
    ids = torch.tensor([chat.prompt_ids([{"role": "user", "content": prompt}])], device=chat.model.device)
    kwargs = chat.generate_kwargs(settings)

    def generate() -> float:
        sync()
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = chat.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        sync()
        return (out.shape[1] - ids.shape[1]) / (time.perf_counter() - t0)

    jobs: queue.SimpleQueue = queue.SimpleQueue()
    results: queue.SimpleQueue = queue.SimpleQueue()

    def worker():
        while jobs.get() is not None:
            results.put(generate())

    reused = threading.Thread(target=worker, daemon=True)
    reused.start()

    def in_reused() -> float:
        jobs.put(1)
        return results.get()

    ways = {"main_thread": generate, "new_thread_each_run": lambda: in_thread(generate), "one_reused_thread": in_reused}
    rates: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(runs):
        for name, way in ways.items():
            rates[name].append(way())
    jobs.put(None)
    median = {k: round(statistics.median(v), 1) for k, v in rates.items()}
    return {
        "tokens_per_s": median,
        "all_runs": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "torch_threads": torch.get_num_threads(),
    }


def profile_threads(chat, prompt: str, tokens: int) -> dict:
    """The ops that take the CPU time of one greedy generate, profiled in the thread that
    runs it: the main thread against a new one (top 10 by self CPU time)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from chat import GenerationSettings

    ids = torch.tensor([chat.prompt_ids([{"role": "user", "content": prompt}])], device=chat.model.device)
    kwargs = chat.generate_kwargs(GenerationSettings(temperature=0.0, max_new_tokens=tokens))

    def profiled() -> dict:
        sync()
        t0 = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof, torch.inference_mode():
            chat.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        wall = time.perf_counter() - t0
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        return {
            "wall_ms": round(wall * 1000, 1),
            "self_cpu_ms_total": round(sum(e.self_cpu_time_total for e in events) / 1000, 1),
            "top": [[e.key, e.count, round(e.self_cpu_time_total / 1000, 2)] for e in events[:10]],
        }

    profiled()  # warm-up
    return {"main_thread": profiled(), "new_thread": in_thread(profiled)}
