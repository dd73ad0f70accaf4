"""What the moderation log costs a turn, and how fast its writer empties the queue.

    python bench/log.py [--db PATH|URL] [--turns 16] [--words 400] [--runs 5] [--json]

Each run plays `--turns` turns at once (threads), each streaming `--words` chunks from a
paced-free fake chat with a partial check every 4 chunks (a fake guard: the cost measured
is ours, not a model's), once bare and once through `TurnLog.record`, alternating.
Prints the median wall times and their ratio `logged_over_bare` (the stream's cost of
logging); `lag_ms`: how long after a logged run's last state its last row is in the
database; `rows_per_s`: rows (turns + verdicts) stored per second of logged run + lag.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent.parent / "tests")]


def play_all(n: int, words: int, log=None) -> int:
    from log_fakes import PacedChat
    from test_turn import FakeGuard

    from moderation.log import TurnMeta
    from moderation.turn import TurnSettings, run_turn

    settings, checks = TurnSettings(check_every=4), [0] * n

    def one(i):
        guard, chat = FakeGuard(), PacedChat(words=words)
        states = run_turn(guard, chat, [], f"turn {i}", settings)
        if log is not None:
            states = log.record(states, TurnMeta.of(settings, guard, chat, f"s{i}"))
        for state in states:  # noqa: B007  (the last state is kept)
            pass
        checks[i] = len(state.checks)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(checks)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", help="SQLite path or PostgreSQL URL (default: a new temporary SQLite file)")
    p.add_argument("--turns", type=int, default=16)
    p.add_argument("--words", type=int, default=400)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    from moderation.log import TurnLog
    from moderation.log.schema import open_engine

    db = a.db or str(Path(tempfile.mkdtemp()) / "bench.sqlite3")
    log = TurnLog(open_engine(db))
    bare, logged, rates, lags = [], [], [], []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        play_all(a.turns, a.words)
        bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rows = play_all(a.turns, a.words, log) + a.turns
        logged.append(time.perf_counter() - t0)
        assert log.flush(120)
        lags.append(time.perf_counter() - t0 - logged[-1])
        rates.append(rows / (time.perf_counter() - t0))
    log.close()
    result = {
        "db": "postgresql" if "://" in db else "sqlite",
        "turns": a.turns,
        "words": a.words,
        "bare_s": round(statistics.median(bare), 4),
        "logged_s": round(statistics.median(logged), 4),
        "logged_over_bare": round(statistics.median(logged) / statistics.median(bare), 3),
        "lag_ms": round(statistics.median(lags) * 1000, 1),
        "rows_per_s": round(statistics.median(rates)),
        "dropped": log.dropped,
    }
    print(json.dumps(result) if a.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
