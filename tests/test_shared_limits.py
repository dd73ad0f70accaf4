"""The /v1 limits across replicas (issue 23): with the log in PostgreSQL, `--rate-limit`
and `--api-concurrency` hold for the whole deployment. Two replicas are two real app
servers (`app.start`, each with its own limits, log and admission) sharing one real
PostgreSQL; fakes stand in for the models only (a chat model that waits at a gate)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from serve import free_port
from sqlalchemy import event, text
from test_api_bounds import DEADLINE_S, Gate, GatedChat, models_of, wait_until
from test_api_flow import AUTH, KEY
from test_turn import FakeChat, FakeGuard

from app import start
from moderation.access import Rate, RateLimiter
from moderation.limits import LimitsFull, LimitsUnavailable, ReplicaLimits
from moderation.settings import parse_config
from moderation.shared_limits import SharedLimits, open_limits

CHILD = Path(__file__).resolve().parent / "limits_child.py"
ASK = {"messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def pg_db(postgres_admin):
    """A fresh database in the session's PostgreSQL cluster: its URL."""
    from postgres import fresh_database

    with fresh_database(postgres_admin) as url:
        yield url


def replica_config(db: str, *flags: str):
    return parse_config(
        ["--chat-model", "offline", "--guard-model", "offline", "--api-key", KEY, "--check-every", "0"]
        + ["--host", "127.0.0.1", "--port", str(free_port()), "--log-db", db, *flags]
    )


@contextlib.contextmanager
def replica(db: str, *flags: str, chat=None):
    """One app replica (the real server, as `python app.py` starts it) on `db`: its /v1 URL."""
    config = replica_config(db, *flags)
    served = start(config, block=False, quiet=True, models=models_of(FakeGuard(), chat or FakeChat(["fine"])))
    try:
        yield f"http://127.0.0.1:{config.port}/v1"
    finally:
        served.close()


# ---- the counter: the same token bucket as one replica's, done atomically in PostgreSQL -----


@pytest.fixture(scope="module")
def shared(postgres_admin):
    from postgres import fresh_database

    with fresh_database(postgres_admin) as url:
        limits = SharedLimits.connect(url, Rate(1, 1.0), None)
        yield limits
        limits.close()


@settings(max_examples=40)
@given(
    count=st.integers(1, 20),
    seconds=st.sampled_from([1.0, 60.0, 3600.0]),
    steps=st.lists(st.tuples(st.integers(0, 2), st.floats(0, 1.5, allow_nan=False)), min_size=1, max_size=60),
)
def test_the_database_bucket_is_the_replica_bucket(shared, count, seconds, steps):
    """Any sequence of requests (which of three callers, and the time since the request
    before, in refill intervals) is admitted or told to wait exactly as by the in-memory
    limiter, step for step."""
    rate, prefix = Rate(count, seconds), uuid.uuid4().hex
    shared.rate, memory = rate, RateLimiter(rate)  # one connected limiter for every example
    now = time.time() + 1e6  # in the future: never an idle bucket that the keeper forgets
    for who, dt in steps:
        now += dt * seconds / count
        identity = f"{prefix}:{who}"
        assert shared.take(identity, now) == pytest.approx(memory.take(identity, now), rel=1e-12, abs=1e-12)


def statements(engine) -> list[str]:
    """The statements `engine` sends from here on (each is one round trip in autocommit)."""
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda conn, cur, stmt, *a: sent.append(stmt))
    return sent


def test_a_check_is_one_statement_and_the_table_holds_no_key(pg_db, caplog):
    limits = SharedLimits.connect(pg_db, Rate(5, 60.0), 2)
    try:
        sent = statements(limits.engine)
        assert limits.take("key:secret-api-key-1") == 0.0
        assert len(sent) == 1 and sent[0].startswith("INSERT INTO api_rate_buckets")
        with limits.slot():
            assert len(sent) == 2
        assert len(sent) == 3, "taking and freeing a slot: one statement each"
        assert slot_row(pg_db) == (None, None) and not caplog.records, "freed, and nothing went wrong"
        with limits.engine.connect() as conn:
            stored = [r[0] for r in conn.execute(text("SELECT identity FROM api_rate_buckets"))]
        assert len(stored) == 1 and "secret" not in stored[0]
    finally:
        limits.close()
    assert not limits._keeper.is_alive(), "closing ends the lease keeper"


