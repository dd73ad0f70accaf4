"""The pipe between `generate`'s thread and the reader: token ids cross it, text is made on
the reader's side, one token at a time.

    pipe = TokenPipe()                     # generate(..., streamer=pipe) in a thread
    text = IncrementalText(tokenizer)
    for ids in pipe:                       # [1234], [5678], ...
        delta = text.add(ids)              # "Hello", " world", "" (a character not complete yet)

Why not transformers' TextIteratorStreamer: on every decoding step it decodes the whole
reply so far in the generation thread, and hands the text over through a `queue.Queue`,
whose `put` takes a Python lock that the reader holds while it waits for the GIL after
being woken, so the generation thread stalls behind the reader once per token (profiled
on this project's 2 busy cores: 0.7 ms per token, a fifth of a small model's step). Here
the generation thread does one `SimpleQueue.put` (no Python-level lock) per step; the
reader decodes only a few tokens per step (the window since the last complete text).
"""

from __future__ import annotations

from queue import SimpleQueue


class TokenPipe:
    """A transformers streamer (`put`/`end`) that passes each step's new token ids on.
    The first `put` is the prompt, which is skipped."""

    _END = None

    def __init__(self):
        self._queue: SimpleQueue = SimpleQueue()
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self._queue.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self._queue.put(self._END)

    def __iter__(self):
        while (ids := self._queue.get()) is not self._END:
            yield ids


class IncrementalText:
    """Text deltas from token ids added one step at a time; their concatenation is the
    decoded reply (special tokens skipped). A delta is held back while the text ends in
    an incomplete character (U+FFFD from a partial UTF-8 sequence).

    Each step decodes the window from the last point where text was complete, with the
    tokens before it as context, so its cost does not grow with the reply."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._start = 0  # window start: context tokens
        self._read = 0  # tokens up to here have been turned into text

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, ids: list[int]) -> str:
        self.ids += ids
        before = self._decode(self.ids[self._start : self._read])
        after = self._decode(self.ids[self._start :])
        if len(after) <= len(before) or after.endswith("\ufffd") or not after.startswith(before):
            return ""
        self._start, self._read = self._read, len(self.ids)
        return after[len(before) :]

    def flush(self) -> str:
        """What is still held back, at the end of the reply."""
        before = self._decode(self.ids[self._start : self._read])
        after = self._decode(self.ids[self._start :])
        self._start = self._read = len(self.ids)
        return after[len(before) :] if after.startswith(before) else ""
