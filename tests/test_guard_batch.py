"""Batched and one-pass guard checks (guard.batch, guard.local) on a tiny random Llama in
float32 with the real tokenizer: each check's result is that of its own check."""

from __future__ import annotations

import threading
import time

import pytest

from guard import load_guard
from guard.llama_guard import LlamaGuard
from guard.local import LocalGuardModel
from guard.prompt import prompt_ids

USER = {"role": "user", "content": "How do I bake bread at home without a bread machine?"}
REPLY = (
    "Sure! Mix 500 g of flour, 350 ml of lukewarm water, 10 g of salt and 7 g of dried yeast. "
    "Knead the dough for ten minutes until it is smooth and elastic, then let it rise."
)
CONVERSATIONS = [  # different lengths: rows are padded differently
    [{"role": "user", "content": "hi"}],
    [USER],
    [{"role": "user", "content": "Tell me a story about a dragon " * 6}],
    [USER, {"role": "assistant", "content": REPLY}],
]
ATOL = 1e-3  # the bound for float32; the figures are ~1e-7 here
WAIT_S = 30.0  # a pass starts when full: the wait only bounds a test whose threads never all came


@pytest.fixture(scope="module")
def tiny_guard(tiny_guard_path):
    return load_guard(str(tiny_guard_path), dtype="float32")


def batched(guard, n: int, **options) -> LlamaGuard:
    """The same model behind a backend that runs up to `n` checks in one pass."""
    backend = LocalGuardModel(guard.backend.model, guard.backend.tokenizer, batch=n, batch_wait_s=WAIT_S, **options)
    return LlamaGuard(backend, guard.version, guard.label, guard.taxonomy)


def together(work, n: int) -> list:
    """work(i) for i < n, on n threads released at once; the results in order."""
    results: list = [None] * n
    start = threading.Barrier(n)

    def run(i: int) -> None:
        start.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads)
    return results


def same(a, b) -> None:
    """Two assessments agree: score, code logits within ATOL, and the same answer."""
    assert a.score == pytest.approx(b.score, abs=ATOL)
    assert a.code_logits.keys() == b.code_logits.keys() and a.code_logits
    for code in a.code_logits:
        assert a.code_logits[code] == pytest.approx(b.code_logits[code], abs=ATOL), code
    assert a.raw == b.raw


def test_one_pass_reads_the_score_and_the_code_logits_of_the_full_model(tiny_guard):
    """Score and code logits come from one forward pass of the base model, and agree with
    the plain model's full logits over the whole input followed by `unsafe \\n S`."""
    import torch

    backend = tiny_guard.backend
    prompt = tiny_guard.render(CONVERSATIONS[1])
    backend.assess(prompt, 1.0)  # the policy prefix is cached by now
    calls = []
    hook = backend.model.base_model.register_forward_hook(lambda *_: calls.append(1))
    try:
        got = backend.assess(prompt, 1.0)
    finally:
        hook.remove()
    assert len(calls) == 1  # not a second step for the category scores
    head, codes, code_ids = backend._answer_head(prompt)
    prefix, rest = prompt_ids(backend.tokenizer, prompt)
    with torch.inference_mode():
        logits = backend.model(input_ids=torch.tensor([prefix + rest + head])).logits[0].float()
    answer = logits[-1 - len(head), [backend.safe_id, backend.unsafe_id]]
    assert got.score == pytest.approx(torch.sigmoid(answer[1] - answer[0]).item(), abs=1e-4)
    top = logits[-1, code_ids]
    for code, logit in zip(codes, top.tolist()):
        assert got.code_logits[code] - got.code_logits[codes[0]] == pytest.approx(logit - top[0].item(), abs=1e-4)


@pytest.mark.parametrize("reuse_prefix", [True, False])
def test_batched_checks_equal_single_checks(tiny_guard, reuse_prefix):
    """Four threads' checks of different lengths run as one padded pass; each result is
    its single check's (score, code logits, generated categories at threshold 0)."""
    n = len(CONVERSATIONS)
    guard = batched(tiny_guard, n, reuse_prefix=reuse_prefix)
    prompts = [tiny_guard.render(c) for c in CONVERSATIONS]
    single = [tiny_guard.backend.assess(p, 0.0, reuse_prefix=reuse_prefix) for p in prompts]
    got = together(lambda i: guard.backend.assess(prompts[i], 0.0), n)
    assert guard.backend.batcher.passes == [n]
    for a, b in zip(got, single):
        same(a, b)
        assert a.raw.startswith("unsafe")  # threshold 0: categories generated after the pass


