"""One turn at a time per browser session, and a Stop that reaches only that session's turn.

    sessions = Sessions()
    turn = sessions.begin("abc")        # a Turn: its stop event ends the generation
    sessions.begin("abc")               # -> None: "abc" already has a turn running
    sessions.stop("xyz")                # another session's Stop: "abc" goes on
    sessions.cancel("abc")              # Clear: stop it, and it must not draw again
    sessions.end(turn)                  # the handler's `finally`

A session is Gradio's `session_hash` (one per open page); requests without one (API
calls) get a fresh key each, so they never share a Stop.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field


@dataclass
class Turn:
    """A running turn: `stop` ends its generation; `cancelled` means its output must be
    dropped (the page was cleared under it)."""

    session: str
    stop: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False


class Sessions:
    def __init__(self):
        self._running: dict[str, Turn] = {}
        self._lock = threading.Lock()

    def begin(self, session: str | None) -> Turn | None:
        """A new Turn for `session`, or None while that session already has one running."""
        key = session or f"anonymous-{uuid.uuid4().hex}"
        with self._lock:
            if key in self._running:
                return None
            turn = self._running[key] = Turn(key)
            return turn

    def end(self, turn: Turn) -> None:
        turn.stop.set()  # whatever ended the handler, its generation thread ends too
        with self._lock:
            if self._running.get(turn.session) is turn:
                del self._running[turn.session]

    def stop(self, session: str | None) -> bool:
        """Stop the session's running turn, if any (its text so far stays)."""
        return self._stop(session, cancel=False)

    def cancel(self, session: str | None) -> bool:
        """Stop the session's running turn and drop its output (Clear)."""
        return self._stop(session, cancel=True)

    def _stop(self, session: str | None, cancel: bool) -> bool:
        with self._lock:
            turn = self._running.get(session) if session else None
            if turn and cancel:
                turn.cancelled = True  # under the lock: the turn reads it before it draws again
        if turn:
            turn.stop.set()
        return turn is not None

    def running(self, session: str | None) -> bool:
        with self._lock:
            return bool(session) and session in self._running
