"""The operator's review page: the moderation log, filtered and queued, a turn read as its
session's conversation with every verdict, labels on verdicts (also from the keyboard),
counts over time, guard latency percentiles, and CSV / JSONL downloads.

It is its own Gradio app, mounted at /review on the same server behind the operator
login (a separate login from the page's `--auth`, with its own cookie), so visitors of the
chat page never reach it. Downloads (/review/export.csv, /review/export.jsonl, the same
filters as query parameters) and labels for scripts (POST /review/labels) are plain routes
(`moderation.log.routes`) that answer only the operator: the page's login cookie or HTTP
Basic (`curl -u operator:secret .../review/export.csv`). Nothing of the log is ever put in
Gradio's shared file cache.

No other origin reads it with the operator's login (`routes.ReviewBoundary`, outermost on
the server): responses under /review carry no CORS headers, CORS preflights and requests
that the browser marks as another site's get a 403, and the login cookie is
`SameSite=Strict; HttpOnly; Path=/review`.

    mount.attach_review(demo.app, engine, ("admin", "secret"))    # after the chat app exists

Handlers are plain functions of (engine, filter values); `review_page.create_review` only
wires them.
The page may be mounted before the server starts (its startup runs with the server's) or
on a server already running: then its queue starts with the first request to it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from urllib.parse import urlencode

import pandas as pd
from sqlalchemy.engine import Engine

from moderation.log.export import FORMATS, parse_time
from moderation.log.labels import LabelError, UnknownTurn, add_label
from moderation.log.query import (
    DISPUTED,
    UNFINISHED,
    UNREVIEWED,
    TurnFilter,
    count_turns,
    counts_over_time,
    iter_records,
    latency_percentiles,
    summary,
)
from moderation.log.transcript import transcript_html
from moderation.log.writer import ABANDONED, CRASHED
from moderation.turn import ANSWERED, ERROR, REFUSED, RETRACTED

OUTCOMES = ["any", ANSWERED, REFUSED, RETRACTED, ERROR, ABANDONED, CRASHED, UNFINISHED]
TABLE_ROWS = 500  # newest matching turns in the table
STATS_TURNS = 20_000  # newest matching turns in the counts and percentiles (the downloads have all)
SESSION_TURNS = 200  # a session's newest turns in its transcript
# the table's columns: summary()'s keys and the names the page shows
COLUMNS = {
    "started_at": "Started (UTC)",
    "id": "Turn id",
    "outcome": "Outcome",
    "categories": "Flagged",
    "score": "Top score",
    "labels": "Label",
    "user_text": "Message",
    "session": "Session",
    "unscanned": "Unjudged",
}
TABLE_COLUMNS = list(COLUMNS.values())
FILTERS = (
    "outcome",
    "category",
    "since",
    "until",
    "text",
    "session",
    "score_min",
    "score_max",
    "labelled",
    "queue",
)  # the page's filter fields, in order; also the downloads' query parameters
QUEUES = [("All turns", ""), ("Unreviewed flagged", UNREVIEWED), ("Disputed (visitor reports)", DISPUTED)]
LABELLED = [("any", ""), ("labelled", "yes"), ("not labelled", "no")]
LATENCY_COLUMNS = ["stage", "checks", "p50_ms", "p90_ms", "p99_ms", "max_ms"]


def turn_filter(
    outcome: str = "",
    category: str = "",
    since: str = "",
    until: str = "",
    text: str = "",
    session: str = "",
    score_min="",
    score_max="",
    labelled: str = "",
    queue: str = "",
) -> TurnFilter:
    """The filter from the page's fields; ValueError with a readable message on a bad value.

    >>> turn_filter("refused", "s8", "2026-11-01", "", "", score_min="0.5").category
    'S8'
    """

    def when(value: str, what: str):
        if not (value or "").strip():
            return None
        try:
            return parse_time(value)
        except ValueError:
            raise ValueError(f"{what}: {value!r} is not a date (e.g. 2026-11-27) or ISO time") from None

    def score(value, what: str):
        if value is None or str(value).strip() == "":
            return None
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"{what}: {value!r} is not a score from 0 to 1")
        return number

    code = (category or "").strip().upper()
    if code and not (code.isascii() and code.isalnum()):
        raise ValueError(f"Category: {category!r} is not a category code (e.g. S8, or C1 for a custom one)")
    if (labelled or "") not in ("", "yes", "no") or (queue or "") not in ("", UNREVIEWED, DISPUTED):
        raise ValueError("Labelled is yes, no or empty; queue is unreviewed, disputed or empty")
    return TurnFilter(
        outcome="" if outcome in ("", "any", None) else outcome,
        category=code,
        since=when(since, "From"),
        until=when(until, "Until"),
        text=(text or "").strip(),
        session=(session or "").strip(),
        score_min=score(score_min, "Score from"),
        score_max=score(score_max, "Score to"),
        labelled=labelled or "",
        queue=queue or "",
    )


@dataclass(frozen=True)
class Review:
    """What the page shows for one filter."""

    table: pd.DataFrame
    by_outcome: pd.DataFrame
    by_category: pd.DataFrame
    latency: pd.DataFrame
    total: int  # all matching turns
    counted: int  # the newest ones that the table, counts and percentiles use


def _row(summary: dict) -> dict:
    """A table row under the page's column names, its start time to the second."""
    row = {name: summary[key] for key, name in COLUMNS.items()}
    row["Started (UTC)"] = (summary["started_at"] or "")[:19].replace("T", " ")
    return row


