"""The moderation log on real SQLite and real PostgreSQL: rows appear while a turn streams,
concurrent turns lose nothing, the text policy holds, retention prunes, the export CLI
gives back what was stored.

Turns run through `run_turn` with fakes for our own control flow (a guard that flags a
word, a paced chat); what is checked is what lands in the database."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from log_fakes import PacedChat
from sqlalchemy import func, select, update
from test_turn import FakeGuard

from moderation.log import TurnLog, TurnMeta
from moderation.log.export import read_records
from moderation.log.query import TurnFilter, iter_records, streamed_unscanned, summary
from moderation.log.schema import (
    SCHEMA_VERSION,
    SchemaError,
    integrity_problems,
    open_engine,
    schema_table,
    turns,
    utcnow,
    verdicts,
)
from moderation.log.writer import ABANDONED, TEXT_FLAGGED, TEXT_NONE
from moderation.turn import ANSWERED, REFUSED, RETRACTED, TurnSettings, run_turn

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = TurnSettings(check_every=2)


@pytest.fixture
def engine(log_db):
    e = open_engine(log_db)
    yield e
    e.dispose()


def play(log: TurnLog, text: str, chat=None, guard=None, session="s1", settings=SETTINGS):
    guard, chat = guard or FakeGuard(), chat or PacedChat(words=6)
    states = list(log.record(run_turn(guard, chat, [], text, settings), TurnMeta.of(settings, guard, chat, session)))
    return states[-1]


def wait_until(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar()


def test_a_turns_rows_appear_while_it_streams(engine):
    log = TurnLog(engine)
    guard, chat = FakeGuard(), PacedChat(words=12)
    stream = log.record(
        run_turn(guard, chat, [], "Tell me about tea", SETTINGS), TurnMeta.of(SETTINGS, guard, chat, "s")
    )
    state = next(stream)
    while not any(c.stage == "partial" for c in state.checks):  # stop reading mid-stream
        state = next(stream)
    made = len(state.checks)
    wait_until(lambda: count(engine, verdicts) == made)  # the turn is still open
    with engine.connect() as conn:
        row = conn.execute(select(turns)).one()
        stages = [r.stage for r in conn.execute(select(verdicts.c.stage).order_by(verdicts.c.seq))]
    assert row.outcome is None and row.ended_at is None and row.user_text == "Tell me about tea"
    # every verdict made so far is stored while the turn is still open (on a slow machine the
    # first state with a stream check can already hold the response check too)
    assert stages == [c.stage for c in state.checks] and stages[0] == "prompt" and "partial" in stages
    rest = list(stream)  # ends the turn in the log (that state may already have been the last)
    final = rest[-1] if rest else state
    assert final.outcome == ANSWERED
    log.close()
    [record] = iter_records(engine)
    assert record["outcome"] == ANSWERED and record["reply"] == final.reply and record["chat_started"] is True
    assert [v["stage"] for v in record["verdicts"]] == [c.stage for c in final.checks]
    assert record["tokens"] == 12 and record["guard"] == "fake guard" and record["chat"] == "paced chat"
    assert json.loads(json.dumps(record["policy"]))["threshold"] == 0.5


def test_sixteen_concurrent_turns_lose_no_row(engine, log_db):
    # four logs on one database, as four app replicas (or processes) would write to it
    logs = [TurnLog(open_engine(log_db)) for _ in range(4)]
    finals, errors = [None] * 16, []

    def one(i):
        try:
            text = f"question {i}" + (" bomb" if i % 4 == 0 else "")
            chat = PacedChat(words=10, pause_s=0.002, word="bomb" if i % 4 == 1 else "word")
            finals[i] = play(logs[i % 4], text, chat=chat, guard=FakeGuard(delay=0.005), session=f"s{i}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for log in logs:
        log.close()
    assert not errors
    assert sum(log.dropped for log in logs) == 0
    records = {r["user_text"]: r for r in iter_records(engine)}
    assert len(records) == 16
    for final in finals:
        r = records[final.user]
        assert r["outcome"] == final.outcome
        assert [(v["stage"], v["safe"]) for v in r["verdicts"]] == [(c.stage, c.verdict.safe) for c in final.checks]
    assert {f.outcome for f in finals} == {ANSWERED, REFUSED, RETRACTED}
    assert integrity_problems(engine) == []


def test_flagged_text_policy_keeps_no_text_of_answered_turns(engine):
    log = TurnLog(engine, text=TEXT_FLAGGED)
    answered = play(log, "What is tea?")
    refused = play(log, "How to build a bomb")
    retracted = play(log, "Say it", chat=PacedChat(words=4, word="bomb"))
    log.close()
    got = {r["outcome"]: r for r in iter_records(engine)}
    assert answered.outcome == ANSWERED and got[ANSWERED]["user_text"] is None and got[ANSWERED]["reply"] is None
    assert got[ANSWERED]["verdicts"] and got[ANSWERED]["text_policy"] == TEXT_FLAGGED  # verdicts are kept
    assert got[REFUSED]["user_text"] == refused.user
    assert got[RETRACTED]["user_text"] == "Say it" and got[RETRACTED]["reply"] == retracted.reply != ""


def test_no_text_policy_keeps_no_text_at_all(engine):
    log = TurnLog(engine, text=TEXT_NONE)
    play(log, "How to build a bomb")
    log.close()
    [r] = iter_records(engine)
    assert r["outcome"] == REFUSED and r["user_text"] is None and r["reply"] is None
    assert r["verdicts"][0]["categories"] == [{"code": "S8", "name": "Indiscriminate Weapons"}]


def test_a_stream_closed_early_is_logged_as_abandoned(engine):
    log = TurnLog(engine)
    guard, chat = FakeGuard(), PacedChat(words=50)
    stream = log.record(run_turn(guard, chat, [], "hi", SETTINGS), TurnMeta.of(SETTINGS, guard, chat, "s"))
    for state in stream:
        if len(state.reply) > 20:
            break
    stream.close()  # the visitor left
    log.close()
    [r] = iter_records(engine)
    assert r["outcome"] == ABANDONED and r["reply"] == state.reply and r["tokens"] >= 3
    assert streamed_unscanned(r) and summary(r)["unscanned"] == "yes"
    answered = TurnLog(engine)
    play(answered, "and a whole one")
    answered.close()
    assert [summary(r)["unscanned"] for r in iter_records(engine)] == ["", "yes"]  # newest first


def test_retention_deletes_old_turns_and_their_verdicts(engine):
    log = TurnLog(engine)
    play(log, "old one")
    play(log, "new one")
    log.flush()
    with engine.begin() as conn:
        conn.execute(
            update(turns).where(turns.c.user_text == "old one").values(started_at=utcnow() - timedelta(days=40))
        )
    log.close()
    pruner = TurnLog(engine, retention_days=30)  # prunes when it opens
    pruner.close()
    assert [r["user_text"] for r in iter_records(engine)] == ["new one"]
    assert count(engine, verdicts) == len(next(iter(iter_records(engine)))["verdicts"])


def test_a_database_from_a_newer_app_is_refused(log_db):
    e = open_engine(log_db)
    with e.begin() as conn:
        conn.execute(update(schema_table).values(version=SCHEMA_VERSION + 1))
    e.dispose()
    with pytest.raises(SchemaError, match="newer|upgrade"):
        open_engine(log_db)


def test_filters_select_by_outcome_category_date_and_text(engine):
    log = TurnLog(engine)
    play(log, "What is green tea?")
    play(log, "bomb recipe please")
    log.close()
    pick = lambda **kw: [r["user_text"] for r in iter_records(engine, TurnFilter(**kw))]  # noqa: E731
    assert pick(outcome=REFUSED) == ["bomb recipe please"]
    assert pick(category="s8") == ["bomb recipe please"] and pick(category="S1") == []
    assert pick(text="GREEN") == ["What is green tea?"] and pick(text="50%") == []
    assert len(pick(since=utcnow() - timedelta(hours=1))) == 2 and pick(since=utcnow() + timedelta(hours=1)) == []


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_cli_round_trips_the_stored_records(engine, log_db, fmt):
    log = TurnLog(engine)
    play(log, 'Quotes " commas, and\nnew lines')
    play(log, "bomb recipe please")
    play(log, '=HYPERLINK("http://evil.example","x")', chat=PacedChat(words=2, word="+cmd|' /C calc'!A"))
    log.close()
    out = subprocess.run(
        [sys.executable, "-m", "moderation.log", "export", "--db", log_db, "--format", fmt],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "exported 3 turns" in out.stderr
    assert read_records(out.stdout, fmt) == list(iter_records(engine))
    if fmt == "csv":  # the CLI writes what /review/export.csv does: no cell a spreadsheet would run
        cells = [c for row in csv.reader(io.StringIO(out.stdout, newline="")) for c in row]
        assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
        assert """'=HYPERLINK("http://evil.example","x")""" in cells


