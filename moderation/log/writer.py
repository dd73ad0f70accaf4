"""Writing the log while turns stream: `TurnLog.record` passes a turn's states through
unchanged and queues a row for each new verdict the moment it appears; one writer thread
empties the queue into the database, so the stream never waits for a disk or a network.

    log = TurnLog(open_engine("moderation-log.sqlite3"), text=TEXT_ALL)
    for state in log.record(run_turn(guard, chat, [], "Hi", settings), TurnMeta.of(settings, guard, chat, "s1")):
        ...   # each state as run_turn made it; the rows follow within milliseconds

Queued operations are plain tuples: ("start", row), ("verdict", row), ("update", turn_id, values).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from moderation.log.schema import integrity_problems, labels, turns, utcnow, verdicts
from moderation.turn import ANSWERED, Check, TurnSettings, TurnState

log = logging.getLogger(__name__)

TEXT_ALL, TEXT_FLAGGED, TEXT_NONE = "all", "flagged", "none"
TEXT_POLICIES = (TEXT_ALL, TEXT_FLAGGED, TEXT_NONE)
ABANDONED = "abandoned"  # the stream was closed before the turn ended (the visitor left)
CRASHED = "crashed"  # the turn raised: a bug, recorded before it propagates
_STOP = ("stop",)
_BATCH = 500
_RETRIES = (0.2, 1.0, 3.0)  # seconds between tries of a batch that failed to commit
_PRUNE_EVERY_S = 3600.0


def session_hash(session: str) -> str:
    """A stable pseudonym for a browser session: the same session, the same 16 hex digits,
    but not the id that would let someone act as that session."""
    return hashlib.sha256(f"moderation-log:{session}".encode()).hexdigest()[:16]


def policy_json(settings: TurnSettings) -> str:
    """The moderation settings in force for a turn, as canonical JSON (sorted keys)."""
    p = settings.policy
    doc = {
        "threshold": settings.threshold,
        "check_every": settings.check_every,
        **({"thresholds": dict(settings.category_thresholds)} if settings.category_thresholds else {}),
        "stream_policy": settings.stream_policy,
        "enabled": [c.code for c in p.enabled()],
        "custom": [{"code": c.code, "name": c.name, "description": c.description} for c in p.custom],
        "include_descriptions": p.include_descriptions,
        "system_prompt_chars": len(settings.system_prompt),
        "generation": {
            "temperature": settings.generation.temperature,
            "top_p": settings.generation.top_p,
            "max_new_tokens": settings.generation.max_new_tokens,
        },
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class TurnMeta:
    """What the log keeps about a turn besides its states."""

    session: str  # already hashed (see `session_hash`)
    policy: str  # JSON
    policy_hash: str
    guard: str
    chat: str

    @classmethod
    def of(cls, settings: TurnSettings, guard, chat, session: str) -> TurnMeta:
        """From a turn's settings, its guard and chat backends, and the raw session id."""
        policy = policy_json(settings)
        return cls(
            session=session_hash(session),
            policy=policy,
            policy_hash=hashlib.sha256(policy.encode()).hexdigest()[:16],
            guard=getattr(guard, "label", "") or "",
            chat=getattr(chat, "label", "") or "",
        )


def verdict_row(turn_id: str, seq: int, check: Check) -> dict:
    v = check.verdict
    return dict(
        turn_id=turn_id,
        seq=seq,
        at=utcnow(),
        stage=check.stage,
        role=v.role,
        safe=v.safe,
        parsed=v.parsed,
        codes="".join(f",{c.code}" for c in v.categories) + ("," if v.categories else ""),
        categories=json.dumps([c.to_dict() for c in v.categories]),
        score=v.score,
        threshold=v.threshold,
        latency_ms=round(v.latency_s * 1000, 3),
        error=v.error,
        note=v.note,
        guard=v.guard,
        raw=v.raw,
        category_scores=json.dumps(v.category_scores),
        highest_window=json.dumps(v.highest_window.to_dict()) if v.highest_window else None,
    )


def keeps_text(policy: str, outcome: str | None, flagged: bool) -> bool:
    """Whether a turn's text is stored: always, never, or (flagged) only for turns that any
    check flagged or that did not end normally: refused, withdrawn, failed (guard or chat
    error, crash). An answered turn, or one the visitor left, keeps none.

    >>> keeps_text("flagged", "answered", False), keeps_text("flagged", "error", False)
    (False, True)
    """
    return policy == TEXT_ALL or (policy == TEXT_FLAGGED and (flagged or outcome not in (ANSWERED, ABANDONED)))


