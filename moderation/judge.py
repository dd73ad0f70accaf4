"""Where a turn's guard checks run: `GuardPool` (the threads, sized from --concurrency)
and `Judge` (one turn's checks on them, each with a deadline; a guard that hangs or
raises gives a failed, unsafe verdict: the turn fails closed)."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Protocol

from guard.base import Guard
from guard.policy import Policy
from guard.verdict import Verdict, failed_verdict
from moderation.thresholds import decide, floor


class CheckSettings(Protocol):
    """What a judge reads of a turn's settings (moderation.turn.TurnSettings)."""

    threshold: float
    category_thresholds: Mapping[str, float]
    policy: Policy
    guard_timeout_s: float


CHECKS_PER_PLACE = 2  # guard threads per place of --concurrency (see GuardPool)


class GuardPool(ThreadPoolExecutor):
    """The threads guard checks run on; the guards run their backends inline, so the
    deadline on a check (Judge) is the only one it has.

    Sized from the server's one bound on moderated work (--concurrency, moderation.admission):
    CHECKS_PER_PLACE threads per place. An admitted turn waits on one check at a time (the
    prompt's verdict is in before a partial check starts, and partial checks go one by one),
    but a check past its deadline cannot be stopped and keeps its thread until the guard
    returns: the second thread lets the next check start beside it rather than queue
    behind it. A guard that hangs for good holds at most `size` threads; checks after that
    wait in the queue, time out and fail closed, instead of piling up threads."""

    def __init__(self, concurrency: int = 1, name: str = "guard-check"):
        self.size = CHECKS_PER_PLACE * max(1, int(concurrency))
        super().__init__(max_workers=self.size, thread_name_prefix=name)

    def close(self) -> None:
        """Take no more checks and drop the queued ones. A running check is not waited for:
        its thread ends when its guard call returns."""
        self.shutdown(wait=False, cancel_futures=True)


class Judge:
    """Runs one turn's guard checks on `pool` with a deadline; a guard that hangs or raises
    yields a failed (unsafe) verdict. Without a pool, the judge has one of its own (one
    place), which `close` shuts down."""

    def __init__(self, guard: Guard, settings: CheckSettings, pool: GuardPool | None = None):
        self.guard, self.settings = guard, settings
        self._own_pool = pool is None
        self.pool = GuardPool() if pool is None else pool
        self._futures: list[Future] = []

    def submit(self, conversation: list[dict]) -> Future:
        future = self.pool.submit(self._check, conversation)
        self._futures.append(future)
        return future

    def _check(self, conversation: list[dict]) -> Verdict:
        """The guard asked at the lowest threshold in force, then the per-category rule."""
        s = self.settings
        verdict = self.guard.check(conversation, s.policy, floor(s.threshold, s.category_thresholds))
        return decide(verdict, s.threshold, s.category_thresholds)

    def result(self, future: Future, role: str) -> Verdict:
        try:
            return future.result(timeout=self.settings.guard_timeout_s)
        except FutureTimeout:
            future.cancel()
            return failed_verdict(
                f"guard timed out after {self.settings.guard_timeout_s:g} s", role=role, guard=self.guard.label
            )
        except Exception as exc:  # a guard must not raise, but one that does fails closed
            return failed_verdict(f"{type(exc).__name__}: {exc}", role=role, guard=self.guard.label)

    def __call__(self, conversation: list[dict], role: str) -> Verdict:
        return self.result(self.submit(conversation), role)

    def close(self) -> None:
        """Cancel this turn's checks that have not started (a finished turn needs none), and
        shut the judge's own pool, if it has one."""
        for future in self._futures:
            future.cancel()
        if self._own_pool:
            self.pool.close()
