"""One limit on moderated work for the whole server: `--concurrency` turns or guard jobs
at once, whichever entry point starts them (page events, /chat, /moderate, /v1).

The app makes one `Admission` and hands it to the page and to the API:

    admission = Admission(size=2, queue=16)
    if not admission.reserve():          # the API's waiting line is full: refuse at once
        ...  503
    with admission.held(stop) as got:    # waits for a place, unless `stop` is set first
        if got:
            ...  run the turn or the checks

`reserve` bounds only callers that queue outside Gradio (the /v1 API); Gradio's own queue
bounds the waiting of page events and of /chat and /moderate. `held` without a
reservation simply waits.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

POLL_S = 0.2  # how often a waiting caller looks at its stop event


class Admission:
    """At most `size` holders at once, and at most `queue` reserved callers waiting."""

    def __init__(self, size: int, queue: int):
        self.size, self.queue = size, queue
        self._free = threading.Semaphore(size)
        self._lock = threading.Lock()
        self.waiting = 0  # reserved callers not yet holding a place
        self.blocked = 0  # callers inside `held` waiting for a place, reserved or not
        self.running = 0  # holders now

    @classmethod
    def unbounded(cls) -> Admission:
        """No limit: for a page or an API built alone (the server passes its own)."""
        return cls(sys.maxsize, sys.maxsize)

    def reserve(self) -> bool:
        """Join the waiting line; False when it is full. A reservation ends with `held`."""
        with self._lock:
            if self.waiting >= self.queue:
                return False
            self.waiting += 1
            return True

    @contextlib.contextmanager
    def held(self, stop: threading.Event, reserved: bool = False) -> Iterator[bool]:
        """Wait for a place (unless `stop` is set first) and hold it for the block; yields
        whether one was taken. `reserved`: this caller's `reserve` is ended here."""
        got = self._free.acquire(blocking=False)
        try:
            if not got:
                self._count("blocked", +1)
                try:
                    while not got and not stop.is_set():
                        got = self._free.acquire(timeout=POLL_S)
                finally:
                    self._count("blocked", -1)
        finally:
            if reserved:
                self._count("waiting", -1)
        if not got:
            yield False
            return
        self._count("running", +1)
        try:
            yield True
        finally:
            self._count("running", -1)
            self._free.release()

    def _count(self, counter: str, delta: int) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + delta)

    def free_now(self) -> bool:
        """Whether a place is free at this moment (it may be taken before it is asked for)."""
        with self._lock:
            return self.running < self.size
