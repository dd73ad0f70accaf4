"""Writing log records as JSON Lines or CSV, and reading them back.

JSONL: one turn per line, verdicts nested. CSV: one turn per row; `policy` and
`verdicts` are JSON in their cells, so `read_records(write_csv(...))` gives the records back.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from typing import Callable, Iterable, TextIO

FORMATS = ("jsonl", "csv")
CSV_FIELDS = ("id", "started_at", "ended_at", "session", "outcome", "notice", "guard", "chat", "chat_started",
              "tokens", "stopped", "policy", "policy_hash", "text_policy", "user_text", "reply", "verdicts")
_JSON_CELLS = {"policy", "verdicts", "chat_started", "stopped", "tokens", "user_text", "reply", "ended_at",
               "outcome"}  # JSON-encoded so that null, numbers and booleans survive a CSV round trip


def parse_time(value: str) -> datetime:
    """A date or an ISO time, as a naive UTC datetime (how the log stores times).

    >>> parse_time("2026-11-27"), parse_time("2026-11-27T03:00:00+02:00")
    (datetime.datetime(2026, 11, 27, 0, 0), datetime.datetime(2026, 11, 27, 1, 0))
    """
    t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def write_records(records: Iterable[dict], out: TextIO, fmt: str,
                  progress: Callable[[int], None] | None = None) -> int:
    """Write records in `fmt` ("jsonl" or "csv"); returns how many. `progress(n)` after each."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    writer = None
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
    n = 0
    for record in records:
        if writer:
            writer.writerow({k: json.dumps(record[k], ensure_ascii=False) if k in _JSON_CELLS else record[k]
                             for k in CSV_FIELDS})
        else:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        n += 1
        if progress:
            progress(n)
    return n


def read_records(text: str, fmt: str) -> list[dict]:
    """The records back from `write_records`' output."""
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    return [{k: json.loads(v) if k in _JSON_CELLS else v for k, v in row.items()} for row in rows]
