"""The chat side: stream Llama 3 Instruct replies (local transformers or a remote
endpoint). No Gradio and no knowledge of the guard here.

Importing `chat` is cheap: torch and transformers load only with a local model.
"""

from chat.backend import ChatBackend, ChatError, ContextTooLong, Fitted, GenerationSettings
from chat.factory import load_chat

__all__ = ["ChatBackend", "ChatError", "ContextTooLong", "Fitted", "GenerationSettings", "load_chat"]
