"""`load_chat(spec)`: a chat backend from a hub id, folder, .gguf file, 'offline' or URL."""

from __future__ import annotations

from chat.backend import ChatError


def load_chat(spec: str = "offline", options=None, *, api_key: str | None = None, timeout_s: float = 60.0):
    """Load the chat backend `spec` names.

    'offline'          the bundled SmolLM2-135M-Instruct (converted once from its GGUF)
    'http(s)://...'    an OpenAI-compatible endpoint (key: api_key, OPENAI_API_KEY or HF_TOKEN)
    anything else      a hub id, a local folder or a .gguf file, loaded with transformers
    """
    spec = (spec or "").strip()
    if not spec:
        raise ChatError("No chat model given.")
    if spec.startswith(("http://", "https://")):
        from chat.remote import RemoteChat

        return RemoteChat(spec, key=api_key, timeout_s=timeout_s)
    from chat.local import LocalChat
    from weights import LoadOptions, load_causal_lm, offline_chat_model
    from weights.offline import OFFLINE_LABEL

    offline = spec == "offline"
    model, tokenizer = load_causal_lm(str(offline_chat_model()) if offline else spec, options or LoadOptions())
    return LocalChat(model, tokenizer, OFFLINE_LABEL if offline else spec, is_offline_default=offline)
