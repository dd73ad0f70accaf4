"""Judging conversations with Llama Guard (or the offline classifier), with no Gradio
and no knowledge of the chat model. Importing `guard` is cheap: torch and transformers
load only when a local model does.

    from guard import load_guard
    guard = load_guard("meta-llama/Meta-Llama-Guard-2-8B")
    guard.check([{"role": "user", "content": "..."}]).to_dict()
"""

from guard.base import Guard
from guard.factory import load_guard
from guard.policy import Policy
from guard.taxonomy import LLAMA_GUARD_2, LLAMA_GUARD_3, Category
from guard.verdict import Verdict

__all__ = ["LLAMA_GUARD_2", "LLAMA_GUARD_3", "Category", "Guard", "Policy", "Verdict", "load_guard"]