class TurnLog:
    """The moderation log of one app process. `engine=None` writes nothing (`--log-db none`)
    but still feeds `metrics`, when given."""

    def __init__(
        self,
        engine: Engine | None,
        text: str = TEXT_ALL,
        retention_days: float | None = None,
        metrics=None,
        queue_size: int = 20_000,
    ):
        if text not in TEXT_POLICIES:
            raise ValueError(f"text must be one of {TEXT_POLICIES}, not {text!r}")
        self.engine, self.text, self.retention_days, self.metrics = engine, text, retention_days, metrics
        self.dropped = 0  # rows lost because the queue was full or the database kept failing
        self._q: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = None
        if metrics is not None:
            metrics.watch_queue(self._q.qsize)
        if engine is not None:
            problems = integrity_problems(engine)
            if problems:
                log.error("moderation log %s failed its integrity check: %s", engine.url, "; ".join(problems))
            self.prune()
            self._thread = threading.Thread(target=self._run, name="moderation-log-writer", daemon=True)
            self._thread.start()

    # -- the stream side: never blocks ------------------------------------------------

    def record(self, states: Iterator[TurnState], meta: TurnMeta, turn_id: str | None = None) -> Iterator[TurnState]:
        """Yield every state of `states` unchanged, logging the turn as it goes, under
        `turn_id` (32 hex digits; none: a new one)."""
        turn_id, t0 = turn_id or uuid.uuid4().hex, time.monotonic()
        self._put(
            (
                "start",
                dict(
                    id=turn_id,
                    started_at=utcnow(),
                    session=meta.session,
                    policy=meta.policy,
                    policy_hash=meta.policy_hash,
                    guard=meta.guard,
                    chat=meta.chat,
                    text_policy=self.text,
                    notice="",
                    chat_started=False,
                    tokens=0,
                    stopped=False,
                    user_text=None,
                ),
            )
        )
        if self.metrics:
            self.metrics.turn_started()
        seen, tokens, reply_len, first_token, last_token = 0, 0, 0, None, None
        state, outcome, notice, text_written = None, None, None, self.text != TEXT_ALL
        try:
            for state in states:
                if not text_written:  # the prompt is readable on the review page while the turn runs
                    self._put(("update", turn_id, {"user_text": state.user}))
                    text_written = True
                for check in state.checks[seen:]:
                    self._put(("verdict", verdict_row(turn_id, seen, check)))
                    if self.metrics:
                        self.metrics.verdict(check, meta.guard)
                    seen += 1
                if len(state.reply) > reply_len:
                    tokens, reply_len, last_token = tokens + 1, len(state.reply), time.monotonic()
                    first_token = first_token or last_token
                yield state
            outcome = state.outcome if state is not None and state.outcome else ABANDONED
        except GeneratorExit:
            outcome = ABANDONED
            raise
        except Exception as exc:
            outcome, notice = CRASHED, f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if hasattr(states, "close"):
                states.close()  # closing the log's stream closes the turn's, as if unwrapped
            self._finish(turn_id, state, outcome or CRASHED, notice, tokens)
            if self.metrics:
                rate = (tokens - 1) / (last_token - first_token) if tokens > 1 and last_token > first_token else None
                self.metrics.turn_ended(outcome or CRASHED, meta.chat, rate, time.monotonic() - t0)

    def _finish(self, turn_id: str, state: TurnState | None, outcome: str, notice: str | None, tokens: int) -> None:
        keep = state is not None and keeps_text(self.text, outcome, state.flagged)
        state = state or TurnState(user="")  # the turn failed before its first state
        prompt_passed = bool(state.checks) and state.checks[0].stage == "prompt" and state.checks[0].verdict.safe
        self._put(
            (
                "update",
                turn_id,
                dict(
                    ended_at=utcnow(),
                    outcome=outcome,
                    notice=notice if notice is not None else state.notice,
                    chat_started=prompt_passed,
                    tokens=tokens,
                    stopped=state.stopped,
                    user_text=state.user if keep else None,
                    reply=state.reply if keep else None,
                ),
            )
        )

    def _put(self, op: tuple) -> None:
        if self.engine is None:
            return
        try:
            self._q.put_nowait(op)
        except queue.Full:
            self._lost(1, "the write queue is full")

    def _lost(self, n: int, why: str) -> None:
        self.dropped += n
        if self.metrics:
            self.metrics.dropped(n)
        log.error("moderation log: %d row(s) lost: %s", n, why)

    # -- the writer side ----------------------------------------------------------------

    def _run(self) -> None:
        last_prune = time.monotonic()
        while True:
            if time.monotonic() - last_prune > _PRUNE_EVERY_S:
                self.prune()
                last_prune = time.monotonic()
            try:
                batch = [self._q.get(timeout=1.0)]
            except queue.Empty:
                continue
            while len(batch) < _BATCH:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            ops = [op for op in batch if op is not _STOP]
            try:
                if ops:
                    self._write(ops)
            finally:
                for _ in batch:
                    self._q.task_done()
            if len(ops) < len(batch):
                return

    def _write(self, ops: list[tuple]) -> None:
        for attempt, pause in enumerate((*_RETRIES, None)):
            try:
                with self.engine.begin() as conn:
                    for kind, group in itertools.groupby(ops, key=lambda op: op[0]):
                        if kind == "update":  # each with its own columns
                            for _, turn_id, values in group:
                                conn.execute(turns.update().where(turns.c.id == turn_id).values(**values))
                        else:  # consecutive inserts go as one executemany, in order
                            table = turns if kind == "start" else verdicts
                            conn.execute(table.insert(), [op[1] for op in group])
                return
            except Exception as exc:  # the database is down or locked: retry, then give up on the batch
                if pause is None:
                    self._lost(len(ops), f"{type(exc).__name__}: {exc}")
                    return
                log.warning("moderation log: write failed (try %d): %s", attempt + 1, exc)
                time.sleep(pause)

    def prune(self) -> int:
        """Delete turns (and their verdicts and labels) older than the retention period; returns how many turns."""
        if self.engine is None or not self.retention_days:
            return 0
        cutoff = utcnow() - timedelta(days=self.retention_days)
        old = select(turns.c.id).where(turns.c.started_at < cutoff)
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(verdicts).where(verdicts.c.turn_id.in_(old)))
                conn.execute(delete(labels).where(labels.c.turn_id.in_(old)))
                n = conn.execute(delete(turns).where(turns.c.started_at < cutoff)).rowcount
        except Exception as exc:
            log.error("moderation log: pruning failed: %s", exc)
            return 0
        if n:
            log.info("moderation log: deleted %d turn(s) older than %g days", n, self.retention_days)
        return n

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued row is written (or given up); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._q.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, stop the writer, release the database."""
        if self._thread is not None and self._thread.is_alive():
            self._q.put(_STOP, timeout=timeout)
            self._thread.join(timeout)
        if self.engine is not None:
            self.engine.dispose()