def test_export_cli_errors_are_messages_not_tracebacks(tmp_path):
    def run(*a):
        return subprocess.run(
            [sys.executable, "-m", "moderation.log", "export", *a],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    missing = run("--db", str(tmp_path / "nope.sqlite3"))
    bad_date = run("--db", str(tmp_path / "nope.sqlite3"), "--since", "yesterday")
    for out in (missing, bad_date):
        assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "no log database" in missing.stderr and "not a date" in bad_date.stderr


def test_a_new_sqlite_log_is_readable_by_its_owner_only(tmp_path):
    open_engine(str(tmp_path / "private.sqlite3")).dispose()
    assert (tmp_path / "private.sqlite3").stat().st_mode & 0o077 == 0


def test_flagged_text_policy_keeps_no_text_of_a_turn_the_visitor_left(engine):
    log = TurnLog(engine, text=TEXT_FLAGGED)
    guard, chat = FakeGuard(), PacedChat(words=50)
    stream = log.record(run_turn(guard, chat, [], "hi", SETTINGS), TurnMeta.of(SETTINGS, guard, chat, "s"))
    next(stream)
    stream.close()
    log.close()
    [r] = iter_records(engine)
    assert r["outcome"] == ABANDONED and r["user_text"] is None and r["reply"] is None


def test_closing_the_logged_stream_closes_the_turn_and_its_chat(engine):
    log = TurnLog(engine)
    guard, chat = FakeGuard(), PacedChat(words=500)
    inner = run_turn(guard, chat, [], "hi", SETTINGS)
    stream = log.record(inner, TurnMeta.of(SETTINGS, guard, chat, "s"))
    for state in stream:
        if state.reply:
            break
    stream.close()
    assert inner.gi_frame is None  # the turn's generator is finished, not left for the garbage collector
    log.close()


def test_a_turn_that_raises_is_logged_as_crashed_and_the_error_propagates(engine):
    class BrokenChat(PacedChat):
        def stream(self, messages, settings, stop=None):
            yield "a "
            raise KeyError("a bug")

    log = TurnLog(engine)
    guard, chat = FakeGuard(), BrokenChat()
    with pytest.raises(KeyError):
        for _ in log.record(run_turn(guard, chat, [], "hi", SETTINGS), TurnMeta.of(SETTINGS, guard, chat, "s")):
            pass
    log.close()
    [r] = iter_records(engine)
    assert r["outcome"] == "crashed" and "KeyError" in r["notice"] and r["reply"] == "a "


def test_replicas_starting_together_all_open_the_new_database(log_db):
    opened, errors = [], []

    def start():
        try:
            opened.append(open_engine(log_db))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(opened) == 8
    with opened[0].connect() as conn:
        assert {v for (v,) in conn.execute(select(schema_table.c.version))} == {SCHEMA_VERSION}
    for e in opened:
        e.dispose()


def test_the_review_keeps_to_the_newest_turns_and_counts_all(engine, monkeypatch):
    from moderation.log import review as page

    monkeypatch.setattr(page, "TABLE_ROWS", 2)
    monkeypatch.setattr(page, "STATS_TURNS", 3)
    log = TurnLog(engine)
    for i in range(5):
        play(log, f"turn {i}" + (" bomb" if i == 4 else ""))
    log.close()
    r = page.review(engine, TurnFilter())
    assert r.total == 5 and r.counted == 3
    assert list(r.table["Message"]) == ["turn 4 bomb", "turn 3"]
    assert r.by_outcome.set_index("outcome")["count"].to_dict() == {"answered": 2, "refused": 1}
    newest = list(iter_records(engine))[:3]
    partial = sum(v["stage"] == "partial" for rec in newest for v in rec["verdicts"])
    assert r.latency.set_index("stage")["checks"].to_dict() == {"prompt": 3, "partial": partial, "response": 2}


def test_each_verdict_keeps_its_category_scores(engine):
    """The real offline guard's per-category scores are stored with each verdict and read back."""
    from guard.offline import OfflineGuard

    log = TurnLog(engine)
    final = play(log, "How do I make a pipe bomb?", guard=OfflineGuard.load())
    log.close()
    [record] = iter_records(engine)
    stored = [v["category_scores"] for v in record["verdicts"]]
    made = [c.verdict.category_scores for c in final.checks]
    assert stored and len(stored) == len(made) and all(len(s) == 11 for s in stored)
    for got, want in zip(stored, made, strict=True):
        assert got == pytest.approx(want, abs=1e-12)
    assert max(stored[0], key=stored[0].get) == "S8"


def test_a_version_1_log_gains_the_category_scores_column(log_db):
    e = open_engine(log_db)
    log = TurnLog(e)
    play(log, "Tell me about tea")
    log.close()
    with e.begin() as conn:  # as an app before per-category scores left it
        conn.execute(update(schema_table).values(version=1))
        conn.exec_driver_sql("ALTER TABLE verdicts DROP COLUMN category_scores")
        conn.exec_driver_sql("ALTER TABLE verdicts DROP COLUMN highest_window")  # version 3's
    e.dispose()
    e = open_engine(log_db)
    try:
        with e.connect() as conn:
            assert conn.execute(select(func.max(schema_table.c.version))).scalar() == SCHEMA_VERSION == 3
        [record] = iter_records(e)
        assert all(v["category_scores"] == {} for v in record["verdicts"])  # older rows: none stored
        log = TurnLog(e)
        play(log, "How do I make a bomb?")
        log.close()
        assert len(list(iter_records(e))) == 2  # and new verdicts are written to the new column
    finally:
        e.dispose()
