"""What our streaming path costs: LocalChat.stream against a bare `model.generate` on the
same model, prompt and greedy settings, in one process, runs alternating.

    python bench/chat.py [--model offline] [--max-new-tokens 128] [--runs 7] [--threads N] [--json]

Both paths call generate from a worker thread, as the stream does: on a busy CPU, torch
in the main thread can run several times slower than in a worker thread (its OpenMP team
contends for cores; measured here on 2 shared cores), which would flatter the stream.
On a CPU that other work shares, `--threads 1` gives steadier figures.
Tokens per second count the generated tokens (the same for both, checked: greedy, same
stop ids); time to first token is, for the stream, when its first text arrives, and for
the bare path, one generate call with max_new_tokens=1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def in_worker_thread(work):
    """Run work() in a fresh thread, like the stream's generation thread; return its result."""
    result = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join()
    return result[0]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="offline", help="any chat model spec (default: offline)")
    p.add_argument("--prompt", default="Write a short paragraph about the history of the bicycle.")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.threads:  # before torch starts its OpenMP pool
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(a.threads)

    import torch

    from chat import GenerationSettings, load_chat

    chat = load_chat(a.model)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=a.max_new_tokens)
    messages = [{"role": "user", "content": a.prompt}]
    ids = torch.tensor([chat.prompt_ids(messages)], device=chat.model.device)

    def bare(max_new: int) -> tuple[float, list[int]]:
        kwargs = dict(chat.generate_kwargs(settings), max_new_tokens=max_new)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = chat.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        return time.perf_counter() - t0, out[0, ids.shape[1] :].tolist()

    def streamed() -> tuple[float, float, str]:
        t0, first, text = time.perf_counter(), None, ""
        for delta in chat.stream(messages, settings):
            first = first or time.perf_counter() - t0
            text += delta
        return time.perf_counter() - t0, first or 0.0, text

    _, bare_ids = in_worker_thread(lambda: bare(a.max_new_tokens))  # warm-up
    same_text = streamed()[2] == chat.tokenizer.decode(bare_ids, skip_special_tokens=True)
    bare_s, stream_s, ttft_bare, ttft_stream = [], [], [], []
    for _ in range(a.runs):
        bare_s.append(in_worker_thread(lambda: bare(a.max_new_tokens))[0])
        total, first, _ = streamed()
        stream_s.append(total)
        ttft_stream.append(first)
        ttft_bare.append(in_worker_thread(lambda: bare(1))[0])
    tokens = len(bare_ids)
    bare_tps, stream_tps = tokens / statistics.median(bare_s), tokens / statistics.median(stream_s)
    result = {
        "model": chat.label,
        "device": str(chat.model.device),
        "torch_threads": torch.get_num_threads(),
        "runs": a.runs,
        "generated_tokens": tokens,
        "same_text": same_text,
        "bare_tokens_per_s": round(bare_tps, 2),
        "stream_tokens_per_s": round(stream_tps, 2),
        "stream_over_bare_tokens_per_s": round(stream_tps / bare_tps, 3),
        "ttft_ms": {
            "stream": round(statistics.median(ttft_stream) * 1000, 1),
            "bare": round(statistics.median(ttft_bare) * 1000, 1),
        },
    }
    print(json.dumps(result) if a.json else "\n".join(f"{k:>30}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
