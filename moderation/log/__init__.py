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

__all__ = ["TurnLog", "TurnMeta", "open_log"]

log = logging.getLogger(__name__)


def open_log(config, metrics=None) -> TurnLog:
    """The log `config` asks for (`config.log_db` None: a log that writes nothing)."""
    engine = None
    if config.log_db:
        from moderation.log.schema import database_url, open_engine

        engine = open_engine(config.log_db)
        where = database_url(config.log_db).split("@")[-1]  # no password in the log
        log.info("moderation log: %s (text kept: %s, retention: %s)", where, config.log_text,
                 f"{config.log_retention_days:g} days" if config.log_retention_days else "forever")
    return TurnLog(engine, text=config.log_text, retention_days=config.log_retention_days, metrics=metrics)
