"""`load_chat(spec)`: a chat backend from a hub id, folder, .gguf file, 'offline' or URL."""

from __future__ import annotations

from collections.abc import Callable

from chat.backend import ChatBackend, ChatError
from chat.local import LocalChat
from chat.remote import RemoteChat
from weights import CONTEXT_WINDOW, LoadOptions, load_causal_lm, offline_chat_model
from weights.offline import OFFLINE_LABEL
from weights.spec import ENDPOINT, OFFLINE, model_spec


def load_chat(
    spec: str = "offline",
    options: LoadOptions | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    model_name: str | None = None,
    context_window: int = CONTEXT_WINDOW,
    timeout_s: float = 60.0,
    compile: str = "off",
    progress: Callable[[str], None] = lambda _: None,
) -> ChatBackend:
    """Load the chat backend `spec` names.

    'offline'          the bundled SmolLM2-135M-Instruct (converted once from its GGUF into
                       options.cache_dir)
    'http(s)://...'    an OpenAI-compatible endpoint serving one model: `model_name` (default:
                       the first it lists), reading `context_window` tokens, sent `api_key`
    anything else      a hub id, a local folder or a .gguf file, loaded with transformers
                       (options.token for the hub); with base_url, the model of that name
                       behind the endpoint instead

    load_chat("meta-llama/Meta-Llama-3-8B-Instruct", base_url="http://tgi:8080")  # remote

    A local model decodes compiled as `compile` says (auto, on, off: LocalChat.compile),
    compiled and warmed up before this returns; `progress` hears what it does meanwhile.

    Raises weights.ModelLoadError when a local model cannot load, ChatError when an
    endpoint cannot be reached; both messages say what to do.
    """
    named = model_spec(spec)
    if not named.text and not base_url:
        raise ChatError("No chat model given.")
    remote = dict(key=api_key, timeout_s=timeout_s, context_window=context_window)
    if base_url:
        model = None if named.text in ("", OFFLINE) else named.text
        return RemoteChat(base_url, model=model, **remote)
    if named.kind == ENDPOINT:
        return RemoteChat(named.text, model=model_name, **remote)
    options = options or LoadOptions()
    offline = named.kind == OFFLINE
    model, tokenizer = load_causal_lm(str(offline_chat_model(options.cache_dir)) if offline else named.text, options)
    chat = LocalChat(model, tokenizer, OFFLINE_LABEL if offline else named.text)
    try:
        chat.compile(compile, progress)
    except BaseException:
        chat.close()
        raise
    return chat
