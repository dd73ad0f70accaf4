"""Several guard checks in one forward pass: padded rows, and a worker that gathers them.

A check feeds the model new token ids after a key/value cache (the policy prefix's, or an
incremental session's), and reads the hidden states of a few of its last positions. Rows
of different lengths share one pass by padding on the left, in both the cache and the new
ids, so that every row's new ids end at the last position:

    row 1 (cache 5, new 3):  [c c c c c][n n n]
    row 2 (cache 3, new 2):  [_ _ c c c][_ n n]      _: padding, masked out

The attention mask hides the padding, each row's position ids count its own tokens (the
cache's 0..c-1, then c..c+n-1), so each real position sees exactly what it sees in a check
of its own: the same result up to rounding (tests: within 1e-3 in float32). Rotary
embeddings are applied when keys are written, so cached keys keep their positions wherever
their slot is. Each row then gets back its own cache (`row_cache`): the real positions only,
as in a check of its own.

With `static=True` the shapes are bucketed (batch, cache and new lengths rounded up to the
sizes below), so a compiled forward (guard.compiled) sees few distinct shapes.

`CheckBatcher` runs rows on one worker thread, at most `max_batch` in a pass: the rows
queued while the last pass ran, and, while checks come together, those that come within
`wait_s` of the first (a pass starts at once when full), at most `max_tokens` padded new
tokens (a long check waits for the next pass rather than pad short ones to its length).
Every row of a pass that fails gets its error (the check then fails closed:
guard.llama_guard).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

NEW_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 131072)
CACHE_BUCKETS = (0, *NEW_BUCKETS)


def bucket(n: int, sizes: tuple[int, ...]) -> int:
    """The smallest size that holds `n` (n itself past the largest).

    >>> bucket(17, NEW_BUCKETS), bucket(0, CACHE_BUCKETS), bucket(3, (1, 2, 4, 8))
    (32, 0, 4)
    """
    return next((size for size in sizes if size >= n), n)


def batch_sizes(max_batch: int) -> tuple[int, ...]:
    """Powers of two up to `max_batch`, and `max_batch`.

    >>> batch_sizes(6)
    (1, 2, 4, 6)
    """
    sizes = [1]
    while sizes[-1] * 2 < max_batch:
        sizes.append(sizes[-1] * 2)
    return tuple(sorted({*sizes, max_batch}))


@dataclass
class Row:
    """One check's work: new `ids` after `cache` (None: none), and which positions to read,
    counted back from the last (0: the last). `keep`: how many of the new ids the returned
    cache keeps (the rest, an answer head read only for its logits, is dropped)."""

    cache: object
    ids: list[int]
    reads: tuple[int, ...]
    keep: int


def cache_tensors(cache) -> list[tuple]:
    """[(keys, values)] per layer of a DynamicCache, each (1, heads, length, dim); [] for None."""
    if cache is None:
        return []
    return [(layer.keys, layer.values) for layer in cache.layers]


def cache_length(cache) -> int:
    return 0 if cache is None else cache.get_seq_length()


def make_cache(pairs: list[tuple]):
    """A DynamicCache holding `pairs` [(keys, values)] per layer."""
    from transformers import DynamicCache  # heavy: loaded with a local model, not with guard

    cache = DynamicCache()
    for index, (keys, values) in enumerate(pairs):
        cache.update(keys, values, index)
    return cache


@dataclass
class Padded:
    """The model inputs for rows padded together, and the layout to take them apart."""

    input_ids: object
    attention_mask: object
    position_ids: object
    cache_position: object
    past: list[tuple]  # [(keys, values)] per layer, (batch, heads, width, dim); [] without caches
    width: int  # cache slots before the new ids
    lengths: list[tuple[int, int]]  # (cache, new) per row


def stacked(cache) -> tuple:
    """A cache's keys and values, each stacked over layers: (layers, heads, length, dim)."""
    import torch  # heavy: loaded with a local model, not with guard

    return tuple(torch.stack([t[0] for t in part]) for part in zip(*cache_tensors(cache)))


def pad_rows(rows: list[Row], device, static: bool = False, batch_to: int = 0) -> Padded:
    """Rows left-padded into one batch (see the module docstring); rows past `len(rows)`
    (up to `batch_to`) repeat the last. The caches are copied in with one copy per row
    for all layers (a GPU pass pays a launch per copy)."""
    import torch  # heavy: loaded with a local model, not with guard

    lengths = [(cache_length(r.cache), len(r.ids)) for r in rows]
    width, new = max(c for c, _ in lengths), max(n for _, n in lengths)
    if static:
        width, new = bucket(width, CACHE_BUCKETS), bucket(new, NEW_BUCKETS)
    source = [min(i, len(rows) - 1) for i in range(max(len(rows), batch_to))]
    ids = torch.zeros((len(source), new), dtype=torch.long)
    mask = torch.zeros((len(source), width + new), dtype=torch.long)
    positions = torch.zeros((len(source), new), dtype=torch.long)
    for i, (row, (c, n)) in enumerate((rows[s], lengths[s]) for s in source):
        ids[i, new - n :] = torch.tensor(row.ids)
        mask[i, width - c : width] = 1
        mask[i, width + new - n :] = 1
        positions[i, new - n :] = torch.arange(c, c + n)
    caches = {s: stacked(rows[s].cache) for s in set(source) if lengths[s][0]}
    past: list[tuple] = []
    if caches:
        k0, v0 = next(iter(caches.values()))
        keys = k0.new_zeros((k0.shape[0], len(source), k0.shape[1], width, k0.shape[3]))
        values = v0.new_zeros((v0.shape[0], len(source), v0.shape[1], width, v0.shape[3]))
        for i, s in enumerate(source):
            if s in caches:
                keys[:, i, :, width - lengths[s][0] :], values[:, i, :, width - lengths[s][0] :] = caches[s]
        past = list(zip(keys, values))
    return Padded(
        ids.to(device),
        mask.to(device),
        positions.to(device),
        torch.arange(width, width + new, device=device),
        past,
        width,
        lengths,
    )


