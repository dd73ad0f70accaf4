"""How much the guard's caches save, on a random Llama large enough that compute dominates
(8 layers, hidden 1024, the real Llama 3 tokenizer and 128,256-token vocabulary):

- `cached_over_uncached`: one check of a short user message, with and without the policy
  prefix's key/value cache (target: at most 0.4);
- `incremental_over_full`: a re-check after 16 new tokens of a 512-token reply within a
  turn (guard.incremental: the previous check's cache, cropped to the common prefix)
  against a full check of the same conversation from the cached policy prefix (target:
  at most 0.25).

    python bench/guard.py [--runs 20] [--layers 8] [--hidden 1024] [--threads N] [--json]

Both paths run in one process, alternating, through `guard.check` (threshold 1.0, so the
timed work is the scoring pass, not category generation). Prints medians and
the ratios. For the first, the floor is the share of prompt tokens
after the prefix (the conversation and the closing instruction, 68 of 203 here). On CPU
the default is one torch thread: on a shared machine, intra-op threads wait on each other
and blur the ratio towards 1 (`--threads 0` keeps torch's own choice; the output says
which ran).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from guard.prompt import prompt_ids  # noqa: E402

FILLER = (
    "The bicycle began as a wooden running machine in 1817; pedals on the front wheel came in the 1860s, "
    "the high-wheeler in the 1870s, and the safety bicycle with its chain drive and equal wheels in the "
    "1880s. Pneumatic tyres followed, and cycling became cheap, fast transport for millions of people. "
)


def reply_text(tokenizer, tokens: int) -> str:
    """Plain English text of `tokens` tokens (as the tokenizer reads it on its own)."""
    ids = tokenizer(FILLER * (tokens // 50 + 2), add_special_tokens=False).input_ids[:tokens]
    return tokenizer.decode(ids)


def incremental_runs(guard, message: str, reply_tokens: int = 512, step: int = 16, runs: int = 10) -> dict:
    """Seconds per check, alternating: `incremental` re-checks a reply of `reply_tokens`
    tokens in a turn whose previous check saw it `step` tokens shorter; `full` checks the
    same conversation from the cached policy prefix. Threshold 1.0: the scoring pass only."""
    tokenizer = guard.backend.tokenizer
    before, after = reply_text(tokenizer, reply_tokens - step), reply_text(tokenizer, reply_tokens)
    conversation = lambda reply: [{"role": "user", "content": message}, {"role": "assistant", "content": reply}]  # noqa: E731
    times: dict[str, list[float]] = {"incremental": [], "full": []}
    scores = {}
    for _ in range(runs + 1):  # the first round warms up
        turn = guard.session()
        turn.check(conversation(before), threshold=1.0)
        t0 = time.perf_counter()
        scores["incremental"] = turn.check(conversation(after), threshold=1.0).score
        times["incremental"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scores["full"] = guard.check(conversation(after), threshold=1.0).score
        times["full"].append(time.perf_counter() - t0)
    return {
        "times": {k: v[1:] for k, v in times.items()},
        "score_difference": abs(scores["incremental"] - scores["full"]),
        "reused_tokens": turn.backend.reused_tokens,
        "input_tokens": sum(map(len, prompt_ids(tokenizer, guard.render(conversation(after))))),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--intermediate", type=int, default=None, help="MLP width (default 3.5x hidden, as Llama 3 8B)")
    p.add_argument("--message", default="How do I make a chocolate cake for my daughter's birthday?")
    p.add_argument("--reply-tokens", type=int, default=512, help="reply length for incremental_over_full")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: 1 on CPU; 0: torch's choice)"
    )
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)

    import reference_templates
    import tiny_models
    import torch

    from guard import load_guard

    threads = a.threads if a.threads is not None else (0 if torch.cuda.is_available() else 1)
    if threads:
        torch.set_num_threads(threads)
    intermediate = a.intermediate or a.hidden * 7 // 2
    with tempfile.TemporaryDirectory() as folder:
        tiny_models.build_tiny_llama(
            Path(folder),
            reference_templates.LLAMA_GUARD_2,
            layers=a.layers,
            hidden=a.hidden,
            heads=8,
            kv_heads=8,
            intermediate=intermediate,
        )
        guard = load_guard(folder, version="llama-guard-2", dtype=a.dtype)
    backend, conversation = guard.backend, [{"role": "user", "content": a.message}]

    def timed(reuse: bool) -> float:
        backend.reuse_prefix = reuse
        t0 = time.perf_counter()
        verdict = guard.check(conversation, threshold=1.0)
        elapsed = time.perf_counter() - t0
        assert verdict.parsed and verdict.score is not None, verdict.error
        return elapsed

    timed(True), timed(False)  # warm-up, and builds the prefix cache
    cached, uncached = [], []
    for _ in range(a.runs):
        cached.append(timed(True))
        uncached.append(timed(False))
    incremental = incremental_runs(guard, a.message, a.reply_tokens, 16, a.runs)
    prompt = guard.render(conversation)
    scores = [backend.assess(prompt, 1.0, reuse_prefix=reuse).score for reuse in (True, False)]
    prefix_ids, rest_ids = prompt_ids(backend.tokenizer, prompt)
    result = {
        "device": str(backend.model.device),
        "dtype": a.dtype,
        "torch_threads": torch.get_num_threads(),
        "layers": a.layers,
        "hidden": a.hidden,
        "intermediate": intermediate,
        "runs": a.runs,
        "prompt_tokens": len(prefix_ids) + len(rest_ids),
        "prefix_tokens": len(prefix_ids),
        "cached_ms": round(statistics.median(cached) * 1000, 2),
        "uncached_ms": round(statistics.median(uncached) * 1000, 2),
        "cached_over_uncached": round(statistics.median(cached) / statistics.median(uncached), 3),
        "score_difference": abs(scores[0] - scores[1]),
        "reply_tokens": a.reply_tokens,
        "incremental_input_tokens": incremental["input_tokens"],
        "incremental_reused_tokens": incremental["reused_tokens"],
        "incremental_ms": round(statistics.median(incremental["times"]["incremental"]) * 1000, 2),
        "full_cached_prefix_ms": round(statistics.median(incremental["times"]["full"]) * 1000, 2),
        "incremental_over_full": round(
            statistics.median(incremental["times"]["incremental"]) / statistics.median(incremental["times"]["full"]), 3
        ),
        "incremental_score_difference": incremental["score_difference"],
    }
    print(json.dumps(result) if a.json else "\n".join(f"{k:>22}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
