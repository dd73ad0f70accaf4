"""`load_chat(spec)`: a chat backend from a hub id, folder, .gguf file, 'offline' or URL."""

from __future__ import annotations

from chat.backend import ChatError


def load_chat(spec: str = "offline", options=None, *, base_url: str | None = None, api_key: str | None = None,
              timeout_s: float = 60.0):
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
    spec = (spec or "").strip()
    if not spec and not base_url:
        raise ChatError("No chat model given.")
    if base_url or spec.startswith(("http://", "https://")):
        from chat.remote import RemoteChat

        if base_url:
            return RemoteChat(base_url, key=api_key, model=None if spec in ("", "offline") else spec, timeout_s=timeout_s)
        return RemoteChat(spec, key=api_key, timeout_s=timeout_s)
    from chat.local import LocalChat
    from weights import LoadOptions, load_causal_lm, offline_chat_model
    from weights.offline import OFFLINE_LABEL

    offline = spec == "offline"
    model, tokenizer = load_causal_lm(str(offline_chat_model()) if offline else spec, options or LoadOptions())
    return LocalChat(model, tokenizer, OFFLINE_LABEL if offline else spec, is_offline_default=offline)
