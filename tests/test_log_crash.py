"""Nothing lost: kill -9 of a process while a turn streams and the writer is busy, then
open the database again (real SQLite and real PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from log_child import STALLED
from sqlalchemy import select

from moderation.log import TurnLog
from moderation.log.query import TurnFilter, iter_records
from moderation.log.schema import integrity_problems, open_engine, turns

HERE = Path(__file__).resolve().parent


def test_kill_9_mid_stream_keeps_every_verdict_made_and_a_sound_database(log_db):
    child = subprocess.Popen(
        [sys.executable, str(HERE / "log_child.py"), log_db], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        made = 0
        for line in child.stdout:
            if line.startswith("CHECKS"):
                made = int(line.split()[1])
            if line.strip() == "STALL":
                break
        else:
            raise AssertionError(f"the child ended early: {child.stderr.read()[-2000:]}")
        assert made >= 4, "the stalled turn should have a prompt check and several partial checks"
        engine = open_engine(log_db)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the writer is a few milliseconds behind the stream
            found = list(iter_records(engine, TurnFilter(text=STALLED)))
            if found and len(found[0]["verdicts"]) == made:
                break
            time.sleep(0.02)
        with engine.connect() as conn:
            busy_before = conn.execute(select(turns.c.id).where(turns.c.user_text.like("busy %"))).all()
        engine.dispose()
        assert busy_before, "other turns were being written when the kill landed"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL

    engine = open_engine(log_db)  # "the next start"
    assert integrity_problems(engine) == []
    [stalled] = iter_records(engine, TurnFilter(text=STALLED))
    assert len(stalled["verdicts"]) == made
    assert [v["stage"] for v in stalled["verdicts"]] == ["prompt"] + ["partial"] * (made - 1)
    assert stalled["outcome"] is None and stalled["ended_at"] is None  # shown as unfinished
    assert len(list(iter_records(engine, TurnFilter(text="busy ")))) >= len(busy_before)
    log = TurnLog(engine)  # and the log goes on writing
    from test_log import play

    assert play(log, "after the restart").outcome == "answered"
    log.close()
    assert len(list(iter_records(engine, TurnFilter(text="after the restart")))) == 1