def test_batched_incremental_sessions_equal_full_checks(tiny_guard):
    """Three sessions stream replies of different lengths together: every check, batched
    with the others' and continuing its session's cache, scores as a full check."""
    guard = batched(tiny_guard, 3)
    cuts = [[20, 60, len(REPLY)], [5, 90, 140], [33, 34, 100]]

    def stream(i: int) -> list:
        session = guard.backend.session()
        results = [session.assess(tiny_guard.render([USER]), 1.0)]
        for cut in cuts[i]:
            results.append(
                session.assess(tiny_guard.render([USER, {"role": "assistant", "content": REPLY[:cut]}]), 1.0)
            )
            assert session.reused_tokens > 0
        return results

    got = together(stream, 3)
    assert max(guard.backend.batcher.passes) > 1
    for i, results in enumerate(got):
        conversations = [[USER]] + [[USER, {"role": "assistant", "content": REPLY[:cut]}] for cut in cuts[i]]
        for result, conversation in zip(results, conversations):
            same(result, tiny_guard.backend.assess(tiny_guard.render(conversation), 1.0, reuse_prefix=False))


def test_a_failing_batch_fails_each_check_closed(tiny_guard):
    """A pass that raises: every check in it gets a failed (unsafe) verdict with the error."""
    guard = batched(tiny_guard, 3)

    def broken(rows):
        raise RuntimeError("CUDA out of memory (a fake)")

    guard.backend.batcher.run = broken
    verdicts = together(lambda i: guard.check(CONVERSATIONS[i]), 3)
    assert guard.backend.batcher.passes == [3]
    for verdict in verdicts:
        assert verdict.failed and not verdict.safe
        assert "CUDA out of memory (a fake)" in verdict.error
    guard.backend.batcher.run = lambda rows: rows  # a pass that answers nothing usable
    verdict = guard.check(CONVERSATIONS[0])
    assert verdict.failed and not verdict.safe


def test_batch_settings_are_checked(tiny_guard):
    with pytest.raises(ValueError, match="at least 1"):
        LocalGuardModel(tiny_guard.backend.model, tiny_guard.backend.tokenizer, batch=0)
    assert LocalGuardModel(tiny_guard.backend.model, tiny_guard.backend.tokenizer).batcher is None  # CPU: 1


def test_compiled_checks_equal_eager_checks(tiny_guard_path, tiny_guard):
    """`compile=True`: the guard loads with its first compiled check done (the warm-up), and
    compiled checks, incremental re-checks included, give the eager full checks' scores
    and code logits."""
    guard = load_guard(str(tiny_guard_path), dtype="float32", compile=True)
    assert guard.backend.compiled and guard.backend.batcher.passes == [1]  # the warm-up
    same(
        guard.backend.assess(tiny_guard.render([USER]), 1.0), tiny_guard.backend.assess(tiny_guard.render([USER]), 1.0)
    )
    session = guard.backend.session()
    for conversation in (
        [USER],
        [USER, {"role": "assistant", "content": REPLY[:40]}],
        [USER, {"role": "assistant", "content": REPLY[:50]}],
    ):
        got = session.assess(tiny_guard.render(conversation), 1.0)
        same(got, tiny_guard.backend.assess(tiny_guard.render(conversation), 1.0, reuse_prefix=False))
    assert session.reused_tokens > 0


def test_guard_batch_flags_reach_the_local_guard(tiny_guard_path):
    """`--guard-batch 3 --guard-batch-wait-ms 1.5`: the app's guard runs up to 3 checks a pass."""
    from moderation.models import model_slots
    from moderation.settings import parse_config

    config = parse_config(
        ["--guard-model", str(tiny_guard_path), "--chat-model", "offline", "--guard-batch", "3"]
        + ["--guard-batch-wait-ms", "1.5"]
    )
    slot = model_slots(config).guard
    slot.load()
    assert slot.value.backend.batcher.max_batch == 3
    assert slot.value.backend.batcher.wait_s == pytest.approx(0.0015)
    assert parse_config(["--guard-model", str(tiny_guard_path), "--chat-model", "offline"]).guard_batch is None


