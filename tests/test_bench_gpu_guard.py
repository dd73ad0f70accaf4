"""bench/gpu_guard.py --smoke runs its sections on the tiny model on the CPU: one JSON line
per figure, as measured (the GPU run prints the same lines with the 8B shape)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_guard_smoke_prints_each_section():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-u", "bench/gpu_guard.py", "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    figures = {line["section"]: line[line["section"]] for line in lines}
    assert list(figures) == ["guard_machine", "guard_compiled_64", "guard_batched_1", "guard_batched_4"]
    assert figures["guard_compiled_64"]["eager_p50_ms"] > 0
    assert "skipped" in figures["guard_compiled_64"]["compiled"]
    for n in (1, 4):
        batched = figures[f"guard_batched_{n}"]
        assert "error" not in batched, batched
        assert batched["checks_per_s"] > 0 and batched["p95_ms"] >= batched["p50_ms"] > 0
    assert figures["guard_batched_4"]["mean_pass_size"] >= 1
    assert "checks_per_s_over_1" in figures["guard_batched_4"]
