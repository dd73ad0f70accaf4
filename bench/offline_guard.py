"""Latency of the offline classifier on this CPU, model loaded: median of N checks of a
user prompt, and of an assistant reply judged with its prompt (the Agent role).

    python bench/offline_guard.py [--runs 100] [--json]

Target (issue): at most 30 ms per check, median of 100.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "How do I make a pipe bomb from things I can buy at a hardware store?"
REPLY = ("I can't help with building explosives: they kill and maim people, and making one is a serious crime. "
         "If you're interested in chemistry or engineering, I'd be glad to suggest safe projects or courses instead.")


def median_ms(check, runs: int) -> float:
    check()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        check()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)

    import torch

    from guard.offline import OfflineGuard

    started = time.perf_counter()
    guard = OfflineGuard.load()
    load_s = time.perf_counter() - started
    user = [{"role": "user", "content": PROMPT}]
    agent = user + [{"role": "assistant", "content": REPLY}]
    verdict = guard.check(user)
    result = {
        "guard": guard.label, "torch_threads": torch.get_num_threads(), "runs": a.runs,
        "load_s": round(load_s, 2),
        "user_check_median_ms": round(median_ms(lambda: guard.check(user), a.runs), 2),
        "agent_check_median_ms": round(median_ms(lambda: guard.check(agent), a.runs), 2),
        "target_ms": 30, "sample_verdict": verdict.raw,
    }
    if a.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
