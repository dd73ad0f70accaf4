"""`load_guard(spec)`: a guard from a hub id, folder, .gguf file, endpoint URL, or 'offline'.

    load_guard("meta-llama/Meta-Llama-Guard-2-8B")        Llama Guard 2, local (transformers)
    load_guard("./Llama-Guard-3-8B-Q8_0.gguf")             Llama Guard 3 from a GGUF file
    load_guard("http://127.0.0.1:8080", api_key=...)       an OpenAI-compatible endpoint
    load_guard("offline")                                  the bundled offline classifier

The Llama Guard version (which prompt format and taxonomy) follows the model: its chat
template when it has one, else its name (hub id, folder, config, served model name);
`version=` overrides both. Llama-Guard-3-1B gets the S1-S13 taxonomy it was trained on.
"""

from __future__ import annotations

import re
from pathlib import Path

from guard.base import Guard
from guard.llama_guard import LlamaGuard
from guard.local import DEFAULT_BATCH_WAIT_S, LocalGuardModel, TokenizerOnly
from guard.offline import OfflineGuard
from guard.prompt import GUARD2, GUARD3, VERSIONS
from guard.remote import RemoteGuardModel
from guard.taxonomy import LLAMA_GUARD_3_1B, TAXONOMIES, Category
from weights import LoadOptions, ModelLoadError, load_causal_lm, load_tokenizer
from weights.spec import ENDPOINT, OFFLINE, model_spec


def detect_version(*names: str, chat_template: str | None = None) -> str:
    """The Llama Guard version from the model's chat template, else from its names.

    >>> detect_version("meta-llama/Llama-Guard-3-8B"), detect_version("./my-guard")
    ('llama-guard-3', 'llama-guard-2')
    """
    template = chat_template if isinstance(chat_template, str) else ""
    if "UNSAFE CONTENT CATEGORIES" in template:
        return GUARD3 if "<|start_header_id|>" in template else GUARD2
    joined = " ".join(n for n in names if n).lower().replace("_", "-")
    return GUARD3 if "guard-3" in joined or "guard3" in joined else GUARD2


def taxonomy_for(version: str, *names: str) -> tuple[Category, ...]:
    joined = " ".join(n for n in names if n).lower()
    if version == GUARD3 and re.search(r"(?<![0-9.])1b\b", joined):
        return LLAMA_GUARD_3_1B
    return TAXONOMIES[version]


def describe(version: str, spec: str) -> str:
    """The label the UI shows: "Llama Guard 2 · meta-llama/Meta-Llama-Guard-2-8B"."""
    name = "Llama Guard 3" if version == GUARD3 else "Llama Guard 2"
    label = f"{name} · {spec}"
    if "guard" not in spec.lower():
        label += " (not a known Llama Guard checkpoint: its verdicts may mean little)"
    return label


def _remote(spec: str, version: str | None, api_key: str | None, model_name: str | None, timeout_s: float):
    import openai  # imported with an endpoint only (it takes a while)

    try:
        backend = RemoteGuardModel(spec, key=api_key, model=model_name, timeout_s=timeout_s)
    except openai.AuthenticationError as exc:
        raise ModelLoadError(
            f"The guard endpoint {spec} refused the key ({exc}): set OPENAI_API_KEY "
            "(or HF_TOKEN for Inference Endpoints) to a key it accepts."
        ) from exc
    except openai.OpenAIError as exc:
        raise ModelLoadError(
            f"Could not ask the guard endpoint {spec} which model it serves ({exc}). Check the "
            "URL and that the server is running, or set GUARD_MODEL_NAME to the served model "
            "name."
        ) from exc
    version = version or detect_version(backend.model)
    return LlamaGuard(
        backend, version, describe(version, f"{backend.model} @ {backend.url}"), taxonomy_for(version, backend.model)
    )


def load_guard(
    spec: str = "offline",
    *,
    version: str | None = None,
    load_in_4bit: bool = False,
    load_in_8bit: bool = False,
    dtype: str = "auto",
    device_map: str | None = None,
    api_key: str | None = None,
    model_name: str | None = None,
    token: str | None = None,
    timeout_s: float = 60.0,
    reuse_prefix: bool = True,
    prompt_only: bool = False,
    compile: bool = False,
    batch: int | None = None,
    batch_wait_s: float = DEFAULT_BATCH_WAIT_S,
    cache_dir: Path | None = None,
) -> Guard:
    """Load the guard `spec` names (see the module docstring). Raises weights.ModelLoadError
    or ValueError with a message that says what to do.

    api_key, model_name: an endpoint's key and served model (default: the first it lists).
    token: the Hugging Face token for a hub model (default: the hub client's own).

    timeout_s: an endpoint's HTTP timeout for one request; it does not apply to local
    models. A check has no deadline of its own: the caller sets it (the moderated turn).
    prompt_only: load the tokenizer but not the weights (the guard can render and tokenize
    prompts; its checks fail closed).
    compile, batch, batch_wait_s: a local Llama Guard's compiled check and batched checks
    (guard.local: at most `batch` checks in one pass, each waiting up to `batch_wait_s` for
    the others; default 8 on a CUDA GPU, else 1); other guards ignore them.
    cache_dir: where the offline classifier's encoder folder is made (guard.encoders; default
    weights.offline.cache_dir())."""
    named = model_spec(spec)
    spec = named.text
    if version not in (None, *VERSIONS):
        raise ValueError(f"unknown guard version {version!r}: use {' or '.join(VERSIONS)}")
    if not spec:
        raise ValueError("no guard model given: a hub id, a folder, a .gguf file, an http(s):// URL or 'offline'")
    if named.kind == OFFLINE:
        return OfflineGuard.load(cache=cache_dir)
    if named.kind == ENDPOINT:
        return _remote(spec, version, api_key, model_name, timeout_s)
    options = LoadOptions(
        dtype=dtype, device_map=device_map, load_in_4bit=load_in_4bit, load_in_8bit=load_in_8bit, token=token
    )
    if prompt_only:
        tokenizer, name = load_tokenizer(spec, options), ""
        backend = TokenizerOnly(tokenizer)
    else:
        model, tokenizer = load_causal_lm(spec, options)
        name = getattr(model.config, "_name_or_path", "") or ""
        backend = LocalGuardModel(model, tokenizer, reuse_prefix, compile, batch, batch_wait_s)
    version = version or detect_version(spec, name, chat_template=getattr(tokenizer, "chat_template", None))
    guard = LlamaGuard(backend, version, describe(version, spec), taxonomy_for(version, spec, name))
    if getattr(backend, "compiled", False):
        warm_up(guard)
    return guard


def warm_up(guard: LlamaGuard) -> None:
    """One check while the guard loads, so that the first compile (guard.compiled) happens
    here and not in a visitor's first turn; raises ModelLoadError when it fails."""
    verdict = guard.check([{"role": "user", "content": "Hello"}], threshold=1.0)
    if verdict.failed:
        raise ModelLoadError(f"The compiled guard check failed while loading ({verdict.error}): run without compile.")
