"""Figures on a model of the real shape, in one run: random-weight chat and guard models
with Llama 3 8B's shape (32 layers, hidden 4096, MLP 14336, 32 heads, 8 KV heads,
vocabulary 128,256; the real Llama 3 tokenizer and templates), both on one GPU.

    python bench/gpu.py             # CUDA: the 8B shape in bfloat16, then --load-in-4bit (< 5 minutes)
    python bench/gpu.py --small     # tiny shapes, for a quick try (runs on a CPU too)
    python bench/gpu.py --smoke     # the decode section on tiny shapes, 8 tokens (a CPU test runs it)

Sections, each printed as one JSON line the moment it is measured (run with python -u:
a run cut short still says something), then everything as one JSON object, last line:

1. `stream` (bench/gpu_stream.py): tokens/s of a bare `generate` in the main thread
   against `LocalChat.stream`, and where the difference goes: generate in a new thread
   and in a kept one, with our halting criterion, with transformers' TextIteratorStreamer,
   with our token pipe, the full stream; `ms_per_token` of each and `over_bare`, its speed
   over the main thread's (the stream target: at least 0.95). `--torch-threads` sets torch's CPU threads first.
2. `decode`: compiled against eager decoding at batch 1 (bench/gpu_decode.py): tokens/s
   and first-token latency, eager, then compiled (`--compile on`), each printed as
   measured; the chat model stays compiled for the sections after it.
3. `guard`: check latency p50/p95 at 64/512/2048-token conversations: uncached, from the
   cached policy prefix, and incremental (a turn whose previous check saw 16 tokens less).
4. `turn`: time to first token and whole-turn time, bare against moderated (prompt check
   first and parallel; check every 16 tokens, stream-first, threshold 1.0 so random
   verdicts pass): `first_token_over_bare`, `moderated_over_bare` (GPU targets: at most
   1.25 and 1.10); also parallel with a check every 8 tokens, and the turn as before
   this change (prompt check first, no incremental checks).
5. `guard_fast`: the guard's compiled check per length and batched checks at 1, 4, 8 and
   16 sessions (bench/gpu_guard.py, whose docstring says what each figure is).
6. `4bit`: the same models saved and reloaded with --load-in-4bit (bitsandbytes), and
   sections 1, 3 and 4 again, shorter (eager).

Two diagnostic sections run only when named in --sections (bench/gpu_threads.py):
`threads` (generate in the main thread, a new thread per run, one reused thread) and
`profile` (the ops that take a generate's CPU time, in the main thread and in a new one).

A section that would overrun `--budget-s` is skipped and says so.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SHAPES = {  # layers, hidden, intermediate, heads, kv_heads
    "llama3-8b": (32, 4096, 14336, 32, 8),
    "small": (2, 256, 896, 4, 2),
}
PROMPT = "Write a short paragraph about the history of the bicycle."
STARTED = time.perf_counter()
RESULT: dict = {}


def bench_module(name: str):
    """bench/<name>.py as a module (bench/ is not a package, and its guard.py would shadow ours)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(section: str, value) -> None:
    RESULT[section] = value
    print(
        json.dumps({"section": section, "elapsed_s": round(time.perf_counter() - STARTED, 1), section: value}),
        flush=True,
    )


def attempt(work):
    """`work()`, or the error in its place: one broken figure must not lose the others."""
    try:
        return work()
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"}


def measure(section: str, work) -> None:
    report(section, attempt(work))


THREADS = bench_module("gpu_threads")
sync, in_thread = THREADS.sync, THREADS.in_thread
stream_breakdown = partial(bench_module("gpu_stream").stream_breakdown, prompt=PROMPT, sync=sync, in_thread=in_thread)


