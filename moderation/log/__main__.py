"""`python -m moderation.log`: the moderation log from the command line.

export      the log as JSON Lines or CSV on stdout (or --output FILE), progress on stderr
thresholds  the global and per-category thresholds the operator's labels suggest
dataset     the labelled turns that kept their text, as offline-classifier training rows

python -m moderation.log export --since 2026-11-01 --format csv > turns.csv
python -m moderation.log export --db postgresql://log:secret@db/moderation --outcome refused
python -m moderation.log thresholds --target-fpr 0.02
python -m moderation.log dataset --out labels.tsv && python -m guard.train --with-labels labels.tsv
"""

from __future__ import annotations

import argparse
import os
import sys

from moderation.log.calibration import DEFAULT_TARGET_FPR, calibrate_log, report
from moderation.log.dataset import write_dataset
from moderation.log.export import FORMATS, parse_time, write_records
from moderation.log.query import TurnFilter, iter_records
from moderation.log.schema import database_url, open_engine
from moderation.schema import DEFAULT_LOG_DB
from moderation.settings import environment


def _time(value: str):
    try:
        return parse_time(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date or ISO time: {value!r} (e.g. 2026-11-27)") from None


def _rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate < 1.0:
        raise argparse.ArgumentTypeError(f"a false positive rate is a number from 0 up to 1, not {value!r}")
    return rate


def _command(sub, name: str, help: str) -> argparse.ArgumentParser:
    c = sub.add_parser(name, help=help, description=help, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument(
        "--db", default=environment("LOG_DB") or DEFAULT_LOG_DB, help="SQLite file or PostgreSQL URL [LOG_DB]"
    )
    return c


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m moderation.log", description="The moderation log.")
    sub = p.add_subparsers(dest="command", required=True)
    t = _command(
        sub,
        "thresholds",
        "print the global and per-category thresholds the operator's labels "
        "suggest, with the precision, recall and number of labels behind each, and a policy-file snippet",
    )
    t.add_argument(
        "--target-fpr",
        type=_rate,
        default=DEFAULT_TARGET_FPR,
        help="the share of truly safe verdicts a threshold may flag",
    )
    d = _command(
        sub,
        "dataset",
        "write the labelled turns that kept their text as training rows for the "
        "offline classifier (python -m guard.train --with-labels FILE)",
    )
    d.add_argument("--out", required=True, help="the TSV file to write")
    e = _command(sub, "export", "write turns with their verdicts as JSONL or CSV")
    e.add_argument("--since", type=_time, help="turns started at or after this date/time (UTC unless it has a zone)")
    e.add_argument("--until", type=_time, help="turns started before this date/time")
    e.add_argument(
        "--outcome",
        default="",
        help="only this outcome (answered, refused, retracted, error, abandoned, crashed, unfinished)",
    )
    e.add_argument("--category", default="", help="only turns flagged with this category code, e.g. S8")
    e.add_argument("--search", default="", help="only turns whose text contains this")
    e.add_argument("--format", choices=FORMATS, default="jsonl")
    e.add_argument("--output", "-o", help="write here instead of stdout")
    return p


def _open(db: str):
    """The log's engine, or None after saying why on stderr."""
    if "://" not in db and not os.path.exists(db):
        print(f"error: no log database at {db} (use --db or LOG_DB)", file=sys.stderr)
        return None
    try:
        return open_engine(db)
    except Exception as exc:
        print(f"error: cannot open the log {database_url(db).split('@')[-1]}: {exc}", file=sys.stderr)
        return None


def thresholds(args, engine) -> int:
    print(report(calibrate_log(engine, args.target_fpr)))
    return 0


def dataset(args, engine) -> int:
    try:
        with open(args.out, "w", encoding="utf-8", newline="") as out:
            written, skipped = write_dataset(iter_records(engine, TurnFilter(labelled="yes")), out)
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
    left = "; ".join(f"{n} {why}" for why, n in skipped.items())
    print(
        f"wrote {sum(written.values())} rows to {args.out} ({written['train']} train, {written['heldout']} held out)"
        + (f"; left out: {left}" if left else ""),
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    engine = _open(args.db)
    if engine is None:
        return 2
    try:
        return {"thresholds": thresholds, "dataset": dataset, "export": export}[args.command](args, engine)
    finally:
        engine.dispose()


def export(args, engine) -> int:
    f = TurnFilter(outcome=args.outcome, category=args.category, since=args.since, until=args.until, text=args.search)
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
    print(f"{chr(13) if tty else ''}exported {n:,} turns", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
