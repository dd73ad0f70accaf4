"""The /v1 API's limits kept in PostgreSQL (the moderation log's database), so that they
hold across every app replica that uses it. One statement, one round trip, per check:

- **Rate limit**: a token bucket per caller in `api_rate_buckets`, taken by one
  `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`. PostgreSQL locks the caller's row for
  the statement, so two replicas' requests for one key are applied one after the other.
  The arithmetic is `moderation.access.refill`'s, in the same order, on the database's
  clock (one clock for every replica). Callers are stored as a SHA-256 of their identity,
  never as the API key itself.
- **Concurrency**: `api_slots` holds one row per place (0 .. size-1). A request takes a
  free or expired row with `UPDATE ... WHERE slot = (SELECT ... FOR UPDATE SKIP LOCKED)`,
  so two replicas never take the same row. A taken row carries a lease (LEASE_S);
  a keeper thread renews the leases of this replica's rows every LEASE_S / 3 seconds, so
  the slots of a replica that crashed, or lost the database, come back once their lease
  runs out. Ending a request frees its row at once.

Every connection runs in autocommit (a statement is its own transaction: no BEGIN and
COMMIT round trips), with a connect timeout and a statement timeout; an error raises
LimitsUnavailable (the API answers 503), after one retry on a connection that the
database had dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import uuid
from collections.abc import Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from moderation.access import Rate
from moderation.limits import LimitsFull, LimitsUnavailable, ReplicaLimits

log = logging.getLogger(__name__)

LEASE_S = 30.0  # how long a taken slot stays taken without its replica renewing it
TIMEOUT_S = 5  # to connect, and for one statement
_PG_LIMITS_LOCK = 0x4C494D4954  # advisory lock: one replica at a time creates the tables
_NOW = "extract(epoch FROM clock_timestamp())::float8"

_CREATE = (
    "CREATE TABLE IF NOT EXISTS api_rate_buckets (identity text PRIMARY KEY, "
    "tokens float8 NOT NULL, at float8 NOT NULL, admitted boolean NOT NULL)",
    "CREATE TABLE IF NOT EXISTS api_slots (slot integer PRIMARY KEY, holder text, expires float8)",
)
_SEED = text("INSERT INTO api_slots (slot) SELECT generate_series(0, :size - 1) ON CONFLICT DO NOTHING")
_REFILLED = "least(:count, b.tokens + greatest(0.0, excluded.at - b.at) * :per_second)"
_TAKE = text(
    "INSERT INTO api_rate_buckets AS b (identity, tokens, at, admitted) "
    f"VALUES (:identity, :count - 1.0, coalesce(CAST(:now AS float8), {_NOW}), true) "
    "ON CONFLICT (identity) DO UPDATE SET "
    f"tokens = CASE WHEN {_REFILLED} >= 1.0 THEN {_REFILLED} - 1.0 ELSE {_REFILLED} END, "
    f"at = excluded.at, admitted = {_REFILLED} >= 1.0 "
    "RETURNING admitted, tokens"
)
_PRUNE = text(f"DELETE FROM api_rate_buckets WHERE at < {_NOW} - :seconds")
_ACQUIRE = text(
    f"UPDATE api_slots SET holder = :holder, expires = {_NOW} + :lease WHERE slot = ("
    f"SELECT slot FROM api_slots WHERE slot < :size AND (holder IS NULL OR expires < {_NOW}) "
    "ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING slot"
)
_RELEASE = text("UPDATE api_slots SET holder = NULL, expires = NULL WHERE slot = :slot AND holder = :holder")
_RENEW = text(f"UPDATE api_slots SET expires = {_NOW} + :lease WHERE holder = ANY(CAST(:holders AS text[]))")


def limits_engine(log_db: str) -> Engine:
    """An engine of its own for the limits: autocommit, bounded waits, no pre-ping (a
    dropped connection is retried once instead, so a check stays one round trip)."""
    from moderation.log.schema import database_url

    return create_engine(
        database_url(log_db),
        isolation_level="AUTOCOMMIT",
        pool_size=8,
        max_overflow=8,
        pool_timeout=TIMEOUT_S,
        connect_args={"connect_timeout": TIMEOUT_S, "options": f"-c statement_timeout={TIMEOUT_S * 1000}"},
    )


def bucket_key(identity: str) -> str:
    """How a caller is stored: a hash, so that the table holds no API key."""
    return hashlib.sha256(f"api-rate:{identity}".encode()).hexdigest()[:32]


class SharedLimits:
    """The rate limit and --api-concurrency for every replica on one PostgreSQL database;
    the same interface as moderation.limits.ReplicaLimits."""

    scope = "across the deployment"

    def __init__(self, engine: Engine, rate: Rate | None, concurrency: int | None, lease_s: float = LEASE_S):
        self.engine, self.rate, self.concurrency, self.lease_s = engine, rate, concurrency, lease_s
        self.where = engine.url.render_as_string(hide_password=True).split("@")[-1]  # no credentials
        self._held: set[str] = set()  # this replica's slot holders, renewed by the keeper
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._create_tables()
        self._keeper = threading.Thread(target=self._keep, name="api-limits-keeper", daemon=True)
        self._keeper.start()

    @classmethod
    def connect(cls, log_db: str, rate: Rate | None, concurrency: int | None, lease_s: float = LEASE_S):
        """SharedLimits on the `--log-db` URL; LimitsUnavailable when it cannot be set up."""
        engine = limits_engine(log_db)
        try:
            return cls(engine, rate, concurrency, lease_s)
        except LimitsUnavailable:
            engine.dispose()
            raise

    def _create_tables(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="READ COMMITTED")
                with conn.begin():
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LIMITS_LOCK})
                    for statement in _CREATE:
                        conn.execute(text(statement))
                    if self.concurrency:
                        conn.execute(_SEED, {"size": self.concurrency})
        except SQLAlchemyError as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: Exception) -> LimitsUnavailable:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__]
        return LimitsUnavailable(f"the API's limits are kept in the database at {self.where}, which fails: {reason[0]}")

    def _one(self, statement, params: dict):
        """Run one statement (one round trip) and return its first row (None: no row, or a
        statement that returns none), or raise LimitsUnavailable. A connection the
        database dropped is retried once, fresh."""
        for attempt in (1, 2):
            try:
                with self.engine.connect() as conn:
                    result = conn.execute(statement, params)
                    return result.first() if result.returns_rows else None
            except DBAPIError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    continue
                raise self._unavailable(exc) from exc
            except SQLAlchemyError as exc:  # e.g. no pooled connection within TIMEOUT_S
                raise self._unavailable(exc) from exc
        raise AssertionError("unreachable")

    def take(self, identity: str, now: float | None = None) -> float:
        """0.0 when the request may go ahead, else the seconds until it may. `now`: seconds
        since the epoch (default: the database's clock)."""
        if self.rate is None:
            return 0.0
        params = dict(
            identity=bucket_key(identity),
            count=float(self.rate.count),
            per_second=self.rate.count / self.rate.seconds,
            now=now,
        )
        admitted, tokens = self._one(_TAKE, params)
        return 0.0 if admitted else (1.0 - tokens) / params["per_second"]

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of --api-concurrency places of the deployment for the block;
        LimitsFull when every one is taken. No limit set: nothing is counted."""
        if not self.concurrency:
            yield
            return
        holder = uuid.uuid4().hex
        row = self._one(_ACQUIRE, dict(holder=holder, lease=self.lease_s, size=self.concurrency))
        if row is None:
            raise LimitsFull(self.concurrency, self.scope)
        with self._lock:
            self._held.add(holder)
        try:
            yield
        finally:
            with self._lock:
                self._held.discard(holder)
            try:
                self._one(_RELEASE, dict(slot=row[0], holder=holder))
            except LimitsUnavailable as exc:  # the lease frees it, since nobody renews it now
                log.warning("an API slot comes back after its lease (%g s): %s", self.lease_s, exc)

    def _keep(self) -> None:
        """Renew this replica's leases every lease/3 seconds; once a rate period, forget
        buckets idle for that long (they are full again: a missing row is the same)."""
        since_prune = 0.0
        while not self._stop.wait(self.lease_s / 3):
            with self._lock:
                holders = list(self._held)
            try:
                if holders:
                    self._one(_RENEW, dict(holders=holders, lease=self.lease_s))
                since_prune += self.lease_s / 3
                if self.rate is not None and since_prune >= self.rate.seconds:
                    self._one(_PRUNE, dict(seconds=self.rate.seconds))
                    since_prune = 0.0
            except LimitsUnavailable as exc:
                log.warning("could not renew the API's slots: %s", exc)

    def close(self) -> None:
        """Stop the keeper and close the connections (slots still held expire with their lease)."""
        self._stop.set()
        self._keeper.join(TIMEOUT_S * 3)
        self.engine.dispose()


def is_postgres(log_db: str | None) -> bool:
    """Whether `--log-db` names a PostgreSQL database (where the limits can be shared)."""
    scheme = (log_db or "").split("://", 1)[0].split("+", 1)[0].lower()
    return "://" in (log_db or "") and scheme in ("postgres", "postgresql")


def open_limits(config):
    """The API's limits for `config`: shared through the log's PostgreSQL database when
    --log-db names one, else this replica's own. Raises LimitsUnavailable when the
    shared tables cannot be set up."""
    if is_postgres(config.log_db):
        return SharedLimits.connect(config.log_db, config.rate_limit, config.api_concurrency)
    return ReplicaLimits(config.rate_limit, config.api_concurrency)
