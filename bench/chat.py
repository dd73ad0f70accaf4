"""What our streaming path costs: LocalChat.stream against a bare `model.generate` on the
same model, prompt and greedy settings, in one process, alternating runs.

    python bench/chat.py [--model offline] [--max-new-tokens 128] [--runs 5] [--json]

Tokens per second count the generated tokens (the same for both: greedy, same stop
ids); the time to first token of the stream is when its first text arrives, and of
the bare path, one generate call with max_new_tokens=1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="offline")
    p.add_argument("--prompt", default="Write a short paragraph about the history of the bicycle.")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)

    import torch

    from chat import GenerationSettings, load_chat

    chat = load_chat(a.model)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=a.max_new_tokens)
    messages = [{"role": "user", "content": a.prompt}]
    ids = torch.tensor([chat.prompt_ids(messages)], device=chat.model.device)

    def bare(max_new: int) -> tuple[float, int]:
        kwargs = dict(chat.generate_kwargs(settings), max_new_tokens=max_new)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = chat.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        return time.perf_counter() - t0, out.shape[1] - ids.shape[1]

    def streamed() -> tuple[float, float, str]:
        t0, first, text = time.perf_counter(), None, ""
        for delta in chat.stream(messages, settings):
            first = first or time.perf_counter() - t0
            text += delta
        return time.perf_counter() - t0, first or 0.0, text

    bare(a.max_new_tokens), streamed()  # warm-up
    bare_rows, stream_rows, ttft_bare = [], [], []
    for _ in range(a.runs):
        bare_rows.append(bare(a.max_new_tokens))
        stream_rows.append(streamed())
        ttft_bare.append(bare(1)[0])
    tokens = bare_rows[0][1]
    bare_tps = statistics.median(tokens / t for t, _ in bare_rows)
    stream_tps = statistics.median(tokens / t for t, _, _ in stream_rows)
    result = {
        "model": chat.label, "device": str(chat.model.device), "runs": a.runs, "generated_tokens": tokens,
        "bare_tokens_per_s": round(bare_tps, 2), "stream_tokens_per_s": round(stream_tps, 2),
        "stream_over_bare_tokens_per_s": round(stream_tps / bare_tps, 3),
        "ttft_ms": {"stream": round(statistics.median(r[1] for r in stream_rows) * 1000, 1),
                    "bare": round(statistics.median(ttft_bare) * 1000, 1)},
    }
    print(json.dumps(result) if a.json else "\n".join(f"{k:>30}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
