"""What a model spec names, decided in one place for the chat side, the guard side and
the app:

    model_spec("offline")                          -> OFFLINE   (the bundled model of that side)
    model_spec("http://127.0.0.1:8080/v1")         -> ENDPOINT  (an OpenAI-compatible server)
    model_spec("./Llama-Guard-3-8B-Q8_0.gguf")     -> GGUF      (a file transformers reads)
    model_spec("./my-model")                       -> FOLDER    (a transformers folder)
    model_spec("meta-llama/Meta-Llama-3-8B-Instruct") -> HUB    (a Hugging Face Hub id)

`pretrained_source` turns the three local kinds into what `from_pretrained` takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from weights.errors import ModelLoadError

OFFLINE, ENDPOINT, GGUF, FOLDER, HUB = "offline", "endpoint", "gguf", "folder", "hub"


@dataclass(frozen=True)
class ModelSpec:
    text: str  # as given, stripped
    kind: str  # OFFLINE | ENDPOINT | GGUF | FOLDER | HUB

    @property
    def path(self) -> Path:
        return Path(self.text).expanduser()


def model_spec(spec: str | None) -> ModelSpec:
    """The kind of model `spec` names (see the module docstring). A path-like spec that
    does not exist is a FOLDER (loading it says it is missing), not a hub id."""
    text = (spec or "").strip()
    if text == OFFLINE:
        return ModelSpec(text, OFFLINE)
    if text.startswith(("http://", "https://")):
        return ModelSpec(text, ENDPOINT)
    if text.lower().endswith(".gguf"):
        return ModelSpec(text, GGUF)
    if Path(text).expanduser().exists() or text.startswith((".", "/", "~")) or text.count("/") > 1:
        return ModelSpec(text, FOLDER)
    return ModelSpec(text, HUB)


def pretrained_source(spec: ModelSpec) -> tuple[str, dict]:
    """(pretrained_model_name_or_path, extra from_pretrained kwargs) for a GGUF file, a
    folder or a hub id; ModelLoadError when the file or folder is not there."""
    path = spec.path
    if spec.kind == GGUF:
        if not path.is_file():
            raise ModelLoadError(f"GGUF file not found: {path}")
        return str(path.parent), {"gguf_file": path.name}
    if spec.kind == FOLDER:
        if not path.exists():
            raise ModelLoadError(f"Model folder not found: {path}")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is not a model folder: it has no config.json.")
        return str(path), {}
    if spec.kind == HUB:
        return spec.text, {}
    raise ValueError(f"{spec.text!r} is not a local or hub model")
