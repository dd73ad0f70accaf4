"""`load_guard(spec)`: a guard from a hub id, folder, .gguf file, endpoint URL, or 'offline'."""

from __future__ import annotations

from guard.prompt import GUARD2, GUARD3


def detect_version(*names: str) -> str:
    """'llama-guard-3' when a name says Guard 3 ("Llama-Guard-3-8B"), else 'llama-guard-2'."""
    joined = " ".join(n for n in names if n).lower().replace("_", "-")
    return GUARD3 if "guard-3" in joined or "guard3" in joined else GUARD2


def describe(version: str, spec: str) -> str:
    name = "Llama Guard 3" if version == GUARD3 else "Llama Guard 2"
    label = f"{name} · {spec}"
    if "guard" not in spec.lower():
        label += " (not a known Llama Guard checkpoint: its verdicts may mean little)"
    return label


def load_guard(spec: str = "offline", *, version: str | None = None, load_in_4bit: bool = False,
               load_in_8bit: bool = False, dtype: str = "auto", device_map: str | None = None,
               api_key: str | None = None, timeout_s: float = 60.0, reuse_prefix: bool = True):
    """Load the guard `spec` names (see the module docstring); raises weights.ModelLoadError
    or ValueError with a message that says what to do."""
    spec = (spec or "").strip()
    if version not in (None, GUARD2, GUARD3):
        raise ValueError(f"unknown guard version {version!r}: use {GUARD2} or {GUARD3}")
    if spec == "offline":
        from guard.offline import OfflineGuard

        return OfflineGuard.load()
    from guard.llama_guard import LlamaGuard

    if spec.startswith(("http://", "https://")):
        from guard.remote import RemoteGuardModel

        backend = RemoteGuardModel(spec, key=api_key, timeout_s=timeout_s)
        version = version or detect_version(backend.model)
        return LlamaGuard(backend, version, describe(version, f"{backend.model} @ {backend.url}"), timeout_s)
    from guard.local import LocalGuardModel
    from weights import LoadOptions, load_causal_lm

    model, tokenizer = load_causal_lm(spec, LoadOptions(dtype=dtype, device_map=device_map,
                                                        load_in_4bit=load_in_4bit, load_in_8bit=load_in_8bit))
    version = version or detect_version(spec, getattr(model.config, "_name_or_path", ""))
    return LlamaGuard(LocalGuardModel(model, tokenizer, reuse_prefix), version, describe(version, spec), timeout_s)
