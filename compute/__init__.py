"""How the local models run on this machine's processors, shared by the chat and guard
packages (weights/ loads the models; this package runs them side by side):

    compute.cpu                   the CPU's cores split between a reply being generated and
                                  the guard checks beside it (cpu.share, cpu.running)
    compute.steady_attention      on CUDA, attention kernels that do not slow down per thread

Nothing here imports torch until a model is given to it.
"""

from compute.cuda import steady_attention

__all__ = ["steady_attention"]
