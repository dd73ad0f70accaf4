"""The log keeps where a message judged in windows scored highest (issue 21, "why it was
flagged"): numbers only, so `--log-text none` still keeps no text. Real offline guard, real
SQLite and PostgreSQL; a log written by version 2 of the schema gains the column."""

from __future__ import annotations

import pytest
from log_fakes import PacedChat
from sqlalchemy import func, select, update
from test_guard_highest_window import user
from test_log import play
from test_offline_long_input import BOMB, FILLER, PARTY

from guard.offline import OfflineGuard
from moderation.log import TurnLog
from moderation.log.query import iter_records
from moderation.log.schema import SCHEMA_VERSION, open_engine, schema_table, turns, verdicts
from moderation.log.writer import TEXT_NONE
from moderation.turn import TurnSettings

LONG = PARTY + FILLER + " " + BOMB + FILLER * 2


@pytest.fixture(scope="module")
def offline() -> OfflineGuard:
    return OfflineGuard.load()


def test_the_highest_window_is_logged_as_numbers_and_no_text_with_log_text_none(log_db, offline):
    engine = open_engine(log_db)
    try:
        log = TurnLog(engine, text=TEXT_NONE)
        final = play(log, LONG, guard=offline, chat=PacedChat(words=3), settings=TurnSettings(check_every=0))
        log.close()
        [record] = iter_records(engine)
        made = final.checks[0].verdict.highest_window
        assert made is not None and not final.checks[0].verdict.safe  # the prompt: flagged, in its windows
        assert record["verdicts"][0]["highest_window"] == made.to_dict()
        assert record["user_text"] is None and record["reply"] is None
        with engine.connect() as conn:  # nothing of the message in any column of any row
            rows = [*conn.execute(select(turns)), *conn.execute(select(verdicts))]
        stored = " ".join(str(value) for row in rows for value in row)
        assert "pipe bomb" not in stored and "birthday" not in stored
    finally:
        engine.dispose()


def test_a_version_2_log_gains_the_highest_window_column(log_db, offline):
    e = open_engine(log_db)
    log = TurnLog(e)
    play(log, "Tell me about tea")
    log.close()
    with e.begin() as conn:  # as an app before highest windows left it
        conn.execute(update(schema_table).values(version=2))
        conn.exec_driver_sql("ALTER TABLE verdicts DROP COLUMN highest_window")
    e.dispose()
    e = open_engine(log_db)
    try:
        with e.connect() as conn:
            assert conn.execute(select(func.max(schema_table.c.version))).scalar() == SCHEMA_VERSION == 3
        [record] = iter_records(e)
        assert all(v["highest_window"] is None for v in record["verdicts"])  # older rows: none stored
        log = TurnLog(e)
        play(log, LONG, guard=offline, settings=TurnSettings(check_every=0))
        log.close()
        newest = next(iter_records(e))
        assert newest["verdicts"][0]["highest_window"]["count"] >= 4
        assert offline.check(user(LONG)).highest_window.to_dict() == newest["verdicts"][0]["highest_window"]
    finally:
        e.dispose()