def bucket_rows(limits: SharedLimits) -> int:
    with limits.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM api_rate_buckets")).scalar()


def test_idle_buckets_are_forgotten_by_the_keeper(pg_db, caplog):
    """A bucket idle for a whole rate period is full again; the keeper deletes its row."""
    limits = SharedLimits.connect(pg_db, Rate(2, 1.0), None, lease_s=0.3)
    try:
        assert limits.take("key:a") == 0.0 and bucket_rows(limits) == 1
        wait_until(lambda: bucket_rows(limits) == 0, "the idle bucket was deleted")
        assert not caplog.records
    finally:
        limits.close()


def test_two_replicas_racing_for_one_key_admit_exactly_its_count(pg_db):
    """16 threads on two replicas (two engines) ask at the same instant: the row lock
    serialises them, so exactly `count` go ahead."""
    replicas = [SharedLimits.connect(pg_db, Rate(23, 3600.0), None) for _ in range(2)]
    now, results, lock = time.time() + 1e6, [], threading.Lock()

    def ask(limits):
        for _ in range(5):
            wait = limits.take("key:shared", now)
            with lock:
                results.append(wait)

    threads = [threading.Thread(target=ask, args=(replicas[i % 2],)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    for limits in replicas:
        limits.close()
    assert len(results) == 80 and results.count(0.0) == 23


def race_for_slots(replicas: list[SharedLimits], threads: int) -> tuple[int, int]:
    """`threads` threads, spread over the replicas, each with a pooled connection, ask for a
    slot at the same instant and hold what they got until all have answered: (got, full)."""
    start_together, release = threading.Barrier(threads), threading.Event()
    got, full, lock = [], [], threading.Lock()

    def ask(limits):
        with limits.engine.connect() as conn:
            conn.execute(text("SELECT 1"))  # connected before the start: the requests overlap
        start_together.wait(DEADLINE_S)
        try:
            with limits.slot():
                with lock:
                    got.append(1)
                release.wait(DEADLINE_S)
        except LimitsFull:
            with lock:
                full.append(1)

    running = [threading.Thread(target=ask, args=(replicas[i % len(replicas)],)) for i in range(threads)]
    for t in running:
        t.start()
    wait_until(lambda: len(got) + len(full) == threads, "every thread had its answer")
    release.set()
    for t in running:
        t.join(DEADLINE_S)
    return len(got), len(full)


def test_two_replicas_racing_for_slots_take_exactly_the_limit(pg_db):
    """16 threads on two replicas ask for one of 3 places at once, five times over: SKIP
    LOCKED hands each free row to one of them only."""
    replicas = [SharedLimits.connect(pg_db, None, 3) for _ in range(2)]
    try:
        assert [race_for_slots(replicas, 16) for _ in range(5)] == [(3, 13)] * 5
    finally:
        for limits in replicas:
            limits.close()


# ---- two replicas, one PostgreSQL ---------------------------------------------------------


def test_a_key_limited_to_n_a_minute_gets_n_answers_across_two_replicas(pg_db):
    with replica(pg_db, "--rate-limit", "3/minute") as a, replica(pg_db, "--rate-limit", "3/minute") as b:
        with httpx.Client(timeout=DEADLINE_S, headers=AUTH) as http:
            answers = [http.get(url + "/models") for url in (a, b) * 4]
    codes = [r.status_code for r in answers]
    assert codes.count(200) == 3 and codes.count(429) == 5, codes
    refused = next(r for r in answers if r.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1 and "3/minute" in refused.json()["error"]["message"]


def test_api_concurrency_holds_across_two_replicas(pg_db):
    gate = Gate()
    flags = ("--rate-limit", "off", "--api-concurrency", "1")
    with replica(pg_db, *flags, chat=GatedChat(gate)) as a, replica(pg_db, *flags) as b:
        with httpx.Client(timeout=DEADLINE_S, headers=AUTH) as http:
            first = {}
            running = threading.Thread(target=lambda: first.update(r=http.post(a + "/chat/completions", json=ASK)))
            running.start()
            wait_until(lambda: gate.active == 1, "replica A's turn is generating")
            busy = http.post(b + "/chat/completions", json=ASK)
            judged = http.post(b + "/moderations", json={"input": "hello"})
            gate.opened.set()
            running.join(DEADLINE_S)
            after = http.post(b + "/chat/completions", json=ASK)
    for refused in (busy, judged):
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "server_busy"
        assert "across the deployment" in refused.json()["error"]["message"] and refused.headers["Retry-After"]
    assert first["r"].status_code == 200 and after.status_code == 200, "the place is free once A's turn ended"


def db_seconds(db: str) -> float:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]


def slot_row(db: str) -> tuple[str | None, float | None]:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT holder, expires FROM api_slots WHERE slot = 0").fetchone()


def test_a_killed_replicas_slot_comes_back_after_its_lease(pg_db):
    child = subprocess.Popen(
        [sys.executable, str(CHILD), pg_db, "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    mine = SharedLimits.connect(pg_db, None, 1, lease_s=3)
    try:
        assert child.stdout.readline().strip() == "HELD", child.stderr.read()
        holder, expires = slot_row(pg_db)
        wait_until(lambda: db_seconds(pg_db) > expires, "the first lease has run out")
        with pytest.raises(LimitsFull), mine.slot():
            pass  # the living replica renewed its lease
        child.kill()
        child.wait(DEADLINE_S)
        assert "could not renew" not in child.stderr.read(), "its renewals worked while it lived"
        assert slot_row(pg_db)[0] == holder, "nobody freed the dead replica's slot"
        taken = []

        def take() -> bool:
            with contextlib.suppress(LimitsFull), mine.slot():
                taken.append(slot_row(pg_db)[0])
            return bool(taken)

        wait_until(take, "the dead replica's lease ran out")
        assert taken[0] not in (None, holder)
    finally:
        child.kill()
        child.wait(DEADLINE_S)
        mine.close()


@pytest.mark.parametrize("rate", ["60/minute", "off"])  # off: the slot is what fails
def test_an_unreachable_database_is_a_readable_503_and_nothing_runs(pg_db, postgres_admin, rate):
    name, chat = pg_db.rsplit("/", 1)[1], FakeChat(["fine"])
    with replica(pg_db, "--rate-limit", rate, "--api-concurrency", "2", chat=chat) as url:
        with httpx.Client(timeout=DEADLINE_S, headers=AUTH) as http:
            assert http.post(url + "/chat/completions", json=ASK).status_code == 200
            with psycopg.connect(postgres_admin, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                refused = [
                    http.post(url + "/chat/completions", json=ASK),
                    http.post(url + "/moderations", json={"input": "hi"}),
                ]
                admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            again = http.post(url + "/chat/completions", json=ASK)
    for r in refused:
        error = r.json()["error"]
        assert r.status_code == 503 and error["code"] == "limits_unavailable" and r.headers["Retry-After"]
        assert "127.0.0.1" in error["message"] and "postgres@" not in error["message"]
        assert "Traceback" not in r.text
    assert len(chat.calls) == 2 and again.status_code == 200, "nothing ran while the limits could not be checked"


# ---- without PostgreSQL: per replica, as before ------------------------------------------------


def test_without_postgresql_the_limits_are_this_replicas_own(tmp_path):
    for db in (str(tmp_path / "log.sqlite3"), "none"):
        limits = open_limits(replica_config(db, "--api-concurrency", "1"))
        assert isinstance(limits, ReplicaLimits) and limits.scope == "on this replica"
        with limits.slot(), pytest.raises(LimitsFull, match="1 API request"), limits.slot():
            pass
        with limits.slot():
            pass  # freed again


def test_a_database_that_cannot_be_reached_at_start_says_so_without_credentials():
    with pytest.raises(LimitsUnavailable, match="127.0.0.1:1/none") as err:
        SharedLimits.connect("postgresql://nobody:pw@127.0.0.1:1/none", Rate(1, 1.0), 1)
    assert "nobody" not in str(err.value) and "pw" not in str(err.value)