def review(engine: Engine, f: TurnFilter) -> Review:
    """Table, counts and percentiles for the newest `STATS_TURNS` matching turns."""
    records = list(iter_records(engine, replace(f, limit=STATS_TURNS)))  # newest first
    table = [_row(summary(r)) for r in records[:TABLE_ROWS]]
    return Review(
        table=pd.DataFrame(table, columns=TABLE_COLUMNS),
        by_outcome=pd.DataFrame(counts_over_time(records, "outcome"), columns=["period", "outcome", "count"]),
        by_category=pd.DataFrame(counts_over_time(records, "category"), columns=["period", "category", "count"]),
        latency=pd.DataFrame(latency_percentiles(records), columns=LATENCY_COLUMNS),
        total=count_turns(engine, f),
        counted=len(records),
    )


def turn_detail(engine: Engine, turn_id: str) -> dict:
    """A turn's full record (with every verdict), or {"error": ...} when there is none."""
    turn_id = (turn_id or "").strip()
    if not turn_id:
        return {}
    found = list(iter_records(engine, TurnFilter(turn_id=turn_id)))
    return found[0] if found else {"error": f"no turn {turn_id!r}"}


def session_transcript(engine: Engine, turn_id: str) -> tuple[str, dict]:
    """The HTML of the turn's session as a conversation (the turn marked), and the turn's record
    ({} when there is no such turn)."""
    record = turn_detail(engine, turn_id)
    if not record or "error" in record:
        return transcript_html([]), {}
    session = list(iter_records(engine, TurnFilter(session=record["session"], limit=SESSION_TURNS)))
    return transcript_html(session[::-1], selected=record["id"]), record


def verdict_choices(record: dict) -> tuple[list[tuple[str, int]], int | None]:
    """The turn's verdicts as (name, seq) choices for a label, and the one to label by default:
    the first that flagged, else the last."""
    verdicts = record.get("verdicts", [])
    choices = [(f"{v['seq']}: {v['stage']} ({'safe' if v['safe'] else 'unsafe'})", v["seq"]) for v in verdicts]
    flagged = [v["seq"] for v in verdicts if not v["safe"]]
    return choices, (flagged[0] if flagged else verdicts[-1]["seq"] if verdicts else None)


def save_label(engine: Engine, author: str, turn_id: str, seq, label: str, categories: str, note: str) -> str:
    """Store the operator's label on verdict `seq` of the turn; a readable message on refusal."""
    if not (turn_id or "").strip() or seq is None:
        raise ValueError("Select a turn (and one of its verdicts) first.")
    body = {
        "turn": turn_id,
        "stage": int(seq),
        "label": label,
        "categories": (categories or "").replace(",", " ").split(),
        "note": note or "",
    }
    try:
        stored = add_label(engine, body, author=author)
    except (UnknownTurn, LabelError) as exc:
        raise ValueError(str(exc)) from None
    return f"Labelled verdict {stored['seq']} ({stored['stage']}) of {turn_id[:8]}…: {label.replace('_', ' ')}."


def following(current: str, before: list[str], after: list[str]) -> str:
    """The turn to show after labelling `current`: the next one of the refreshed list `after`,
    or, when `current` left it (a queue), the one now in its place.

    >>> following("b", ["a", "b", "c"], ["a", "b", "c"]), following("b", ["a", "b", "c"], ["a", "c"])
    ('c', 'c')
    """
    if current in after:
        return after[min(after.index(current) + 1, len(after) - 1)]
    if not after:
        return ""
    at = before.index(current) if current in before else 0
    return after[min(at, len(after) - 1)]


def step(current: str, ids: list[str], by: int) -> str:
    """The turn `by` rows from `current` in the table (the first one when none is selected)."""
    if not ids:
        return ""
    at = ids.index(current) + by if current in ids else 0
    return ids[max(0, min(at, len(ids) - 1))]


def download_links(*values) -> str:
    """Links to this filter's downloads, relative to the page (so they work under any mount path)."""
    query = urlencode({k: v for k, v in zip(FILTERS, values) if v not in (None, "", "any")})
    return " · ".join(
        f'<a href="export.{fmt}?{html.escape(query)}" download="moderation-log.{fmt}" '
        f'id="download-{fmt}">Download {fmt.upper()}</a>'
        for fmt in FORMATS
    )
