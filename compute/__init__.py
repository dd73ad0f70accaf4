"""How the local models run on this machine's processors, shared by the chat and guard
packages (weights/ loads the models; this package runs them side by side):

    compute.prepare(model)        once per loaded model: both of the below
    compute.cpu                   the CPU's cores split between a reply being generated and
                                  the guard checks beside it (cpu.share, cpu.running)
    compute.steady_attention      on CUDA, attention kernels that do not slow down per thread

Nothing here imports torch until a model is given to it.
"""

from compute import cpu
from compute.cuda import steady_attention

__all__ = ["prepare", "steady_attention"]


def prepare(model) -> None:
    """Ready a loaded model to run beside the others: on CUDA, attention kernels that keep
    their speed on any thread; on a CPU, layers that split the cores with a computation
    running beside (compute.cpu)."""
    steady_attention(model)
    cpu.share(model)