def test_a_lone_session_never_waits_for_company():
    """After a pass of one check, the next lone check runs at once, whatever `wait_s` (here
    ten minutes: waiting would outlast the test's one-minute deadline)."""
    from guard.batch import CheckBatcher

    batcher = CheckBatcher(lambda rows: [row * 10 for row in rows], max_batch=2, wait_s=0.0)
    assert batcher.submit(1) == 10
    batcher.wait_s = 600.0
    results: list = []
    thread = threading.Thread(target=lambda: results.append(batcher.submit(2)), daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert results == [20] and batcher.passes == [1, 1]


def test_a_failing_batch_blocks_the_turn(tiny_guard, tiny_chat_path):
    """A moderated turn whose batched prompt check fails is blocked, with the reason, and
    nothing of a reply is shown."""
    from chat import GenerationSettings, load_chat
    from moderation.turn import REFUSED, TurnSettings, run_turn

    guard = batched(tiny_guard, 2)
    guard.backend.batcher.run = lambda rows: 1 / 0
    settings = TurnSettings(generation=GenerationSettings(temperature=0.0, max_new_tokens=8))
    final = list(run_turn(guard, load_chat(str(tiny_chat_path)), [], "Tell me about bread.", settings))[-1]
    assert final.outcome == REFUSED and final.shown == "" and final.reply == ""
    assert "could not judge" in final.notice and "ZeroDivisionError" in final.notice


def test_a_long_check_does_not_pad_short_ones_to_its_length():
    """Rows sized 10, 10, 100, 10 queued behind a running pass, at most 120 padded tokens a
    pass: the long one does not join the short ones (2 x 100 > 120) but starts the next pass."""
    from guard.batch import CheckBatcher

    running, gate = threading.Event(), threading.Event()
    order: list[list[int]] = []

    def run(rows):
        running.set()
        gate.wait(timeout=60)  # the first pass holds the worker until all rows are queued
        order.append(list(rows))
        return rows

    batcher = CheckBatcher(run, max_batch=4, wait_s=0.0, size=lambda row: row, max_tokens=120)
    threads = [threading.Thread(target=batcher.submit, args=(1,), daemon=True)]
    threads[0].start()
    assert running.wait(timeout=60)
    for n in (10, 10, 100, 10):
        threads.append(threading.Thread(target=batcher.submit, args=(n,), daemon=True))
        threads[-1].start()
        deadline = time.monotonic() + 60  # queued in this order
        while batcher._queue.qsize() < len(threads) - 1 and time.monotonic() < deadline:
            time.sleep(0.001)
    gate.set()
    for t in threads:
        t.join(timeout=60)
    assert order == [[1], [10, 10], [100], [10]]


def test_static_shapes_pad_to_buckets_and_keep_each_result(tiny_guard):
    """The compiled pass's layout, run eagerly: three rows padded to a batch of 4 (the last
    row repeated), cache and new lengths rounded up to buckets; each row's hidden states and
    cache are those of its own unpadded pass."""
    from guard.batch import CACHE_BUCKETS, NEW_BUCKETS, Row, bucket, pad_rows, run_padded

    backend = tiny_guard.backend
    prompts = [tiny_guard.render(c) for c in CONVERSATIONS[:3]]
    rows = []
    for prompt in prompts:
        prefix, rest = prompt_ids(backend.tokenizer, prompt)
        rows.append(Row(backend._prefix_cache(prompt.prefix, prefix), rest, (0,), len(rest)))
    padded = pad_rows(rows, backend.model.device, static=True, batch_to=4)
    widest = max(r.cache.get_seq_length() for r in rows)
    assert padded.input_ids.shape == (4, bucket(max(len(r.ids) for r in rows), NEW_BUCKETS))
    assert padded.width == bucket(widest, CACHE_BUCKETS) >= widest
    static = run_padded(backend._eager_padded, rows, backend.model.device, static=True, max_batch=4)
    alone = [run_padded(backend._eager_padded, [row], backend.model.device)[0] for row in rows]
    for (hidden, cache), (hidden_alone, cache_alone), row in zip(static, alone, rows):
        assert (hidden - hidden_alone).abs().max().item() < ATOL
        assert cache.get_seq_length() == cache_alone.get_seq_length() == row.cache.get_seq_length() + len(row.ids)
        assert (cache.layers[-1].keys - cache_alone.layers[-1].keys).abs().max().item() < ATOL