def row_cache(keys, values, padded: Padded, index: int, keep: int):
    """Row `index`'s own cache from the pass's keys and values stacked over layers
    (layers, batch, heads, length, dim): its cache positions and the first `keep` of its new
    ids, without padding; one copy for all layers (the pass's tensors may be reused)."""
    import torch  # heavy: loaded with a local model, not with guard

    c, n = padded.lengths[index]
    start = padded.width + padded.input_ids.shape[1] - n
    spans = [slice(padded.width - c, padded.width), slice(start, start + keep)]
    own = [torch.cat([t[:, index, :, s] for s in spans], 2) for t in (keys, values)]  # (layers, heads, length, dim)
    return make_cache([(k[None], v[None]) for k, v in zip(*own)])


class _Pending:
    """A row waiting for its pass: the result or the error, and an event set when either is."""

    def __init__(self, row: Row):
        self.row, self.result, self.error, self.done = row, None, None, threading.Event()


class CheckBatcher:
    """Runs submitted rows in passes of up to `max_batch` on one worker thread.

    `run(rows) -> [result per row]` does a pass (it raises: every row of it gets the error).
    The first row of a pass waits at most `wait_s` for more (`_gather`)."""

    def __init__(self, run, max_batch: int, wait_s: float = 0.002, size=len, max_tokens: int | None = None):
        if max_batch < 1 or wait_s < 0:
            raise ValueError(f"a batch holds at least one check and waits >= 0 s, not {max_batch}, {wait_s}")
        self.run, self.max_batch, self.wait_s = run, max_batch, wait_s
        self.size, self.max_tokens = size, max_tokens
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._held: _Pending | None = None  # a row that did not fit the last pass: the next one's first
        self._start = threading.Lock()
        self._worker: threading.Thread | None = None
        self.passes: list[int] = []  # rows per pass, latest last (for tests and benches; bounded)

    def submit(self, row: Row):
        """The row's result once its pass ran (blocks); raises the pass's error."""
        pending = _Pending(row)
        self._ensure_worker()
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _ensure_worker(self) -> None:
        with self._start:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, name="guard-batch", daemon=True)
                self._worker.start()

    def _gather(self) -> list[_Pending]:
        """The next pass's rows: the first waiting one, then those already queued, and while
        checks come together (the last pass was shared, or none ran yet) others that come
        within `wait_s`, until full. A lone session's checks so never wait for company."""
        batch, self._held = [self._held or self._queue.get()], None
        together = not self.passes or self.passes[-1] > 1
        deadline = time.monotonic() + (self.wait_s if together else 0.0)
        while len(batch) < self.max_batch:
            left = deadline - time.monotonic()
            try:
                pending = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if not self._fits(batch, pending):
                self._held = pending
                break
            batch.append(pending)
        return batch

    def _fits(self, batch: list[_Pending], pending: _Pending) -> bool:
        """Whether the padded pass stays within `max_tokens` (rows x the longest row's
        `size`) with `pending` in it: a long check does not pad many short ones to its length."""
        if self.max_tokens is None:
            return True
        longest = max(self.size(p.row) for p in [*batch, pending])
        return (len(batch) + 1) * longest <= self.max_tokens

    def _serve(self) -> None:
        while True:
            self._pass(self._gather())

    def _pass(self, batch: list[_Pending]) -> None:
        """Run one pass; every row gets its result, or the pass's error (never neither)."""
        try:
            results = self.run([p.row for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a guard batch of {len(batch)} checks gave {len(results)} results")
            for pending, result in zip(batch, results):
                pending.result = result
        except BaseException as exc:  # noqa: BLE001 - each check of the pass fails closed with it
            for pending in batch:
                pending.error = exc if isinstance(exc, Exception) else RuntimeError(f"guard batch stopped: {exc!r}")
            if not isinstance(exc, Exception):
                raise
        finally:
            self.passes = [*self.passes[-999:], len(batch)]
            for pending in batch:
                pending.done.set()


def run_padded(forward, rows: list[Row], device, static: bool = False, max_batch: int = 1):
    """[(hidden states at the row's `reads`, (len(reads), hidden)), the row's own cache)] for
    `rows` in one pass. `forward(padded) -> (last hidden states, [(keys, values)] per layer)`;
    with `static`, shapes are bucketed (the batch up to one of `batch_sizes(max_batch)`)."""
    import torch  # heavy: loaded with a local model, not with guard

    batch_to = bucket(len(rows), batch_sizes(max(max_batch, len(rows)))) if static else 0
    padded = pad_rows(rows, device, static, batch_to)
    hidden, pairs = forward(padded)
    keys, values = (torch.stack(part) for part in zip(*pairs))
    new = padded.input_ids.shape[1]
    return [
        (hidden[i, [new - 1 - r for r in row.reads]], row_cache(keys, values, padded, i, row.keep))
        for i, row in enumerate(rows)
    ]
