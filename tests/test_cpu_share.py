"""The processor's cores split between a reply and a guard check beside it (compute.cpu),
on the real local backends with tiny random Llama models.

Each test pretends the process has 4 cores, so the split (2 and 2) differs from the whole
on any machine; a recorder hook after the share's own hooks reads the thread count each
layer really runs with."""

from __future__ import annotations

import threading

import pytest

from chat import GenerationSettings, load_chat
from compute import cpu
from guard import load_guard

CORES = 4
GREETING = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def four_cores(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setattr(cpu, "_cores", CORES)
    monkeypatch.setattr(cpu, "enabled", True)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def guard(tiny_guard_path):
    return load_guard(str(tiny_guard_path), dtype="float32")


@pytest.fixture(scope="module")
def chat(tiny_chat_path):
    return load_chat(str(tiny_chat_path))


def record_threads(model) -> list[int]:
    """The torch thread count at each layer `model` runs from now on, in any thread."""
    import torch

    seen: list[int] = []
    for layer in cpu._layers(model):
        layer.register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
    return seen


def test_a_check_beside_a_generation_runs_on_half_the_cores(guard, chat, four_cores):
    import torch

    seen = record_threads(guard.backend.model)
    guard.check(GREETING, threshold=1.0)
    alone, seen[:] = list(seen), []
    with cpu.running(chat.model):  # a reply being generated, as LocalChat.stream counts it
        guard.session().check(GREETING, threshold=1.0)
    beside = list(seen)
    assert alone and set(alone) == {CORES}
    assert beside and set(beside) == {CORES // 2}
    assert torch.get_num_threads() == CORES  # the thread has all cores back


def test_a_generation_gives_up_half_the_cores_while_a_check_runs(guard, chat, four_cores):
    seen = record_threads(chat.model)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=3)
    "".join(chat.stream(GREETING, settings))
    alone, seen[:] = list(seen), []
    with cpu.running(guard.backend.model):  # a check in progress
        "".join(chat.stream(GREETING, settings))
    beside = list(seen)
    assert alone and set(alone) == {CORES}
    assert beside and set(beside) == {CORES // 2}


def test_counts_follow_what_runs_and_a_new_thread_starts_with_all_cores(chat, four_cores):
    import torch

    assert cpu.threads_now() == CORES
    with cpu.running(chat.model):
        assert cpu.threads_now() == CORES
        with cpu.running(chat.model), cpu.running(chat.model):
            assert cpu.threads_now() == CORES // 3
    assert cpu.threads_now() == CORES
    counts: list[int] = []
    worker = threading.Thread(target=lambda: counts.append(torch.get_num_threads()))
    worker.start()
    worker.join()
    assert counts == [CORES]


def test_switched_off_every_computation_takes_all_cores(chat, four_cores, monkeypatch):
    monkeypatch.setattr(cpu, "enabled", False)
    with cpu.running(chat.model), cpu.running(chat.model):
        assert cpu.threads_now() == CORES


def test_a_model_on_a_gpu_is_left_alone(four_cores):
    import torch

    class OnCuda(torch.nn.Module):  # only its device and layers are read
        device = torch.device("cuda", 0)

        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Identity()])

    model = OnCuda()
    cpu.share(model)
    assert not any(layer._forward_pre_hooks for layer in model.layers)
    with cpu.running(model), cpu.running(model):
        assert cpu.threads_now() == CORES
