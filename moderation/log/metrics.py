"""Prometheus metrics of the moderation, served at /metrics when `--metrics` is given.

    metrics = Metrics()
    log = TurnLog(engine, metrics=metrics)       # record() feeds the metrics
    attach_metrics(demo.app, metrics)             # GET /metrics on the same server

Each `Metrics` has its own registry, so two apps in one process (tests) do not collide.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from moderation.turn import Check

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
RATE_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 200, 500)


def verdict_result(check: Check) -> str:
    """safe / unsafe / failed (no real judgement: error or unreadable answer)."""
    v = check.verdict
    return "failed" if v.failed else "safe" if v.safe else "unsafe"


class Metrics:
    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.check_seconds = Histogram(
            "moderation_guard_check_seconds",
            "Guard check latency",
            ["stage", "guard"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.verdicts = Counter(
            "moderation_verdicts",
            'Guard verdicts by stage, result and category (one count per flagged category; category="" when none)',
            ["stage", "result", "category"],
            registry=r,
        )
        self.turns = Counter("moderation_turns", "Finished turns by outcome", ["outcome"], registry=r)
        self.tokens_per_second = Histogram(
            "moderation_chat_tokens_per_second",
            "Chat streaming speed per turn",
            ["chat"],
            buckets=RATE_BUCKETS,
            registry=r,
        )
        self.turn_seconds = Histogram(
            "moderation_turn_seconds", "Whole-turn duration", buckets=LATENCY_BUCKETS, registry=r
        )
        self.in_progress = Gauge("moderation_turns_in_progress", "Turns running now", registry=r)
        self.queue_depth = Gauge("moderation_log_queue_depth", "Log rows waiting for the writer", registry=r)
        self.lost = Counter("moderation_log_dropped_rows", "Log rows lost (queue full or database failing)", registry=r)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def turn_started(self) -> None:
        self.in_progress.inc()

    def turn_ended(self, outcome: str, chat: str, tokens_per_second: float | None, seconds: float) -> None:
        self.in_progress.dec()
        self.turns.labels(outcome).inc()
        self.turn_seconds.observe(seconds)
        if tokens_per_second is not None:
            self.tokens_per_second.labels(chat).observe(tokens_per_second)

    def verdict(self, check: Check, guard: str) -> None:
        v = check.verdict
        self.check_seconds.labels(check.stage, v.guard or guard).observe(v.latency_s)
        result = verdict_result(check)
        for code in [c.code for c in v.categories] or [""]:
            self.verdicts.labels(check.stage, result, code).inc()

    def dropped(self, n: int) -> None:
        self.lost.inc(n)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def attach_metrics(app, metrics: Metrics, path: str = "/metrics") -> None:
    """Serve `metrics` at `path` on a FastAPI app (Gradio's `demo.app` included). The route
    goes first, so no catch-all route of the app can shadow it."""
    from fastapi import Response
    from fastapi.routing import APIRoute

    def endpoint() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.router.routes.insert(0, APIRoute(path, endpoint, methods=["GET"], include_in_schema=False))
