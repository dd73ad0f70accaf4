"""python -m chat: stream one reply to stdout (no guard: this is the bare chat model).

Its own settings surface: flags, and the variables it reads here (the same names as the
app's, which `moderation.settings` reads for `python app.py`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from chat import ChatError, GenerationSettings, load_chat
from weights import CONTEXT_WINDOW, LoadOptions, ModelLoadError
from weights.offline import cache_dir

DEFAULTS = GenerationSettings()  # the same defaults as the app's (moderation.schema reads them from here)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m chat",
        description="Stream a reply from the chat model to stdout, as it is generated.",
        epilog="MODEL: a hub id (meta-llama/Meta-Llama-3-8B-Instruct; gated: set HF_TOKEN), a local folder, "
        "a .gguf file, 'offline' (bundled SmolLM2-135M-Instruct), or an http(s):// OpenAI-compatible "
        "endpoint (key from OPENAI_API_KEY or HF_TOKEN; the model it is asked for from CHAT_MODEL_NAME, "
        "default the first it lists). The bundled model is converted once into MODEL_CACHE_DIR (default "
        "$XDG_CACHE_HOME/moderated-llama3-chat, else ~/.cache/moderated-llama3-chat).",
    )
    p.add_argument("message", metavar="MESSAGE", help="the user message")
    p.add_argument(
        "--model",
        metavar="MODEL",
        default=os.environ.get("CHAT_MODEL", "offline"),
        help="chat model, see below (default: $CHAT_MODEL or offline)",
    )
    p.add_argument(
        "--context-window",
        metavar="N",
        type=int,
        default=os.environ.get("CHAT_CONTEXT_WINDOW", CONTEXT_WINDOW),
        help=f"tokens an endpoint reads, prompt and reply together (default: $CHAT_CONTEXT_WINDOW or "
        f"{CONTEXT_WINDOW}); a local model's config says its own",
    )
    p.add_argument("--system", metavar="TEXT", default="", help="system prompt")
    p.add_argument(
        "--max-new-tokens",
        metavar="N",
        type=int,
        default=DEFAULTS.max_new_tokens,
        help=f"reply length limit (default: {DEFAULTS.max_new_tokens})",
    )
    p.add_argument(
        "--temperature",
        metavar="T",
        type=float,
        default=DEFAULTS.temperature,
        help=f"0 means greedy (default: {DEFAULTS.temperature})",
    )
    p.add_argument(
        "--top-p",
        metavar="P",
        type=float,
        default=DEFAULTS.top_p,
        help=f"nucleus sampling; 0 keeps only the most likely token (default: {DEFAULTS.top_p})",
    )
    p.add_argument("--repetition-penalty", metavar="R", type=float, default=1.0, help="1.0 means none (default: 1.0)")
    p.add_argument("--seed", metavar="SEED", type=int, default=None, help="sampling seed (repeatable replies)")
    p.add_argument("--load-in-4bit", action="store_true", help="bitsandbytes 4-bit (needs CUDA)")
    p.add_argument("--load-in-8bit", action="store_true", help="bitsandbytes 8-bit (needs CUDA)")
    p.add_argument("-q", "--quiet", action="store_true", help="no loading messages on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    a = p.parse_args(argv)
    if not a.message.strip():
        p.error("the message is empty")
    if a.max_new_tokens < 1 or a.temperature < 0 or not 0 <= a.top_p <= 1 or a.context_window < 1:
        p.error("--max-new-tokens and --context-window must be at least 1, --temperature at least 0, --top-p in [0, 1]")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    for name in ("weights", "chat"):  # what loads and how long it took; the reply alone goes to stdout
        logging.getLogger(name).setLevel(logging.WARNING if a.quiet else logging.INFO)

    messages = ([{"role": "system", "content": a.system}] if a.system else []) + [
        {"role": "user", "content": a.message}
    ]
    settings = GenerationSettings(
        temperature=a.temperature,
        top_p=a.top_p,
        max_new_tokens=a.max_new_tokens,
        repetition_penalty=a.repetition_penalty,
        seed=a.seed,
    )
    try:
        backend = load_chat(
            a.model,
            _load_options(a),
            api_key=_endpoint_key(),
            context_window=a.context_window,
            model_name=os.environ.get("CHAT_MODEL_NAME") or None,
        )
        for delta in backend.stream(messages, settings):
            sys.stdout.write(delta)
            sys.stdout.flush()
    except (ChatError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    sys.stdout.write("\n")
    return 0


def _endpoint_key() -> str | None:
    """An endpoint's key: OPENAI_API_KEY, else HF_TOKEN (Inference Endpoints)."""
    return os.environ.get("OPENAI_API_KEY") or os.environ.get("HF_TOKEN") or None


def _load_options(a: argparse.Namespace) -> LoadOptions:
    """Quantization from the flags; the hub token and the offline model's cache from the variables."""
    return LoadOptions(
        load_in_4bit=a.load_in_4bit,
        load_in_8bit=a.load_in_8bit,
        token=os.environ.get("HF_TOKEN") or None,
        cache_dir=cache_dir(os.environ.get("MODEL_CACHE_DIR"), os.environ.get("XDG_CACHE_HOME")),
    )


if __name__ == "__main__":
    sys.exit(main())
