"""The guard's compiled check and batched checks, on a random Llama Guard of the real shape.

    python bench/gpu_guard.py            # CUDA: the 8B shape in bfloat16
    python bench/gpu_guard.py --smoke    # a tiny random model on the CPU (a test runs it)

bench/gpu.py runs the same sections as its `guard_fast` section (on its guard model).
Each figure is printed as one JSON line the moment it is measured (bench/gpu.py's format):

1. `guard_compiled_<N>`: one check of an N-token conversation (64 and 512; the policy
   prefix cached, threshold 1.0: the scoring pass), eager against compiled (guard.compiled:
   static shapes, CUDA graphs): p50/p95 ms, `compiled_over_eager`, the first compiled
   check's seconds (the compile), and the largest score difference (GPU targets: 64
   tokens in at most 15 ms, 512 in at most 25 ms).
2. `guard_batched_<S>`: S sessions (1, 4, 8, 16) checking at once, each its own 64-token
   conversations one after another, through one backend that batches up to 16 checks a
   pass (guard.batch): checks/s, p50/p95 ms, passes' mean size, and against one session
   `checks_per_s_over_1` and `p95_over_1` (targets at 16: at least 6, at most 3). The
   passes are eager unless --compile-batched (each batch-size bucket compiles once).

--smoke: the tiny model (2 layers, hidden 64) on the CPU, 64 tokens, sessions 1 and 4, the
eager check only (compiling on a CPU takes a minute); it checks that the sections run.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import threading
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SESSIONS = (1, 4, 8, 16)
USER = "Can you tell me about the history of the bicycle?"


def bench_module(name: str):
    """bench/<name>.py as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ms(values: list[float], quantile: float) -> float:
    """The `quantile` (0.5, 0.95) of `values` seconds, in ms."""
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000, 2)


def conversation(tokenizer, size: int, seed: int = 0) -> list[dict]:
    """A user question and a reply, `size` tokens together; `seed` varies the reply's start."""
    reply_text = bench_module("guard").reply_text
    user_tokens = len(tokenizer(USER, add_special_tokens=False).input_ids)
    reply = reply_text(tokenizer, max(8, size - user_tokens - 4) + seed)
    return [{"role": "user", "content": USER}, {"role": "assistant", "content": reply[seed * 3 :]}]


def guard_on(model, tokenizer, **options):
    from guard.llama_guard import LlamaGuard
    from guard.local import LocalGuardModel

    return LlamaGuard(LocalGuardModel(model, tokenizer, **options), "llama-guard-2", "bench guard")


def timed(guard, conv, runs: int) -> tuple[list[float], float]:
    """Seconds of `runs` checks (after one to warm up), and the last score."""
    guard.check(conv, threshold=1.0)
    times, score = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        verdict = guard.check(conv, threshold=1.0)
        times.append(time.perf_counter() - t0)
        assert not verdict.failed, verdict.error
        score = verdict.score
    return times, score


def compiled_check(model, tokenizer, size: int, runs: int, compile: bool, sync) -> dict:
    """Section 1 at one size: eager and (with `compile`) compiled checks."""
    conv = conversation(tokenizer, size)
    eager_times, eager_score = timed(guard_on(model, tokenizer, batch=1), conv, runs)
    out = {"eager_p50_ms": ms(eager_times, 0.5), "eager_p95_ms": ms(eager_times, 0.95)}
    if not compile:
        return {**out, "compiled": "skipped (--smoke or --no-compile)"}
    compiled = guard_on(model, tokenizer, batch=1, compile=True)
    t0 = time.perf_counter()
    compiled.check(conv, threshold=1.0)
    sync()
    first_s = time.perf_counter() - t0
    times, score = timed(compiled, conv, runs)
    return {
        **out,
        "compiled_p50_ms": ms(times, 0.5),
        "compiled_p95_ms": ms(times, 0.95),
        "compiled_over_eager": round(statistics.median(times) / statistics.median(eager_times), 3),
        "first_compiled_check_s": round(first_s, 1),
        "score_difference": abs(score - eager_score),
    }


