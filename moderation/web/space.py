"""Hugging Face Spaces: on ZeroGPU hardware, GPU work must run inside `spaces.GPU`.

`gpu(fn)` applies that decorator when the app runs on ZeroGPU (the Space sets
SPACES_ZERO_GPU) and returns `fn` unchanged everywhere else, so the `spaces` package is
only imported where it exists and matters.
"""

from __future__ import annotations

import os
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)
GPU_SECONDS = int(os.environ.get("ZERO_GPU_DURATION", "120"))


def on_zero_gpu() -> bool:
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in {"1", "true"}


def gpu(fn: F) -> F:
    if not on_zero_gpu():
        return fn
    import spaces  # installed on every Space

    return spaces.GPU(duration=GPU_SECONDS)(fn)
