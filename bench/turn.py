"""What moderation costs: a moderated turn against streaming the same reply unguarded.

    python bench/turn.py [--chat-model offline] [--guard-model offline] [--runs 5] [--json]

Both sides use the same chat model, prompt and greedy settings, in one process,
alternating runs. The moderated side is the real `run_turn`: prompt check, streamed
reply with a check every `--check-every` chunks, and the final response check.
Prints the median wall times, their ratio `moderated_over_bare`, and the time to
the first visible token of each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def bare_run(chat, messages, settings) -> tuple[float, float, str]:
    t0, first, text = time.perf_counter(), None, ""
    for delta in chat.stream(messages, settings):
        if first is None and delta:
            first = time.perf_counter() - t0
        text += delta
    return time.perf_counter() - t0, first or 0.0, text


def moderated_run(guard, chat, prompt, turn_settings) -> tuple[float, float, str, int]:
    from moderation.turn import run_turn

    t0, first, state = time.perf_counter(), None, None
    for state in run_turn(guard, chat, [], prompt, turn_settings):
        if first is None and state.shown:
            first = time.perf_counter() - t0
    assert state is not None and state.outcome == "answered", (state.outcome, state.notice)
    return time.perf_counter() - t0, first or 0.0, state.shown, len(state.checks)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chat-model", default="offline")
    p.add_argument("--guard-model", default="offline")
    p.add_argument("--prompt", default="Explain in a few sentences how a rainbow forms.")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--check-every", type=int, default=16)
    p.add_argument("--stream-policy", default="stream-first", choices=["stream-first", "hold"])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)

    from chat import GenerationSettings, load_chat
    from guard import load_guard
    from moderation.turn import TurnSettings

    chat, guard = load_chat(a.chat_model), load_guard(a.guard_model)
    generation = GenerationSettings(temperature=0.0, max_new_tokens=a.max_new_tokens, seed=0)
    ts = TurnSettings(check_every=a.check_every, stream_policy=a.stream_policy, generation=generation)
    messages = [{"role": "user", "content": a.prompt}]

    bare_run(chat, messages, generation)  # warm-up both paths once
    moderated_run(guard, chat, a.prompt, ts)
    bare, moderated = [], []
    for _ in range(a.runs):
        bare.append(bare_run(chat, messages, generation))
        moderated.append(moderated_run(guard, chat, a.prompt, ts))
    same_reply = all(m[2] == b[2] for m, b in zip(moderated, bare))
    med = lambda rows, i: statistics.median(r[i] for r in rows)  # noqa: E731
    result = {
        "chat_model": chat.label, "guard_model": guard.label, "runs": a.runs,
        "check_every": a.check_every, "stream_policy": a.stream_policy,
        "reply_chars": len(bare[0][2]), "same_reply": same_reply,
        "guard_checks_per_turn": moderated[0][3],
        "bare_s": round(med(bare, 0), 4), "moderated_s": round(med(moderated, 0), 4),
        "moderated_over_bare": round(med(moderated, 0) / med(bare, 0), 3),
        "first_token_ms": {"bare": round(med(bare, 1) * 1000, 1),
                           "moderated": round(med(moderated, 1) * 1000, 1)},
    }
    if a.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")


if __name__ == "__main__":
    main()
