"""Judging conversations with Llama Guard (or the offline classifier), with no Gradio
and no knowledge of the chat model. Importing `guard` is cheap: torch and transformers
load only when a local model does (`load_guard` itself is imported on first use).

    from guard import load_guard
    guard = load_guard("meta-llama/Meta-Llama-Guard-2-8B")
    guard.check([{"role": "user", "content": "..."}]).to_dict()
"""

from guard.policy import Policy
from guard.taxonomy import LLAMA_GUARD_2, LLAMA_GUARD_3, Category
from guard.verdict import Verdict

__all__ = ["LLAMA_GUARD_2", "LLAMA_GUARD_3", "Category", "Policy", "Verdict", "load_guard"]


def __getattr__(name: str):
    if name == "load_guard":
        from guard.factory import load_guard

        return load_guard
    raise AttributeError(f"module 'guard' has no attribute {name!r}")
