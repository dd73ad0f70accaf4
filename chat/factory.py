"""`load_chat(spec)`: a chat backend from a hub id, folder, .gguf file, 'offline' or URL."""

from __future__ import annotations

from chat.backend import ChatBackend, ChatError
from chat.local import LocalChat
from chat.remote import RemoteChat
from weights import LoadOptions, load_causal_lm, offline_chat_model
from weights.offline import OFFLINE_LABEL
from weights.spec import ENDPOINT, OFFLINE, model_spec


def load_chat(spec: str = "offline", options=None, *, base_url: str | None = None, api_key: str | None = None,
              timeout_s: float = 60.0) -> ChatBackend:
    """Load the chat backend `spec` names.

    'offline'          the bundled SmolLM2-135M-Instruct (converted once from its GGUF)
    'http(s)://...'    an OpenAI-compatible endpoint serving one model (key: api_key,
                       else OPENAI_API_KEY, else HF_TOKEN)
    anything else      a hub id, a local folder or a .gguf file, loaded with transformers;
                       with base_url, the model of that name behind the endpoint instead

    load_chat("meta-llama/Meta-Llama-3-8B-Instruct", base_url="http://tgi:8080")  # remote

    Raises weights.ModelLoadError when a local model cannot load, ChatError when an
    endpoint cannot be reached; both messages say what to do.
    """
    named = model_spec(spec)
    if not named.text and not base_url:
        raise ChatError("No chat model given.")
    if base_url:
        model = None if named.text in ("", OFFLINE) else named.text
        return RemoteChat(base_url, key=api_key, model=model, timeout_s=timeout_s)
    if named.kind == ENDPOINT:
        return RemoteChat(named.text, key=api_key, timeout_s=timeout_s)
    offline = named.kind == OFFLINE
    model, tokenizer = load_causal_lm(str(offline_chat_model()) if offline else named.text, options or LoadOptions())
    return LocalChat(model, tokenizer, OFFLINE_LABEL if offline else named.text)
