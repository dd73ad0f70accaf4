"""bench/gpu.py --smoke: the `decode` section (compiled against eager decoding) runs end to
end on tiny shapes on a CPU, printing each figure as one JSON line as it is measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_decode_section_runs_on_tiny_shapes_and_prints_each_figure():
    run = subprocess.run(
        [sys.executable, "-u", str(ROOT / "bench" / "gpu.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    sections = [line.get("section") for line in lines]
    assert sections[:2] == ["machine", "build"]
    assert sections.index("decode.eager") < sections.index("decode.compiling") < sections.index("decode.compiled")
    assert sections.index("decode.compile") < sections.index("decode.compiled") < sections.index("decode")
    decode = lines[sections.index("decode")]["decode"]
    assert "error" not in decode, decode
    assert decode["eager"]["tokens"] == decode["compiled"]["tokens"] == 8
    assert decode["eager"]["tokens_per_s"] > 0 and decode["compiled"]["tokens_per_s"] > 0
    assert decode["compiled"]["same_tokens_as_eager"] is True  # float32 on a CPU: the same greedy tokens
    assert lines[-1]["decode"] == decode  # the last line: everything
