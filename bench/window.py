"""What judging every input whole costs (guard/window.py).

    python bench/window.py [--runs 30] [--words 15000] [--json]

1. A typical reply check (about 550 prompt tokens): the time `fit_conversation` adds (a
   render and the byte bound; short conversations are never tokenized for it), next to
   a whole `guard.check` on the bench model of bench/guard.py (8 layers, hidden 1024, the
   real Llama 3 tokenizer; threshold 1.0: the scoring pass). Prints `fit_over_check`.
2. A message far longer than the window (`--words` English words): how many windows the
   local guard (exact token counts) and a remote one (the UTF-8 byte bound) need for
   Llama 3's 8,192 tokens, and the time to plan them.

Both run in one process, on one torch thread on CPU (see bench/guard.py why).
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

REPLY = "Photosynthesis is the process by which plants turn light into chemical energy. " * 25


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 3)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--words", type=int, default=15000)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)

    import reference_templates
    import tiny_models
    import torch

    from guard import load_guard
    from guard.llama_guard import LlamaGuard
    from guard.remote import RemoteGuardModel
    from guard.window import fit_conversation

    if not torch.cuda.is_available():
        torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        tiny_models.build_tiny_llama(
            Path(folder),
            reference_templates.LLAMA_GUARD_2,
            layers=8,
            hidden=1024,
            heads=8,
            kv_heads=8,
            intermediate=3584,
        )
        guard = load_guard(folder, version="llama-guard-2")
    backend = guard.backend
    reply = [{"role": "user", "content": "Explain photosynthesis."}, {"role": "assistant", "content": REPLY}]
    render = guard.render
    guard.check(reply, threshold=1.0)  # warm-up, builds the prefix cache
    fit_ms = median_ms(lambda: fit_conversation(reply, render, backend), a.runs)
    check_ms = median_ms(lambda: guard.check(reply, threshold=1.0), a.runs)

    class Remote:
        """The remote backend's counting (guard.remote), without an endpoint."""

        remote, context_window = True, 8192
        count, token_ends = RemoteGuardModel.count, RemoteGuardModel.token_ends

    words = " ".join(f"word{i % 97} and" if i % 3 else "plants" for i in range(a.words))
    long = [{"role": "user", "content": words}]
    backend.model.config.max_position_embeddings = 8192
    t0 = time.perf_counter()
    local = fit_conversation(long, render, backend)
    local_ms = (time.perf_counter() - t0) * 1000
    remote_guard = LlamaGuard(Remote(), "llama-guard-2")
    t0 = time.perf_counter()
    remote = fit_conversation(long, remote_guard.render, remote_guard.backend)
    remote_ms = (time.perf_counter() - t0) * 1000
    result = {
        "device": str(backend.model.device),
        "torch_threads": torch.get_num_threads(),
        "runs": a.runs,
        "reply_prompt_tokens": backend.count(render(reply)),
        "fit_ms": fit_ms,
        "check_ms": check_ms,
        "fit_over_check": round(fit_ms / check_ms, 4),
        "long_message_tokens": len(backend.token_ends(words)),
        "long_message_bytes": len(words.encode()),
        "local_windows": len(local.conversations),
        "local_plan_ms": round(local_ms, 1),
        "remote_windows": len(remote.conversations),
        "remote_plan_ms": round(remote_ms, 1),
    }
    print(json.dumps(result) if a.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
