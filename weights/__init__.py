"""Loading causal language models, shared by the chat and guard packages.

    model, tokenizer = load_causal_lm("meta-llama/Meta-Llama-Guard-2-8B", LoadOptions(load_in_4bit=True))

`spec` is a hub id, a local folder, or a `.gguf` file. Failures become a `ModelLoadError`
whose message says what to do (accept the license on the model page, set HF_TOKEN,
use a local folder or `offline`). Nothing is imported or loaded until called, and nothing
here reads the environment: the hub token and the cache folder arrive in `LoadOptions`
(from `moderation.settings`, or `python -m chat` / `python -m guard`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from weights.errors import ModelLoadError
from weights.offline import offline_chat_model
from weights.spec import model_spec, pretrained_source

__all__ = [
    "CONTEXT_WINDOW",
    "DTYPES",
    "LoadOptions",
    "ModelLoadError",
    "context_window",
    "explain_load_error",
    "load_causal_lm",
    "load_tokenizer",
    "offline_chat_model",
    "resolve_dtype",
]

log = logging.getLogger(__name__)
DTYPES = ("auto", "bfloat16", "float16", "float32")
# Llama 3 and Llama Guard 2 and 3 read 8,192 tokens: the window of a model that does not
# say its own (an endpoint that lists none, a config without max_position_embeddings).
CONTEXT_WINDOW = 8192


def context_window(config) -> int:
    """The tokens a loaded model reads, prompt and reply together: its config's
    max_position_embeddings, else CONTEXT_WINDOW."""
    return int(getattr(config, "max_position_embeddings", 0) or CONTEXT_WINDOW)


@dataclass(frozen=True)
class LoadOptions:
    dtype: str = "auto"  # auto: bfloat16 on CUDA, float32 on CPU
    device_map: str | None = None  # None: "auto" with CUDA (accelerate), else CPU
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    token: str | None = None  # the Hugging Face token; None: the hub client's own (HF_TOKEN, or `hf auth login`)
    cache_dir: Path | None = None  # where the bundled offline chat model is converted to; None: weights.offline's


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_dtype(name: str):
    import torch

    if name not in DTYPES:
        raise ModelLoadError(f"Unknown dtype {name!r}: choose one of {', '.join(DTYPES)}.")
    if name == "auto":
        return torch.bfloat16 if _cuda() else torch.float32
    return getattr(torch, name)


def quantization_config(options: LoadOptions):
    """A BitsAndBytesConfig for 4-bit (nf4, bf16 compute) or 8-bit loading, or None."""
    if not (options.load_in_4bit or options.load_in_8bit):
        return None
    if options.load_in_4bit and options.load_in_8bit:
        raise ModelLoadError("Choose one of 4-bit and 8-bit loading, not both.")
    bits = 4 if options.load_in_4bit else 8
    if not _cuda():
        raise ModelLoadError(
            f"{bits}-bit loading uses bitsandbytes, which needs a CUDA GPU, and none "
            "was found. Drop --load-in-4bit/--load-in-8bit, or run on a machine with a GPU."
        )
    try:
        import bitsandbytes  # noqa: F401
        import torch
        from transformers import BitsAndBytesConfig
    except ImportError as exc:
        raise ModelLoadError(f"{bits}-bit loading needs bitsandbytes: pip install bitsandbytes ({exc})") from exc
    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )


def explain_load_error(spec: str, exc: Exception, has_token: bool = False) -> str:
    """Turn a hub or file error into what a person should do about it.

    explain_load_error("meta-llama/Meta-Llama-3-8B-Instruct", OSError("...gated repo..."))
    -> "meta-llama/Meta-Llama-3-8B-Instruct is a gated model. Accept its license on
        https://huggingface.co/meta-llama/Meta-Llama-3-8B-Instruct ... set HF_TOKEN=<token> ..."
    """
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    page = f"https://huggingface.co/{spec}"
    get_token = "create a token at https://huggingface.co/settings/tokens and set HF_TOKEN=<token>"
    if "gated" in lowered or "awaiting a review" in lowered or "restricted" in lowered:
        then = (
            "A token is set (HF_TOKEN or `hf auth login`): check that it belongs to the account that "
            "accepted the license and that access was granted (the model page says so)."
            if has_token
            else f"HF_TOKEN is not set: {get_token} before starting."
        )
        return f"{spec} is a gated model. Accept its license on {page} while logged in. {then}"
    if "401" in lowered or "invalid" in lowered and "token" in lowered:
        return (
            f"Hugging Face refused the request for {spec}: the token was rejected. "
            f"{get_token[0].upper() + get_token[1:]} after accepting the license on {page}."
        )
    if "couldn't connect" in lowered or "offline" in lowered or "connection" in lowered:
        return (
            f"Could not download {spec}: the Hugging Face Hub is unreachable from here and the model "
            "is not in the local cache. Download it where you have access (hf download "
            f"{spec}), pass a local folder or .gguf file, or use the bundled models with 'offline'."
        )
    if "not a valid model identifier" in lowered or "repository not found" in lowered or "404" in lowered:
        hint = "" if has_token else f" Gated and private models also answer 'not found' without a token: {get_token}."
        return (
            f"{spec!r} is neither a local folder, a .gguf file, nor a model on the Hugging Face Hub. "
            f"Check the spelling.{hint}"
        )
    return f"Loading {spec} failed: {text}"


def has_token(token: str | None) -> bool:
    """Whether a hub request carries a token: the one given, else the hub client's own
    (huggingface_hub reads HF_TOKEN and the saved login itself)."""
    if token:
        return True
    from huggingface_hub import get_token

    return get_token() is not None


def load_tokenizer(spec: str, options: LoadOptions = LoadOptions()):
    """Only the tokenizer of a hub id, folder or .gguf file (for printing prompts and ids)."""
    from transformers import AutoTokenizer  # heavy: only when a local model is loaded

    source, extra = pretrained_source(model_spec(spec))
    try:
        return AutoTokenizer.from_pretrained(source, token=options.token, **extra)
    except Exception as exc:  # noqa: BLE001 - a message that says what to do, not a traceback
        raise ModelLoadError(explain_load_error(spec, exc, has_token=has_token(options.token))) from exc


def load_causal_lm(spec: str, options: LoadOptions = LoadOptions()):
    """Load (model, tokenizer) for generation, in eval mode."""
    from transformers import AutoModelForCausalLM

    source, extra = pretrained_source(model_spec(spec))
    kwargs = dict(extra, token=options.token, dtype=resolve_dtype(options.dtype))
    quant = quantization_config(options)
    if quant is not None:
        kwargs["quantization_config"] = quant
    device_map = options.device_map or ("auto" if _cuda() else None)
    if device_map:
        kwargs["device_map"] = device_map
    started = time.monotonic()
    log.info("loading %s (%s)", spec, ", ".join(f"{k}={v}" for k, v in kwargs.items() if k != "token"))
    tokenizer = load_tokenizer(spec, options)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except Exception as exc:  # hub, file and format errors alike: say what to do, not a traceback
        raise ModelLoadError(explain_load_error(spec, exc, has_token=has_token(options.token))) from exc
    model.eval()
    log.info("loaded %s in %.1f s", spec, time.monotonic() - started)
    return model, tokenizer
