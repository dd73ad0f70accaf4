"""Choosing the attention kernels of a model on CUDA.

steady_attention(model)   # once per model, when it is loaded
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def steady_attention(model) -> None:
    """For a model on CUDA, turn off PyTorch's cuDNN attention (process-wide; SDPA then
    uses its flash or memory-efficient kernels).

    Why: the cuDNN backend builds an execution graph for every new sequence length and
    caches it per thread, so a decoding step at a length the thread has not seen before
    spent 1.5 ms per attention call in it, against 37 us once cached (H100, Llama 3 8B
    shape, torch 2.11: `bench/gpu.py --sections profile`). Every reply and every guard
    check grows the length by one token at a time, on threads that are new or have not
    seen that length, so generation ran at a third of its speed."""
    import torch  # heavy: only with a loaded model (this module is imported with chat and guard)

    device = getattr(model, "device", None)
    if getattr(device, "type", None) == "cuda" and torch.backends.cuda.cudnn_sdp_enabled():
        torch.backends.cuda.enable_cudnn_sdp(False)
        log.info("cuDNN attention turned off: SDPA uses its flash or memory-efficient kernels")
