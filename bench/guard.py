"""How much the reused policy prefix saves: one check of a short user message, with and
without the prefix's key/value cache, on a random Llama large enough that compute
dominates (8 layers, hidden 512, the real Llama 3 tokenizer and vocabulary).

    python bench/guard.py [--runs 20] [--layers 8] [--hidden 1024] [--intermediate 3584] [--json]

Both paths run in one process, alternating; prints medians and `cached_over_uncached`.
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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--intermediate", type=int, default=3584, help="MLP width (Llama 3 8B: 3.5x hidden)")
    p.add_argument("--message", default="How do I make a chocolate cake for my daughter's birthday?")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)

    import torch

    import reference_templates
    import tiny_models
    from guard import load_guard

    with tempfile.TemporaryDirectory() as folder:
        tiny_models.build_tiny_llama(Path(folder), reference_templates.LLAMA_GUARD_2, layers=a.layers,
                                     hidden=a.hidden, heads=8, kv_heads=8,
                                     intermediate=a.intermediate)
        guard = load_guard(folder, version="llama-guard-2", dtype=a.dtype)
    backend, prompt = guard.backend, guard.render([{"role": "user", "content": a.message}])
    threshold = 1.0  # time the scoring pass alone (no category generation)

    def timed(reuse: bool) -> float:
        t0 = time.perf_counter()
        backend.assess(prompt, threshold, reuse_prefix=reuse)
        return time.perf_counter() - t0

    timed(True), timed(False)  # warm-up, and builds the prefix cache
    cached, uncached = [], []
    for _ in range(a.runs):
        cached.append(timed(True))
        uncached.append(timed(False))
    same = abs(backend.assess(prompt, 0, reuse_prefix=True).score - backend.assess(prompt, 0, reuse_prefix=False).score)
    prefix_ids, rest_ids = __import__("guard.prompt", fromlist=["prompt_ids"]).prompt_ids(backend.tokenizer, prompt)
    result = {
        "device": str(backend.model.device), "dtype": a.dtype, "torch_threads": torch.get_num_threads(),
        "layers": a.layers, "hidden": a.hidden, "intermediate": a.intermediate, "runs": a.runs,
        "prompt_tokens": len(prefix_ids) + len(rest_ids), "prefix_tokens": len(prefix_ids),
        "cached_ms": round(statistics.median(cached) * 1000, 2),
        "uncached_ms": round(statistics.median(uncached) * 1000, 2),
        "cached_over_uncached": round(statistics.median(cached) / statistics.median(uncached), 3),
        "max_score_difference": same,
    }
    print(json.dumps(result) if a.json else "\n".join(f"{k:>22}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
