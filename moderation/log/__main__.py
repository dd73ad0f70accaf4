"""`python -m moderation.log export`: the moderation log as JSON Lines or CSV on stdout
(or --output FILE), progress on stderr.

    python -m moderation.log export --since 2026-11-01 --format csv > turns.csv
    python -m moderation.log export --db postgresql://log:secret@db/moderation --outcome refused
"""

from __future__ import annotations

import argparse
import os
import sys

from moderation.log.export import FORMATS, parse_time
from moderation.schema import DEFAULT_LOG_DB
from moderation.settings import environment


def _time(value: str):
    try:
        return parse_time(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date or ISO time: {value!r} (e.g. 2026-11-27)") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m moderation.log", description="The moderation log.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="write turns with their verdicts as JSONL or CSV",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("--db", default=environment("LOG_DB") or DEFAULT_LOG_DB,
                   help="SQLite file or PostgreSQL URL [LOG_DB]")
    e.add_argument("--since", type=_time, help="turns started at or after this date/time (UTC unless it has a zone)")
    e.add_argument("--until", type=_time, help="turns started before this date/time")
    e.add_argument("--outcome", default="", help="only this outcome (answered, refused, retracted, error, "
                                                   "abandoned, crashed, unfinished)")
    e.add_argument("--category", default="", help="only turns flagged with this category code, e.g. S8")
    e.add_argument("--search", default="", help="only turns whose text contains this")
    e.add_argument("--format", choices=FORMATS, default="jsonl")
    e.add_argument("--output", "-o", help="write here instead of stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from moderation.log.export import write_records
    from moderation.log.query import TurnFilter, iter_records
    from moderation.log.schema import database_url, open_engine

    if "://" not in args.db and not os.path.exists(args.db):
        print(f"error: no log database at {args.db} (use --db or LOG_DB)", file=sys.stderr)
        return 2
    try:
        engine = open_engine(args.db)
    except Exception as exc:
        print(f"error: cannot open the log {database_url(args.db).split('@')[-1]}: {exc}", file=sys.stderr)
        return 2
    f = TurnFilter(outcome=args.outcome, category=args.category, since=args.since, until=args.until,
                   text=args.search)
    tty = sys.stderr.isatty()

    def progress(n: int) -> None:
        if tty and n % 50 == 0:
            print(f"\rexported {n:,} turns", end="", file=sys.stderr, flush=True)
        elif not tty and n % 1000 == 0:
            print(f"exported {n:,} turns", file=sys.stderr, flush=True)

    out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    try:
        n = write_records(iter_records(engine, f), out, args.format, progress)
    finally:
        if args.output:
            out.close()
        engine.dispose()
    print(f"{chr(13) if tty else ''}exported {n:,} turns", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
