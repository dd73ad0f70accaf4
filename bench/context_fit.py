"""What fitting a long history to the context costs: the linear fit against the old one.

    python bench/context_fit.py [--pairs 250 500 1000] [--window 8192] [--json]

A tiny random Llama with the real Llama 3 tokenizer and chat template (tests/tiny_models)
stands in for the chat model; only its tokenizer and template are used. Each history is
`--pairs` user/assistant turns of a few words (what a /v1 body under 1 MB can carry),
fitted to `--window` tokens with 512 for the reply. The old fit, which drops two
messages a round and renders the rest again, is the oracle: the figures say how long
each took, how many tokenizer calls each made, and that both kept the same messages.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from reference_templates import LLAMA3_INSTRUCT  # noqa: E402
from test_chat_context import CountingTokenizer, quadratic_fit  # noqa: E402
from tiny_models import build_tiny_llama  # noqa: E402

from chat import GenerationSettings  # noqa: E402
from chat.local import LocalChat  # noqa: E402
from weights import load_causal_lm  # noqa: E402


def history(pairs: int) -> list[dict]:
    turns = [{"role": role, "content": f"{role} turn {i}"} for i in range(pairs) for role in ("user", "assistant")]
    return [{"role": "system", "content": "Be brief."}] + turns + [{"role": "user", "content": "And now?"}]


def timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--window", type=int, default=8192)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer = load_causal_lm(str(build_tiny_llama(Path(tmp), LLAMA3_INSTRUCT)))
    chat = LocalChat(model, tokenizer, "tiny")
    chat.context_window, settings = args.window, GenerationSettings(max_new_tokens=512)
    chat.tokenizer = counting = CountingTokenizer(chat.tokenizer)
    rows = []
    for pairs in args.pairs:
        msgs = history(pairs)
        counting.calls = 0
        linear_s, fitted = timed(lambda msgs=msgs: chat.fit(msgs, settings))
        linear_calls, counting.calls = counting.calls, 0
        old_s, (kept, dropped) = timed(
            lambda msgs=msgs: quadratic_fit(msgs, lambda m: len(chat.prompt_ids(m)), args.window, 512)
        )
        rows.append(
            dict(
                pairs=pairs,
                linear_s=round(linear_s, 3),
                old_s=round(old_s, 3),
                old_over_linear=round(old_s / linear_s, 1),
                linear_calls=linear_calls,
                old_calls=counting.calls,
                same=(kept, dropped) == (fitted.messages, fitted.dropped),
            )
        )
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for row in rows:
            print(" ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
