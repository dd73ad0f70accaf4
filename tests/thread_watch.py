"""Waiting, with one bounded deadline, for threads to end (no sleeps)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable


def named(prefix: str) -> set[threading.Thread]:
    """The live threads whose name starts with `prefix`."""
    return {t for t in threading.enumerate() if t.name.startswith(prefix)}


def still_alive(threads: Iterable[threading.Thread], seconds: float = 10.0) -> list[str]:
    """Join each thread within one shared deadline; the names of those still running then."""
    deadline = time.monotonic() + seconds
    threads = list(threads)
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threads if t.is_alive()]
