"""What moderation costs: a moderated turn against streaming the same reply unguarded.

    python bench/turn.py [--chat-model offline] [--guard-model offline] [--threshold 0.5]
                         [--prompt-check both] [--check-every 16] [--runs 5] [--threads N] [--json]

Any chat/guard pair (specs as for app.py); `--guard-model random:smollm2-135m` builds a
random-weight Llama Guard 2 of SmolLM2-135M's shape (30 layers, hidden 576, MLP 1536, 9
heads, 3 KV heads; the real Llama 3 tokenizer and the Guard 2 template), a guard that
costs about what the offline chat model does. A random guard needs `--threshold 1.0` to
let every check pass. Runs alternate in one process (bare, then each prompt-check mode,
the order rotating); the figures are medians:

- `moderated_over_bare[mode]`: wall time of the real `run_turn` (prompt check, the reply
  checked every `--check-every` tokens, the response check) over the bare stream's;
- `first_token_over_bare[mode]`: time to the first text a person sees, over the bare
  stream's time to its first text.

`--baseline` adds the turn as it ran before incremental checks and the parallel prompt
check (prompt check first, every check from the policy prefix), measured in the same run.
On a CPU, `all_cores` adds each mode with every computation on all cores (torch's own
default) instead of the cores split between the reply and the check beside it
(compute.cpu); `share_cores_over_all_cores` compares the two, first token and turn.
With them, `prompt_check_on_half_the_cores_over_bare_first_token` times the prompt check
alone on the threads it gets beside a generation: the parallel first token's floor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# name -> (layers, hidden, intermediate, heads, kv_heads)
RANDOM_GUARDS = {"smollm2-135m": (30, 576, 1536, 9, 3), "llama3-8b": (32, 4096, 14336, 32, 8)}


def build_random_guard(folder: Path, shape: str) -> Path:
    """A random Llama Guard 2 folder of a named shape (real tokenizer and template)."""
    import reference_templates
    import tiny_models

    layers, hidden, intermediate, heads, kv_heads = RANDOM_GUARDS[shape]
    return tiny_models.build_tiny_llama(
        folder,
        reference_templates.LLAMA_GUARD_2,
        layers=layers,
        hidden=hidden,
        intermediate=intermediate,
        heads=heads,
        kv_heads=kv_heads,
        name_or_path=f"random-llama-guard-2-{shape}",
    )


class WithoutSession:
    """The guard with no `session()`: every check starts from the policy prefix (as before
    incremental checks), for the in-run baseline."""

    def __init__(self, guard):
        self.guard, self.label = guard, guard.label

    def check(self, *args, **kwargs):
        return self.guard.check(*args, **kwargs)


def bare_run(chat, messages, settings) -> tuple[float, float, str]:
    """(total s, first text s, reply) of the unguarded stream."""
    t0, first, text = time.perf_counter(), None, ""
    for delta in chat.stream(messages, settings):
        if first is None and delta:
            first = time.perf_counter() - t0
        text += delta
    return time.perf_counter() - t0, first or 0.0, text


def moderated_run(guard, chat, prompt, turn_settings, share_cores: bool = True) -> tuple[float, float, str, int]:
    """(total s, first shown text s, reply, checks) of one moderated turn."""
    from compute import cpu
    from moderation.turn import run_turn

    t0, first, state = time.perf_counter(), None, None
    cpu.enabled = share_cores
    try:
        for state in run_turn(guard, chat, [], prompt, turn_settings):
            if first is None and state.shown:
                first = time.perf_counter() - t0
    finally:
        cpu.enabled = True
    assert state is not None and state.outcome == "answered", (state.outcome, state.notice)
    return time.perf_counter() - t0, first or 0.0, state.shown, len(state.checks)


def prompt_check_on_half_the_cores(guard, chat, prompt: str, threshold: float) -> tuple[float]:
    """(s,) of the prompt check alone on the threads it gets beside a generation (half the
    cores reserved, nothing else running): in the parallel check the first token cannot
    come before it, so its ratio to the bare first token is that figure's floor."""
    from compute import cpu

    session = guard.session() if hasattr(guard, "session") else guard
    with cpu.running(chat.model):  # the reservation a generation holds
        t0 = time.perf_counter()
        session.check([{"role": "user", "content": prompt}], threshold=threshold)
        return (time.perf_counter() - t0,)


