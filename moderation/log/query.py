"""Reading the log: turns with their verdicts, filtered; counts over time; latency percentiles.

One record per turn, the same for the review page, its downloads and the export CLI:

    {"id": "3f2c…", "started_at": "2026-11-27T01:02:03.456Z", "outcome": "refused",
     "user_text": "How do I make a pipe bomb?", "reply": "", "policy": {...},
     "verdicts": [{"seq": 0, "stage": "prompt", "safe": false,
                   "categories": [{"code": "S8", "name": "Indiscriminate Weapons"}], ...}], ...}
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.engine import Engine

from moderation.log.labels import labels_of
from moderation.log.schema import iso, labels, turns, verdicts

UNFINISHED = "unfinished"  # outcome filter: turns without an outcome (running, or the app died)
UNREVIEWED = "unreviewed"  # queue: flagged turns without an operator's label
DISPUTED = "disputed"  # queue: turns with a visitor's label
QUEUES = (UNREVIEWED, DISPUTED)
_PAGE = 500
_STAGE_ORDER = {"prompt": 0, "partial": 1, "response": 2}


@dataclass(frozen=True)
class TurnFilter:
    """Which turns: by outcome ("" any), flagged category code, start time range (UTC), text,
    session, a verdict's score range, labelled or not, and queue."""

    outcome: str = ""
    category: str = ""
    since: datetime | None = None
    until: datetime | None = None
    text: str = ""
    limit: int | None = None  # newest `limit` turns; None: all
    turn_id: str = ""  # just this turn
    session: str = ""  # just this session's turns (its pseudonym)
    score_min: float | None = None  # some verdict scored at least this
    score_max: float | None = None  # some verdict scored at most this
    labelled: str = ""  # "yes": has a label, "no": has none, "": either
    queue: str = ""  # UNREVIEWED, DISPUTED, or "": no queue

    def where(self):
        c = turns.c
        conds = [c.id == self.turn_id] if self.turn_id else []
        if self.session:
            conds.append(c.session == self.session)
        conds += self._verdict_conditions() + self._label_conditions()
        if self.outcome == UNFINISHED:
            conds.append(c.outcome.is_(None))
        elif self.outcome:
            conds.append(c.outcome == self.outcome)
        if self.since:
            conds.append(c.started_at >= self.since)
        if self.until:
            conds.append(c.started_at < self.until)
        if self.text.strip():
            pattern = "%" + self.text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conds.append(or_(c.user_text.ilike(pattern, escape="\\"), c.reply.ilike(pattern, escape="\\")))
        return and_(*conds) if conds else and_(True)

    def _verdict_conditions(self) -> list:
        def some_verdict(*conds):
            return exists().where(and_(verdicts.c.turn_id == turns.c.id, *conds))

        conds = []
        if self.category:
            code = self.category.strip().upper()
            conds.append(some_verdict(verdicts.c.safe.is_(False), verdicts.c.codes.like(f"%,{code},%")))
        if self.score_min is not None or self.score_max is not None:
            low = verdicts.c.score >= self.score_min if self.score_min is not None else and_(True)
            high = verdicts.c.score <= self.score_max if self.score_max is not None else and_(True)
            conds.append(some_verdict(low, high))
        if self.queue == UNREVIEWED:
            conds.append(some_verdict(verdicts.c.safe.is_(False)))
        return conds

    def _label_conditions(self) -> list:
        def some_label(*conds):
            return exists().where(and_(labels.c.turn_id == turns.c.id, *conds))

        conds = []
        if self.labelled in ("yes", "no"):
            conds.append(some_label() if self.labelled == "yes" else ~some_label())
        if self.queue == UNREVIEWED:
            conds.append(~some_label(labels.c.source == "operator"))
        elif self.queue == DISPUTED:
            conds.append(some_label(labels.c.source == "visitor"))
        return conds


def _verdict(row) -> dict:
    return {
        "seq": row.seq,
        "at": iso(row.at),
        "stage": row.stage,
        "role": row.role,
        "safe": row.safe,
        "parsed": row.parsed,
        "categories": json.loads(row.categories),
        "score": row.score,
        "threshold": row.threshold,
        "latency_ms": row.latency_ms,
        "error": row.error,
        "note": row.note,
        "guard": row.guard,
        "raw": row.raw,
        "category_scores": json.loads(row.category_scores or "{}"),
        "highest_window": json.loads(row.highest_window) if row.highest_window else None,
    }


