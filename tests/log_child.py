"""A process that logs turns until it is killed (for the kill -9 test).

    python tests/log_child.py DB

One turn stalls mid-stream (its chat blocks after some words); meanwhile other turns run
back to back so that the writer is busy when the kill lands. Prints "CHECKS n" whenever
the stalled turn's stream shows a new verdict, then "STALL" when its chat blocks.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from log_fakes import PacedChat  # noqa: E402
from test_turn import FakeGuard  # noqa: E402

from moderation.log import TurnLog, TurnMeta  # noqa: E402
from moderation.log.schema import open_engine  # noqa: E402
from moderation.turn import HOLD, TurnSettings, run_turn  # noqa: E402

STALLED = "the turn that is killed mid-stream"


def busy(log: TurnLog, settings: TurnSettings) -> None:
    i = 0
    while True:
        guard, chat = FakeGuard(), PacedChat(words=6)
        for _ in log.record(run_turn(guard, chat, [], f"busy {i}", settings), TurnMeta.of(settings, guard, chat, "b")):
            pass
        i += 1


def main(db: str) -> None:
    log = TurnLog(open_engine(db))
    settings = TurnSettings(check_every=2, stream_policy=HOLD)  # hold: each partial check is waited for
    threading.Thread(target=busy, args=(log, settings), daemon=True).start()
    guard, chat = (
        FakeGuard(),
        PacedChat(words=1000, pause_s=0.005, stall_after=12, on_stall=lambda: print("STALL", flush=True)),
    )
    shown = 0
    for state in log.record(run_turn(guard, chat, [], STALLED, settings), TurnMeta.of(settings, guard, chat, "k")):
        if len(state.checks) != shown:
            shown = len(state.checks)
            print(f"CHECKS {shown}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
