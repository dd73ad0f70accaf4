"""The moderation log: every turn and every verdict, kept in SQLite or PostgreSQL.

    log = open_log(config, metrics)                       # from the app's settings
    states = log.record(run_turn(...), TurnMeta.of(settings, guard, chat, session))

Modules: `schema` (tables, opening a database), `writer` (TurnLog: queue + one writer
thread), `query` (reading, filtering, counts, percentiles), `export` (JSONL / CSV),
`metrics` (Prometheus), `__main__` (the export command line).
"""

from __future__ import annotations

import logging

from moderation.log.writer import TurnLog, TurnMeta

__all__ = ["LogUnavailable", "TurnLog", "TurnMeta", "open_log"]

log = logging.getLogger(__name__)


class LogUnavailable(RuntimeError):
    """The log database cannot be opened; the message says why and what to do."""


def open_log(config, metrics=None) -> TurnLog:
    """The log `config` asks for (`config.log_db` None: a log that writes nothing).
    Raises LogUnavailable with a readable message when the database cannot be used."""
    engine = None
    if config.log_db:
        from moderation.log.schema import database_url, open_engine

        where = database_url(config.log_db).split("@")[-1]  # no password in messages
        try:
            engine = open_engine(config.log_db)
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise LogUnavailable(
                f"cannot open the moderation log ({where}): {reason}. Fix --log-db, or run without a log: --log-db none"
            ) from exc
        log.info(
            "moderation log: %s (text kept: %s, retention: %s)",
            where,
            config.log_text,
            f"{config.log_retention_days:g} days" if config.log_retention_days else "forever",
        )
    return TurnLog(engine, text=config.log_text, retention_days=config.log_retention_days, metrics=metrics)