def _turn(row, checks: list[dict], marks: list[dict]) -> dict:
    return {
        "id": row.id,
        "started_at": iso(row.started_at),
        "ended_at": iso(row.ended_at),
        "session": row.session,
        "outcome": row.outcome,
        "notice": row.notice,
        "guard": row.guard,
        "chat": row.chat,
        "chat_started": row.chat_started,
        "tokens": row.tokens,
        "stopped": row.stopped,
        "policy": json.loads(row.policy),
        "policy_hash": row.policy_hash,
        "text_policy": row.text_policy,
        "user_text": row.user_text,
        "reply": row.reply,
        "verdicts": checks,
        "labels": marks,
    }


def iter_records(engine: Engine, f: TurnFilter = TurnFilter()) -> Iterator[dict]:
    """Matching turns with their verdicts and labels, newest first (with `limit`: the newest `limit`)."""
    query = select(turns).where(f.where()).order_by(turns.c.started_at.desc(), turns.c.id.desc())
    if f.limit:
        query = query.limit(f.limit)
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=_PAGE).execute(query)
        for page in result.partitions():
            ids = [r.id for r in page]
            by_turn: dict[str, list[dict]] = {i: [] for i in ids}
            with engine.connect() as vconn:
                for v in vconn.execute(
                    select(verdicts).where(verdicts.c.turn_id.in_(ids)).order_by(verdicts.c.turn_id, verdicts.c.seq)
                ):
                    by_turn[v.turn_id].append(_verdict(v))
                marks = labels_of(vconn, ids)
            for r in page:
                yield _turn(r, by_turn[r.id], marks[r.id])


def count_turns(engine: Engine, f: TurnFilter = TurnFilter()) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(turns).where(f.where())).scalar()


def flagged_codes(record: dict) -> list[str]:
    """Category codes of the turn's unsafe verdicts, in order, without repeats."""
    codes = [c["code"] for v in record["verdicts"] if not v["safe"] for c in v["categories"]]
    return list(dict.fromkeys(codes))


def streamed_unscanned(record: dict) -> bool:
    """The chat streamed text that no check judged in full and none flagged: a turn left,
    crashed, or cut by a chat error before the response check."""
    verdicts = record["verdicts"]
    return (
        record["tokens"] > 0
        and all(v["safe"] for v in verdicts)
        and not any(v["stage"] == "response" for v in verdicts)
    )


def summary(record: dict) -> dict:
    """One row of the review table: the turn's highest score, and its latest label
    ("false_positive (operator)")."""
    text = record["user_text"]
    latency = sum(v["latency_ms"] for v in record["verdicts"])
    scores = [v["score"] for v in record["verdicts"] if v["score"] is not None]
    last = record.get("labels", [])[-1:]
    return {
        "started_at": record["started_at"],
        "id": record["id"],
        "session": record["session"],
        "outcome": record["outcome"] or UNFINISHED,
        "unscanned": "yes" if streamed_unscanned(record) else "",
        "categories": " ".join(flagged_codes(record)),
        "score": round(max(scores), 2) if scores else None,
        "labels": f"{last[0]['label']} ({last[0]['source']})" if last else "",
        "verdicts": len(record["verdicts"]),
        "guard_ms": round(latency, 1),
        "tokens": record["tokens"],
        "user_text": "(not stored)" if text is None else text[:120],
    }


def counts_over_time(records: list[dict], by: str = "outcome", bucket: str = "day") -> list[dict]:
    """[{"period", by, "count"}]: turns per outcome, or flagged turns per category, per day
    (or hour). E.g. [{"period": "2026-11-27", "outcome": "refused", "count": 3}, ...]."""
    width = 13 if bucket == "hour" else 10  # "2026-11-27T01" or "2026-11-27"
    counts: Counter = Counter()
    for r in records:
        period = r["started_at"][:width]
        keys = [r["outcome"] or UNFINISHED] if by == "outcome" else flagged_codes(r)
        for key in keys:
            counts[(period, key)] += 1
    return [{"period": p, by: k, "count": n} for (p, k), n in sorted(counts.items())]


def latency_percentiles(records: list[dict]) -> list[dict]:
    """Guard latency per stage: [{"stage", "checks", "p50_ms", "p90_ms", "p99_ms", "max_ms"}]."""
    by_stage: dict[str, list[float]] = {}
    for r in records:
        for v in r["verdicts"]:
            by_stage.setdefault(v["stage"], []).append(v["latency_ms"])
    rows = []
    for stage in sorted(by_stage, key=lambda s: (_STAGE_ORDER.get(s, 9), s)):
        xs = sorted(by_stage[stage])
        q = statistics.quantiles(xs, n=100, method="inclusive") if len(xs) > 1 else xs * 99
        rows.append(
            {
                "stage": stage,
                "checks": len(xs),
                "p50_ms": round(q[49], 1),
                "p90_ms": round(q[89], 1),
                "p99_ms": round(q[98], 1),
                "max_ms": round(xs[-1], 1),
            }
        )
    return rows