def compare(chat, guard, prompt: str, variants: dict, generation, runs: int, probes: dict | None = None) -> dict:
    """Alternating runs of the bare stream and each moderated variant (name -> TurnSettings,
    or (guard, TurnSettings[, share_cores]) for a variant with a guard of its own, or with
    every computation on all cores), and of each probe (name -> a call returning (s,))."""
    messages = [{"role": "user", "content": prompt}]
    variants = {name: v if isinstance(v, tuple) else (guard, v) for name, v in variants.items()}
    probes = probes or {}
    paths = {"bare": lambda: bare_run(chat, messages, generation), **probes}
    paths.update({name: (lambda v=v: moderated_run(v[0], chat, prompt, *v[1:])) for name, v in variants.items()})
    for path in paths.values():  # warm-up
        path()
    rows: dict[str, list] = {name: [] for name in paths}
    names = list(paths)
    for i in range(runs):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            rows[name].append(paths[name]())
    med = lambda name, i: statistics.median(r[i] for r in rows[name])  # noqa: E731
    bare_total, bare_first = med("bare", 0), med("bare", 1)
    return {
        "runs": runs,
        "reply_chars": len(rows["bare"][0][2]),
        "same_reply": all(r[2] == rows["bare"][0][2] for name in variants for r in rows[name]),
        "guard_checks_per_turn": {name: rows[name][0][3] for name in variants},
        "bare_s": round(bare_total, 4),
        "bare_first_token_ms": round(bare_first * 1000, 1),
        "moderated_s": {name: round(med(name, 0), 4) for name in variants},
        "first_token_ms": {name: round(med(name, 1) * 1000, 1) for name in variants},
        "moderated_over_bare": {name: round(med(name, 0) / bare_total, 3) for name in variants},
        "first_token_over_bare": {name: round(med(name, 1) / bare_first, 3) for name in variants},
        **{f"{name}_ms": round(med(name, 0) * 1000, 1) for name in probes},
        **{f"{name}_over_bare_first_token": round(med(name, 0) / bare_first, 3) for name in probes},
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chat-model", default="offline")
    p.add_argument(
        "--guard-model", default="offline", help=f"a guard spec, or random:SHAPE ({', '.join(RANDOM_GUARDS)})"
    )
    p.add_argument("--threshold", type=float, default=0.5, help="1.0 lets a random guard pass every check")
    p.add_argument("--prompt", default="Explain in a few sentences how a rainbow forms.")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--check-every", type=int, default=16)
    p.add_argument("--stream-policy", default="stream-first", choices=["stream-first", "hold"])
    p.add_argument("--prompt-check", default="both", choices=["first", "parallel", "both"])
    p.add_argument(
        "--baseline",
        action="store_true",
        help="also run the turn as before this change (prompt check first, no incremental checks)",
    )
    p.add_argument(
        "--no-all-cores", action="store_true", help="leave out the variants with every computation on all cores (CPU)"
    )
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.threads:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(a.threads)

    import torch

    from chat import GenerationSettings, load_chat
    from compute import cpu
    from guard import load_guard
    from moderation.turn import PARALLEL, TurnSettings

    chat = load_chat(a.chat_model)
    with tempfile.TemporaryDirectory() as folder:
        spec = a.guard_model
        if spec.startswith("random:"):
            spec = str(build_random_guard(Path(folder), spec.removeprefix("random:")))
        guard = load_guard(spec, dtype="float32" if spec != a.guard_model else "auto", timeout_s=600.0)
    generation = GenerationSettings(temperature=0.0, max_new_tokens=a.max_new_tokens, seed=0)
    modes = ["first", "parallel"] if a.prompt_check == "both" else [a.prompt_check]
    variants = {
        mode: TurnSettings(
            threshold=a.threshold,
            check_every=a.check_every,
            stream_policy=a.stream_policy,
            generation=generation,
            prompt_check=mode,
            guard_timeout_s=600.0,
        )
        for mode in modes
    }  # a generous deadline: a busy machine must not fail the turn
    if a.baseline:
        variants["baseline"] = (WithoutSession(guard), replace(variants[modes[0]], prompt_check="first"))
    probes = {}
    if getattr(chat, "model", None) is not None and cpu.on_cpu(chat.model) and not a.no_all_cores:
        variants.update({f"{mode}_all_cores": (guard, variants[mode], False) for mode in modes})
        if PARALLEL in modes:
            probes["prompt_check_on_half_the_cores"] = lambda: prompt_check_on_half_the_cores(
                guard, chat, a.prompt, a.threshold
            )
    result = {
        "chat_model": chat.label,
        "guard_model": guard.label,
        "threshold": a.threshold,
        "check_every": a.check_every,
        "stream_policy": a.stream_policy,
        "torch_threads": torch.get_num_threads(),
        **compare(chat, guard, a.prompt, variants, generation, a.runs, probes),
    }
    result["share_cores_over_all_cores"] = {
        f"{mode} {what}": round(result[key][mode] / result[key][f"{mode}_all_cores"], 3)
        for mode in modes
        if f"{mode}_all_cores" in variants
        for what, key in (("first token", "first_token_ms"), ("turn", "moderated_s"))
    }
    if a.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")


if __name__ == "__main__":
    main()
