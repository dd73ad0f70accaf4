"""Threads that run generations and are kept for the next one.

    workers = GenerationThreads()
    done = workers.run(job)        # job() runs on an idle kept thread, or a new one
    done.wait(10)                  # set when job() has returned
    workers.busy                   # generations running (or about to) right now
    workers.on_each(job, 2)        # job(0) and job(1) on two different kept threads, in turn
    workers.close()                # idle threads end now, busy ones after their job

Why keep them: on an H100 with the Llama 3 8B shape, `generate` in a thread started for
the call ran at 14 tokens/s while the same call in a thread that had generated before
ran at 23 to 31 (bench/gpu.py --sections threads). The cause turned out to be cuDNN
attention's per-thread graph cache, now avoided for every thread (compute.steady_attention);
a kept thread still spares a thread start per reply. The threads are daemons: a process
that exits never waits for one. Whoever owns the model closes them (LocalChat.close, which
the app calls when its server stops).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class GenerationThreads:
    """Run jobs on kept daemon threads named `name`: at most `keep` idle threads are kept;
    a burst beyond them gets extra threads, which end after their job."""

    def __init__(self, name: str = "chat-generate", keep: int = 4):
        self.name, self.keep = name, keep
        self._idle: list[queue.SimpleQueue] = []  # the job queues of idle threads
        self._lock = threading.Lock()
        self._busy = 0
        self._closed = False

    @property
    def busy(self) -> int:
        with self._lock:
            return self._busy

    def run(self, job: Callable[[], None]) -> threading.Event:
        """Start `job` now on a thread of its own; the event is set when it has returned
        (an exception it raises is logged: jobs report their own failures). Raises
        RuntimeError once closed."""
        done = threading.Event()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self.name} threads are closed")
            self._busy += 1
            jobs = self._idle.pop() if self._idle else None
        if jobs is None:
            jobs = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(jobs,), name=self.name, daemon=True).start()
        jobs.put((job, done))
        return done

    def on_each(self, job: Callable[[int], None], count: int) -> None:
        """Run `job(i)` for i in range(count) on `count` different threads (at most `keep`,
        all kept afterwards), one job at a time, and return when all have; the first error
        a job raised is raised here. For what a thread must prepare for itself before it
        generates (chat.compiled: CUDA graphs are recorded per thread)."""
        count = max(1, min(count, self.keep))
        together = threading.Barrier(count, timeout=60)  # none returns to the idle list before all started
        one_at_a_time = threading.Lock()
        errors: list[BaseException] = []

        def each(i: int) -> None:
            try:
                together.wait()
            except threading.BrokenBarrierError as exc:  # a thread did not start (closed meanwhile)
                errors.append(exc)
            with one_at_a_time:
                if errors:
                    return
                try:
                    job(i)
                except BaseException as exc:  # noqa: BLE001  raised to the caller below
                    errors.append(exc)

        for done in [self.run(lambda i=i: each(i)) for i in range(count)]:
            done.wait()
        if errors:
            raise errors[0]

    def close(self) -> None:
        """Take no more jobs. Idle threads end now; a running job is not cut short, and its
        thread ends when the job returns. Does not wait for either."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for jobs in idle:
            jobs.put(None)

    def _serve(self, jobs: queue.SimpleQueue) -> None:
        while (item := jobs.get()) is not None:
            job, done = item
            try:
                job()
            except BaseException:  # noqa: BLE001  a job's own error must not end a kept thread
                log.exception("generation job failed")
            with self._lock:
                self._busy -= 1
                kept = not self._closed and len(self._idle) < self.keep
                if kept:
                    self._idle.append(jobs)
            done.set()
            if not kept:
                return
