"""Writing log records as JSON Lines or CSV, and reading them back.

JSONL: one turn per line, verdicts and labels nested. CSV: one turn per row, `policy`,
`verdicts` and `labels` as JSON in their cells, booleans as true/false, an empty cell for a missing value (a turn
still running, text not kept); `read_records` gives the same records back from either.

CSV cells are kept from running as spreadsheet formulas, as OWASP advises: every cell is
quoted, and one that begins with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
leading single quote, which a spreadsheet shows as text. So that reading stays exact, a cell
that begins with a quote of its own gets one too, and `read_records` drops the first quote
of every cell that has one:

    =1+1 -> '=1+1      'tis -> ''tis      plain -> plain
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TextIO

FORMATS = ("jsonl", "csv")
CSV_FIELDS = (
    "id",
    "started_at",
    "ended_at",
    "session",
    "outcome",
    "notice",
    "guard",
    "chat",
    "chat_started",
    "tokens",
    "stopped",
    "policy",
    "policy_hash",
    "text_policy",
    "user_text",
    "reply",
    "verdicts",
    "labels",
)
_JSON_CELLS = {"policy", "verdicts", "labels", "chat_started", "stopped", "tokens"}  # cells holding JSON
_NULLABLE = {"ended_at", "outcome", "user_text", "reply"}  # an empty cell is null


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may run (OWASP's list)
_QUOTE = "'"


def neutralise(text: str) -> str:
    """The cell as written: a quote before a formula start, or before a quote of its own.

    >>> neutralise("=HYPERLINK(1)"), neutralise("'tis"), neutralise("2+2")
    ("'=HYPERLINK(1)", "''tis", '2+2')
    """
    return _QUOTE + text if text.startswith(FORMULA_STARTS + (_QUOTE,)) else text


def restore(cell: str) -> str:
    """The text `neutralise` was given: `cell` without its first quote, if it has one."""
    return cell.removeprefix(_QUOTE)


def _cell(key: str, value) -> str:
    if key in _JSON_CELLS:
        return neutralise(json.dumps(value, ensure_ascii=False))
    return "" if value is None else neutralise(str(value))


def _from_csv(row: dict) -> dict:
    row = {k: restore(v) for k, v in row.items()}
    record = {k: json.loads(v) if k in _JSON_CELLS else (v or None) if k in _NULLABLE else v for k, v in row.items()}
    if record["reply"] is None and record["user_text"] is not None and record["ended_at"] is not None:
        record["reply"] = ""  # text kept (its prompt is there) and the turn over: the reply was empty
    return record


def parse_time(value: str) -> datetime:
    """A date or an ISO time, as a naive UTC datetime (how the log stores times).

    >>> parse_time("2026-11-27"), parse_time("2026-11-27T03:00:00+02:00")
    (datetime.datetime(2026, 11, 27, 0, 0), datetime.datetime(2026, 11, 27, 1, 0))
    """
    t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def serialize(records: Iterable[dict], fmt: str) -> Iterator[str]:
    """The document piece by piece: (for CSV, the header, then) one record per piece."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    if fmt == "jsonl":
        for record in records:
            yield json.dumps(record, ensure_ascii=False) + "\n"
        return
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", quoting=csv.QUOTE_ALL)

    def take() -> str:
        text = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        return text

    writer.writeheader()
    yield take()
    for record in records:
        writer.writerow({k: _cell(k, record[k]) for k in CSV_FIELDS})
        yield take()


def write_records(records: Iterable[dict], out: TextIO, fmt: str, progress: Callable[[int], None] | None = None) -> int:
    """Write records in `fmt` ("jsonl" or "csv"); returns how many. `progress(n)` after each."""
    pieces = serialize(records, fmt)
    if fmt == "csv":
        out.write(next(pieces))  # the header
    n = 0
    for n, piece in enumerate(pieces, start=1):
        out.write(piece)
        if progress:
            progress(n)
    return n


def read_records(text: str, fmt: str) -> list[dict]:
    """The records back from `write_records`' output."""
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    return [_from_csv(row) for row in rows]
