"""Hugging Face Spaces: on ZeroGPU hardware, GPU work must run inside `spaces.GPU`.

`gpu_runner(seconds)` is a decorator that applies it when the app runs on ZeroGPU (the
settings read SPACES_ZERO_GPU and ZERO_GPU_DURATION into `AppConfig.zero_gpu_seconds`)
and returns the function unchanged everywhere else (`seconds` None), so the `spaces`
package is only imported where it exists and matters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def gpu_runner(seconds: int | None) -> Callable[[F], F]:
    if seconds is None:
        return lambda fn: fn
    import spaces  # installed on every Space

    return spaces.GPU(duration=seconds)