def build_model(shape: str, dtype, device: str, seed: int):
    """A random LlamaForCausalLM of `shape`, made directly on `device` in `dtype`."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    layers, hidden, intermediate, heads, kv_heads = SHAPES[shape]
    config = LlamaConfig(
        vocab_size=128_256,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=8192,
        rope_theta=500000.0,
        bos_token_id=128000,
        eos_token_id=[128001, 128009],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(default)
    model.generation_config = GenerationConfig(bos_token_id=128000, eos_token_id=[128001, 128009])
    return model


def pair(chat_model, guard_model, label: str):
    """LocalChat and LlamaGuard around the two models, with the real tokenizer and templates."""
    import reference_templates
    import tiny_models

    from chat.local import LocalChat
    from guard.llama_guard import LlamaGuard
    from guard.local import LocalGuardModel

    chat = LocalChat(chat_model, tiny_models.llama3_tokenizer(reference_templates.LLAMA3_INSTRUCT), f"chat {label}")
    backend = LocalGuardModel(guard_model, tiny_models.llama3_tokenizer(reference_templates.LLAMA_GUARD_2))
    return chat, LlamaGuard(backend, "llama-guard-2", f"guard {label}")


def guard_latencies(guard, sizes: list[int], runs: int) -> dict:
    """p50/p95 ms of one check (threshold 1.0: the scoring pass) at each conversation size."""
    bench_guard = bench_module("guard")
    tokenizer = guard.backend.tokenizer
    user = "Can you tell me about the history of the bicycle?"
    user_tokens = len(tokenizer(user, add_special_tokens=False).input_ids)

    def conversation(reply_tokens: int):
        return [
            {"role": "user", "content": user},
            {"role": "assistant", "content": bench_guard.reply_text(tokenizer, reply_tokens)},
        ]

    backend, out = guard.backend, {}
    for size in sizes:
        reply = max(16, size - user_tokens - 4)
        full, shorter = conversation(reply), conversation(reply - 16)
        times: dict[str, list[float]] = {"uncached": [], "cached_prefix": [], "incremental": []}
        for _ in range(runs + 1):  # the first round warms up
            backend.reuse_prefix = False
            t0 = time.perf_counter()
            guard.check(full, threshold=1.0)
            times["uncached"].append(time.perf_counter() - t0)
            backend.reuse_prefix = True
            t0 = time.perf_counter()
            guard.check(full, threshold=1.0)
            times["cached_prefix"].append(time.perf_counter() - t0)
            turn = guard.session()
            turn.check(shorter, threshold=1.0)
            t0 = time.perf_counter()
            verdict = turn.check(full, threshold=1.0)
            times["incremental"].append(time.perf_counter() - t0)
            assert verdict.parsed, verdict.error

        def q(v, p):
            if len(v) > 2:
                return round(statistics.quantiles(v[1:], n=20, method="inclusive")[p] * 1000, 2)
            return round(max(v[1:]) * 1000, 2)

        out[f"{size}_tokens"] = {
            "p50_ms": {k: round(statistics.median(v[1:]) * 1000, 2) for k, v in times.items()},
            "p95_ms": {k: q(v, 18) for k, v in times.items()},
            "incremental_over_cached_prefix": round(
                statistics.median(times["incremental"][1:]) / statistics.median(times["cached_prefix"][1:]), 3
            ),
        }
    return out


def turns(chat, guard, tokens: int, runs: int, every_8: bool = True) -> dict:
    from chat import GenerationSettings
    from moderation.turn import TurnSettings

    generation = GenerationSettings(temperature=0.0, max_new_tokens=tokens, seed=0)
    variants = {
        mode: TurnSettings(
            threshold=1.0,
            check_every=16,
            stream_policy="stream-first",
            generation=generation,
            prompt_check=mode,
            guard_timeout_s=120.0,
        )
        for mode in ("first", "parallel")
    }
    if every_8:  # what halving the check interval costs (it halves the stream-first exposure)
        variants["parallel_every_8"] = replace(variants["parallel"], check_every=8)
    bench_turn = bench_module("turn")
    variants["before_this_change"] = (bench_turn.WithoutSession(guard), variants["first"])  # no incremental checks
    return bench_turn.compare(chat, guard, PROMPT, variants, generation, runs)


def within_budget(a, section: str, needs_s: float) -> bool:
    left = a.budget_s - (time.perf_counter() - STARTED)
    if left < needs_s:
        report(section, {"skipped": f"{left:.0f} s of the budget left, about {needs_s:.0f} s needed"})
        return False
    return True


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", action="store_true", help="tiny shapes: a quick end-to-end try (CPU or GPU)")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="the decode section on tiny shapes with 8 tokens, one run, one cache bucket (a CPU test)",
    )
    p.add_argument("--tokens", type=int, default=None, help="new tokens per reply (default 64; --small 16)")
    p.add_argument("--runs", type=int, default=None, help="timed runs per figure (default 3; --small 2)")
    p.add_argument("--no-4bit", action="store_true", help="skip the --load-in-4bit section")
    p.add_argument("--budget-s", type=float, default=280.0, help="skip sections that would run past this")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch.set_num_threads before anything runs (default: torch's own)",
    )
    p.add_argument(
        "--sections",
        default="stream,decode,guard,turn,guard_fast,4bit",
        help="comma-separated sections to run: stream, threads, profile, decode, guard, turn, guard_fast, 4bit",
    )
    a = p.parse_args(argv)
    if a.smoke:
        a.small, a.sections, a.tokens, a.runs = True, "decode", a.tokens or 8, a.runs or 1
    wanted = set(a.sections.split(","))

    import torch
    import transformers

    if a.torch_threads:
        torch.set_num_threads(a.torch_threads)
    cuda = torch.cuda.is_available()
    shape = "small" if a.small else "llama3-8b"
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    tokens = a.tokens or (16 if a.small else 64)
    runs = a.runs or (2 if a.small else 3)
    sizes = [64, 512] if a.small and not cuda else [64, 512, 2048]
    report(
        "machine",
        {
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "shape": shape,
            "layers_hidden_mlp_heads_kv": SHAPES[shape],
            "dtype": str(dtype).removeprefix("torch."),
            "tokens": tokens,
            "runs": runs,
            "torch_threads": torch.get_num_threads(),
        },
    )
    if not cuda and not a.small:
        report("error", "no CUDA GPU: the 8B shape needs one (try --small)")
        return

    t0 = time.perf_counter()
    chat, guard = pair(build_model(shape, dtype, device, 0), build_model(shape, dtype, device, 1), shape)
    sync()
    report(
        "build",
        {
            "seconds": round(time.perf_counter() - t0, 1),
            "gpu_memory_gib": round(torch.cuda.memory_allocated() / 2**30, 1) if cuda else None,
        },
    )
    sections = {
        "stream": lambda: stream_breakdown(chat, tokens, runs),
        "threads": lambda: THREADS.thread_probe(chat, PROMPT, tokens, runs),
        "profile": lambda: THREADS.profile_threads(chat, PROMPT, min(tokens, 16)),
        "decode": lambda: bench_module("gpu_decode").compiled_against_eager(
            chat, PROMPT, tokens, runs, report, buckets=(256,) if a.smoke else (1024,)
        ),
        "guard": lambda: guard_latencies(guard, sizes, runs * 3),
        "turn": lambda: turns(chat, guard, tokens * 2, runs),
        "guard_fast": lambda: bench_module("gpu_guard").run(
            guard.backend.model, guard.backend.tokenizer, report, compile=cuda, runs=runs * 3, sync=sync
        ),
    }
    for name, work in sections.items():
        if name in wanted and (name != "guard_fast" or within_budget(a, name, 30 if a.small else 150)):
            measure(name, work)

    if "4bit" not in wanted:
        pass
    elif a.no_4bit or not cuda:
        report("4bit", {"skipped": "--no-4bit" if a.no_4bit else "bitsandbytes 4-bit needs CUDA"})
    elif within_budget(a, "4bit", 90 if not a.small else 20):
        measure("4bit", lambda: four_bit(chat, guard, tokens, runs))
    print(json.dumps(RESULT), flush=True)


def four_bit(chat, guard, tokens: int, runs: int) -> dict:
    """Save the chat model once, free both, load it twice with --load-in-4bit (as chat and as guard)."""
    import torch

    from chat import load_chat
    from guard import load_guard
    from weights import LoadOptions

    folder = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    t0 = time.perf_counter()
    chat.model.save_pretrained(folder)
    chat.tokenizer.save_pretrained(folder)
    saved = time.perf_counter() - t0
    chat.model = guard.backend.model = None
    del chat, guard
    gc.collect()
    torch.cuda.empty_cache()
    t0 = time.perf_counter()
    chat4 = load_chat(str(folder), LoadOptions(load_in_4bit=True))
    guard4 = load_guard(str(folder), version="llama-guard-2", load_in_4bit=True)
    out = {
        "save_s": round(saved, 1),
        "load_s": round(time.perf_counter() - t0, 1),
        "linear_weight_dtype": str(chat4.model.model.layers[0].mlp.up_proj.weight.dtype),
        "gpu_memory_gib": round(torch.cuda.memory_allocated() / 2**30, 1),
    }
    out["stream"] = attempt(lambda: stream_breakdown(chat4, tokens, max(2, runs - 1), full=False))
    out["guard"] = attempt(lambda: guard_latencies(guard4, [512], runs * 2))
    out["turn"] = attempt(lambda: turns(chat4, guard4, tokens, max(2, runs - 1), every_8=False))
    return out


if __name__ == "__main__":
    main()
