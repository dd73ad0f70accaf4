"""A paced fake chat for the log tests: streams numbered words with a pause between them,
and can stall (block) after some, as a turn caught mid-stream. Control flow only: the
guard and chat models themselves are exercised elsewhere."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from chat.backend import ChatBackend


@dataclass
class Fitted:
    messages: list
    dropped: int


class PacedChat(ChatBackend):
    label = "paced chat"

    def __init__(
        self, words: int = 8, pause_s: float = 0.0, stall_after: int | None = None, on_stall=None, word: str = "word"
    ):
        self.words, self.pause_s, self.stall_after, self.on_stall, self.word = (
            words,
            pause_s,
            stall_after,
            on_stall,
            word,
        )

    def fit(self, messages, settings):
        return Fitted(list(messages), 0)

    def stream(self, messages, settings, stop=None):
        for i in range(self.words):
            if stop is not None and stop.is_set():
                return
            if self.stall_after is not None and i == self.stall_after:
                if self.on_stall:
                    self.on_stall()
                threading.Event().wait()  # forever: the process is killed here
            time.sleep(self.pause_s)
            yield f"{self.word}{i} "
