"""The /v1 API's two limits, for one replica or for the whole deployment:

- `--rate-limit`: a token bucket per caller (its key, or its address without keys);
- `--api-concurrency`: /v1 completions and moderations running at once, in all.

    limits = open_limits(config)     # moderation.shared_limits: SharedLimits when --log-db is PostgreSQL,
                                     # else ReplicaLimits
    wait = limits.take(identity)     # 0.0, or the seconds until this caller may call again
    with limits.slot():              # raises LimitsFull when --api-concurrency run already
        ...                          # the turn, or the checks
    limits.close()

`ReplicaLimits` counts in this process's memory: with N replicas a key gets up to N times
the limit. `SharedLimits` (moderation.shared_limits) keeps the counters in the log's
PostgreSQL database, so they hold for every replica that uses it; when that database
cannot be reached it raises `LimitsUnavailable`, and the API answers 503: it never serves
without its limits.

The token bucket's arithmetic is `moderation.access.refill` in both.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from moderation.access import Rate, RateLimiter


class LimitsFull(Exception):
    """--api-concurrency requests are running already (here, or across the deployment)."""

    def __init__(self, size: int, scope: str):
        super().__init__(f"{size} API request(s) are running {scope} (--api-concurrency {size})")
        self.size, self.scope = size, scope


class LimitsUnavailable(Exception):
    """The shared limits cannot be checked (their database is unreachable); the message
    names the database without credentials."""


class ReplicaLimits:
    """Both limits in this process's memory (per replica). `rate` None: no rate limit;
    `concurrency` None: no limit of the API's own on requests at once."""

    scope = "on this replica"

    def __init__(self, rate: Rate | None, concurrency: int | None = None):
        self.rate, self.concurrency = rate, concurrency
        self.limiter = RateLimiter(rate)
        self._lock = threading.Lock()
        self.running = 0

    def take(self, identity: str, now: float | None = None) -> float:
        """0.0 when the request may go ahead, else the seconds until it may. `now`: seconds
        on a monotonic clock (default: time.monotonic())."""
        return self.limiter.take(identity, time.monotonic() if now is None else now)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of --api-concurrency places for the block; LimitsFull when none is free."""
        with self._lock:
            if self.concurrency is not None and self.running >= self.concurrency:
                raise LimitsFull(self.concurrency, self.scope)
            self.running += 1
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1

    def close(self) -> None:
        """Nothing to release: the counters live in this process."""
