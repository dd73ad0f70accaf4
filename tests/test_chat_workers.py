"""The kept generation threads (chat.workers): reused one call after another, one per
concurrent call, never lost to a job's error, a burst's extra threads end, and close()
ends them all."""

from __future__ import annotations

import threading
import time

import pytest
from thread_watch import named, still_alive

from chat.workers import GenerationThreads


def ran_on(workers: GenerationThreads, job=None) -> int:
    ident: list[int] = []

    def record():
        ident.append(threading.get_ident())
        if job:
            job()

    assert workers.run(record).wait(5)
    return ident[0]


def test_calls_one_after_another_reuse_one_thread():
    workers = GenerationThreads(name="test-gen")
    first = ran_on(workers)
    assert ran_on(workers) == first and ran_on(workers) == first
    assert workers.busy == 0
    assert [t.name for t in threading.enumerate()].count("test-gen") == 1


def test_concurrent_calls_run_on_threads_of_their_own_and_are_counted():
    workers = GenerationThreads(name="test-gen-concurrent", keep=2)
    gate, started, idents = threading.Event(), threading.Barrier(4, timeout=5), set()

    def job():
        idents.add(threading.get_ident())
        started.wait()  # all three jobs run at the same time, or this times out
        gate.wait(5)

    done = [workers.run(job) for _ in range(3)]
    started.wait()
    assert workers.busy == 3 and len(idents) == 3
    gate.set()
    assert all(d.wait(5) for d in done) and workers.busy == 0

    def alive() -> int:
        return [t.name for t in threading.enumerate()].count("test-gen-concurrent")

    for _ in range(100):  # the burst's third thread ends after its job; two are kept
        if alive() == 2:
            break
        time.sleep(0.01)
    assert alive() == 2


def test_a_job_that_raises_leaves_its_thread_for_the_next_call():
    workers = GenerationThreads(name="test-gen-error")

    def boom():
        raise RuntimeError("a failing generation")

    first = ran_on(workers, boom)
    assert workers.busy == 0 and ran_on(workers) == first


def test_close_ends_the_kept_threads_and_refuses_new_jobs():
    workers = GenerationThreads(name="test-gen-close", keep=2)
    gate, started = threading.Event(), threading.Barrier(3, timeout=5)

    def job():
        started.wait()
        gate.wait(5)

    done = [workers.run(job) for _ in range(2)]
    started.wait()
    threads = named("test-gen-close")
    assert len(threads) == 2
    gate.set()
    assert all(d.wait(5) for d in done)
    workers.close()
    assert still_alive(threads) == []
    with pytest.raises(RuntimeError, match="closed"):
        workers.run(lambda: None)


def test_close_lets_a_running_job_finish_then_its_thread_ends():
    workers = GenerationThreads(name="test-gen-close-busy")
    gate = threading.Event()
    done = workers.run(lambda: gate.wait(5))
    threads = named("test-gen-close-busy")
    workers.close()
    assert not done.is_set()  # close does not cut a generation short
    gate.set()
    assert done.wait(5) and still_alive(threads) == []