def sessions_at_once(guard, tokenizer, sessions: int, checks: int) -> dict:
    """`sessions` threads, each `checks` checks of its own 64-token conversation in a row."""
    convs = [conversation(tokenizer, 64, seed=i % 8) for i in range(sessions)]
    latencies: list[float] = []
    lock, start = threading.Lock(), threading.Barrier(sessions + 1)

    def session(i: int) -> None:
        start.wait()
        for _ in range(checks):
            t0 = time.perf_counter()
            verdict = guard.check(convs[i], threshold=1.0)
            took = time.perf_counter() - t0
            assert not verdict.failed, verdict.error
            with lock:
                latencies.append(took)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    passes_before = len(guard.backend.batcher.passes) if guard.backend.batcher else 0
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    passes = guard.backend.batcher.passes[passes_before:] if guard.backend.batcher else []
    return {
        "checks_per_s": round(len(latencies) / wall, 1),
        "p50_ms": ms(latencies, 0.5),
        "p95_ms": ms(latencies, 0.95),
        "mean_pass_size": round(statistics.mean(passes), 2) if passes else 1,
    }


def run(
    model,
    tokenizer,
    report,
    *,
    compile: bool,
    compile_batched: bool = False,
    sizes=(64, 512),
    sessions=SESSIONS,
    runs=10,
    sync=lambda: None,
) -> dict:
    """Both sections on `model`, each figure reported as measured; the figures by section.
    The batched checks are eager unless `compile_batched` (each batch size compiles once:
    minutes on the 8B shape)."""
    figures: dict = {}
    for size in sizes:
        figures[f"guard_compiled_{size}"] = attempt(
            partial(compiled_check, model, tokenizer, size, runs, compile, sync)
        )
        report(f"guard_compiled_{size}", figures[f"guard_compiled_{size}"])
    guard = guard_on(model, tokenizer, batch=max(sessions), compile=compile_batched)
    guard.check(conversation(tokenizer, 64), threshold=1.0)  # the prefix cache (and a first compile)
    one = None
    for n in sessions:
        found = attempt(partial(sessions_at_once, guard, tokenizer, n, max(runs, 2)))
        if one is None and "error" not in found:
            one = found
        elif one is not None and "error" not in found:
            found["checks_per_s_over_1"] = round(found["checks_per_s"] / one["checks_per_s"], 2)
            found["p95_over_1"] = round(found["p95_ms"] / one["p95_ms"], 2)
        found["compiled"] = compile_batched
        figures[f"guard_batched_{n}"] = found
        report(f"guard_batched_{n}", found)
    return figures


def attempt(work):
    """`work()`, or the error in its place: one broken figure must not lose the others."""
    try:
        return work()
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="the tiny model on the CPU, eager only: that the sections run")
    p.add_argument("--no-compile", action="store_true", help="eager checks only")
    p.add_argument("--compile-batched", action="store_true", help="compile the batched checks too (minutes)")
    p.add_argument("--runs", type=int, default=None, help="timed checks per figure (default 10; --smoke 2)")
    a = p.parse_args(argv)

    import reference_templates
    import tiny_models
    import torch

    gpu = bench_module("gpu")
    cuda = torch.cuda.is_available() and not a.smoke
    if not cuda and not a.smoke:
        gpu.report("error", "no CUDA GPU: the 8B shape needs one (try --smoke)")
        return
    gpu.SHAPES["tiny"] = (2, 64, 128, 4, 2)
    shape, dtype = ("llama3-8b", torch.bfloat16) if cuda else ("tiny", torch.float32)
    model = gpu.build_model(shape, dtype, "cuda" if cuda else "cpu", 1)
    tokenizer = tiny_models.llama3_tokenizer(reference_templates.LLAMA_GUARD_2)
    gpu.report("guard_machine", {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "shape": shape})
    run(
        model,
        tokenizer,
        gpu.report,
        compile=cuda and not a.no_compile,
        compile_batched=cuda and a.compile_batched,
        sizes=(64,) if a.smoke else (64, 512),
        sessions=(1, 4) if a.smoke else SESSIONS,
        runs=a.runs or (2 if a.smoke else 10),
        sync=gpu.sync,
    )


if __name__ == "__main__":
    main()
