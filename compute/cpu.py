"""Sharing the processor's cores between the computations that run at once: a reply
being generated and the guard checks beside it.

    cpu.share(model)              # once per model on the CPU: its layers follow the share
    with cpu.running(model):      # around a generation or a guard check
        model.generate(...)

Why: on a CPU, torch runs each operation on a team of `torch.get_num_threads()` threads,
all cores by default, and each operation ends at a barrier where the team waits for its
slowest thread. A check beside generation (the prompt check beside the prefill,
streaming checks beside decoding) brings a second full team: twice as many threads as
cores, each team waiting at every barrier for threads the other keeps off a core. Split
instead, the two use the cores without fighting for them (bench/turn.py measures it:
`share_cores_over_all_cores`).

The rule: while n computations run on the CPU, each uses cores // n threads (at least
one). It is applied before every layer of a shared model, so a generation gives up
threads within a layer of a check starting, and takes them back within a layer of its
end; which of the two started first does not matter. Models on a GPU are left alone
(their CPU work is launching kernels).

Torch's thread count belongs to each thread once that thread has computed (a new thread
starts from the last count set anywhere), so every layer sets its own.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

_lock = threading.Lock()
_running = 0  # computations on the CPU now
_cores: int | None = None  # torch's thread count when first asked: the process's setting
enabled = True  # False: every computation on all cores, as torch does by default (benchmarks)


def cores() -> int:
    """The threads one computation may use alone: torch's count at first use (all cores,
    or what OMP_NUM_THREADS / torch.set_num_threads chose before)."""
    global _cores
    if _cores is None:
        import torch  # heavy: loaded with a model, not with the package

        _cores = max(1, torch.get_num_threads())
    return _cores


def threads_now() -> int:
    """Threads for a computation's next layer: its share of the cores."""
    with _lock:
        running = _running
    return max(1, cores() // max(1, running)) if enabled else cores()


def on_cpu(model) -> bool:
    return getattr(getattr(model, "device", None), "type", "cpu") == "cpu"


def _layers(model):
    """The model's repeated blocks: its longest ModuleList (decoder or encoder layers)."""
    import torch  # heavy: loaded with a model, not with the package

    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    return max(lists, key=len) if lists else [model]


def _take_share(module, args) -> None:
    import torch  # heavy: loaded with a model, not with the package

    if torch.compiler.is_compiling():  # traced into a compiled step (chat.compiled): keep its count
        return
    want = threads_now()
    if torch.get_num_threads() != want:
        torch.set_num_threads(want)


def share(model) -> None:
    """Make each layer of `model` (on the CPU) run on its share of the cores."""
    cores()  # read the process's count before any share changes it
    if on_cpu(model) and not getattr(model, "_shares_cores", False):
        for layer in _layers(model):
            layer.register_forward_pre_hook(_take_share)
        model._shares_cores = True


@contextmanager
def running(model):
    """Count a computation of `model` (on the CPU) while it runs; on exit the thread gets
    all cores back for whatever it computes next."""
    global _running
    if not on_cpu(model):
        yield
        return
    with _lock:
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
        import torch  # heavy: loaded with a model, not with the package

        torch.set_num_threads(cores())
