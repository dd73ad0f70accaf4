"""The log's tables, and opening a database: SQLite file or PostgreSQL URL.

Three tables: `turns` (one row per moderated turn, written when it starts and updated when
it ends), `verdicts` (one row per guard check, written the moment it is made) and `labels`
(what an operator, or later a visitor, said of a verdict: correct, a false positive or a
false negative). `log_schema` holds the schema version; `open_engine` creates missing tables
on every open (so a log from before `labels` gains it), migrates an older schema (version 1
had no `verdicts.category_scores`, version 2 no `verdicts.highest_window`) and refuses a
database written by a newer version of the app.

>>> database_url("moderation-log.sqlite3").startswith("sqlite:///")
True
>>> database_url("postgresql://u:p@db/log")
'postgresql+psycopg://u:p@db/log'
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import Engine

SCHEMA_VERSION = 3  # 2: verdicts.category_scores; 3: verdicts.highest_window
SQLITE_BUSY_TIMEOUT_MS = 30_000
_SCHEMA_TRIES = 5
_PG_SCHEMA_LOCK = 0x6D6F646C6F67  # "modlog": an advisory lock id of our own

metadata = MetaData()

schema_table = Table("log_schema", metadata, Column("version", Integer, nullable=False))

turns = Table(
    "turns",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("started_at", DateTime, nullable=False, index=True),  # UTC, naive
    Column("ended_at", DateTime),
    Column("session", String(16), nullable=False, index=True),  # a hash, not Gradio's own id
    Column("policy", Text, nullable=False),  # JSON: threshold, categories, streaming policy
    Column("policy_hash", String(16), nullable=False, index=True),
    Column("guard", String(200), nullable=False),
    Column("chat", String(200), nullable=False),
    Column("outcome", String(16), index=True),  # NULL while running (or if the app died)
    Column("notice", Text, nullable=False, default=""),
    Column("chat_started", Boolean, nullable=False, default=False),
    Column("tokens", Integer, nullable=False, default=0),  # streamed chunks, about one token each
    Column("stopped", Boolean, nullable=False, default=False),
    Column("text_policy", String(8), nullable=False),  # all / flagged / none, when written
    Column("user_text", Text),  # NULL when the text policy kept it out
    Column("reply", Text),
)

verdicts = Table(
    "verdicts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("turn_id", String(32), ForeignKey("turns.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("seq", Integer, nullable=False),  # order within the turn, from 0
    Column("at", DateTime, nullable=False, index=True),
    Column("stage", String(16), nullable=False),  # prompt / partial / response
    Column("role", String(8), nullable=False),  # User / Agent
    Column("safe", Boolean, nullable=False),
    Column("parsed", Boolean, nullable=False),
    Column("codes", String(400), nullable=False, default=""),  # ",S1,S8," for filtering
    Column("categories", Text, nullable=False, default="[]"),  # JSON [{"code", "name"}]
    Column("score", Float),
    Column("threshold", Float),
    Column("latency_ms", Float, nullable=False),
    Column("error", Text),
    Column("note", Text, nullable=False, default=""),
    Column("guard", String(200), nullable=False, default=""),
    Column("raw", Text, nullable=False, default=""),
    Column("category_scores", Text),  # JSON {code: p(unsafe) x p(category | unsafe)}; NULL before version 2
    # JSON {"start", "end", "index", "count", "mapped"}: where a message judged in several windows
    # scored highest (character offsets, numbers only: no text); NULL for one window, or before version 3
    Column("highest_window", Text),
)

labels = Table(
    "labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("turn_id", String(32), ForeignKey("turns.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("stage", String(16), nullable=False),  # the labelled verdict's stage: prompt / partial / response
    Column("seq", Integer, nullable=False),  # and its seq within the turn
    Column("label", String(16), nullable=False),  # correct / false_positive / false_negative
    Column("categories", Text, nullable=False, default="[]"),  # JSON ["S1", ...]: what it should have had
    Column("note", Text, nullable=False, default=""),
    Column("source", String(8), nullable=False),  # operator / visitor
    Column("author", String(200), nullable=False),  # the operator's user name, or a session's pseudonym
    Column("at", DateTime, nullable=False, index=True),
)


class SchemaError(RuntimeError):
    """The database cannot be used by this version of the app."""


def utcnow() -> datetime:
    """Now in UTC, without tzinfo: how every time is stored (SQLite keeps no zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(t: datetime | None) -> str | None:
    """A stored (UTC, naive) time as ISO 8601 with a Z, to the millisecond."""
    return None if t is None else t.isoformat(timespec="milliseconds") + "Z"


def database_url(target: str) -> str:
    """A SQLAlchemy URL from `--log-db`: a URL as given (postgres ones use psycopg 3), else a file path."""
    if "://" not in target:
        return f"sqlite:///{Path(target).expanduser().resolve()}"
    scheme, rest = target.split("://", 1)
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    return target


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, and vice versa
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")  # with WAL: a committed row survives the app's crash
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def open_engine(target: str) -> Engine:
    """Connect, create the tables if missing, and check the schema version."""
    url = database_url(target)
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():  # the log holds what people typed: readable by its owner only
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    for attempt in range(_SCHEMA_TRIES):
        try:
            _ensure_schema(engine)
            return engine
        except Exception as exc:
            # replicas starting together race to create the tables: the loser tries again
            if isinstance(exc, SchemaError) or attempt == _SCHEMA_TRIES - 1:
                engine.dispose()
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _ensure_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # one replica at a time creates or checks the schema
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
        metadata.create_all(conn, checkfirst=True)
        version = conn.execute(select(func.max(schema_table.c.version))).scalar()
        if version is None:
            conn.execute(schema_table.insert().values(version=SCHEMA_VERSION))
        elif version > SCHEMA_VERSION:
            raise SchemaError(
                f"the log database has schema version {version}; this app knows "
                f"version {SCHEMA_VERSION} at most: upgrade the app or use another --log-db"
            )
        elif version < SCHEMA_VERSION:
            _migrate(conn, version)


def _migrate(conn, version: int) -> None:
    """Bring a log written by an older app up to SCHEMA_VERSION, one step at a time."""
    if version < 2:  # per-category scores with each verdict
        conn.execute(text("ALTER TABLE verdicts ADD COLUMN category_scores TEXT"))
    if version < 3:  # where a message judged in windows scored highest
        conn.execute(text("ALTER TABLE verdicts ADD COLUMN highest_window TEXT"))
    conn.execute(schema_table.update().values(version=SCHEMA_VERSION))


def integrity_problems(engine: Engine) -> list[str]:
    """What is wrong with the database ([] when nothing): SQLite's integrity check, and
    verdicts whose turn is missing, on either backend."""
    problems: list[str] = []
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = [r[0] for r in conn.execute(text("PRAGMA integrity_check"))]
            if rows != ["ok"]:
                problems += rows
        orphans = conn.execute(
            select(func.count()).select_from(verdicts).where(~verdicts.c.turn_id.in_(select(turns.c.id)))
        ).scalar()
        if orphans:
            problems.append(f"{orphans} verdicts without their turn")
    return problems
