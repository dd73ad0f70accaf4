"""Command-line flags of `python app.py`, each with an environment variable.

A flag wins over its variable; the variable wins over the default. Defaults pick the
real models (Llama 3 8B Instruct + Llama Guard 2 8B) when a CUDA GPU is present, and
the bundled offline models otherwise.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

LLAMA3_INSTRUCT = "meta-llama/Meta-Llama-3-8B-Instruct"
LLAMA_GUARD_2 = "meta-llama/Meta-Llama-Guard-2-8B"
OFFLINE = "offline"
DEFAULT_LOG_DB = "moderation-log.sqlite3"  # in the working directory
LOG_TEXT_POLICIES = ("all", "flagged", "none")


@dataclass(frozen=True)
class AppConfig:
    chat_model: str
    guard_model: str
    guard_version: str | None = None
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    host: str | None = None
    port: int | None = None
    share: bool = False
    auth: tuple[str, str] | None = None
    concurrency: int = 2
    max_queue: int = 64
    threshold: float = 0.5
    check_every: int = 16
    stream_policy: str = "stream-first"
    system_prompt: str = ""
    log_db: str | None = None  # SQLite path or database URL; None: no moderation log
    log_text: str = "flagged"  # which turns keep their text in the log: all / flagged / none
    log_retention_days: float | None = None  # None: keep forever
    operator: tuple[str, str] | None = None  # login of the review page; None: no review page
    metrics: bool = False  # serve Prometheus metrics at /metrics


def has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _login(flag: str):
    def parse(value: str | None) -> tuple[str, str] | None:
        if not value:
            return None
        user, sep, password = value.partition(":")
        if not sep or not user or not password:
            raise argparse.ArgumentTypeError(f"{flag} takes user:password")
        return user, password
    return parse


_auth = _login("--auth")


def _days(value: str) -> float | None:
    if value is None or not str(value).strip():
        return None
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {value!r}") from None
    if not days > 0 or days == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of days")
    return days


def default_log_text(host: str | None, share: bool) -> str:
    """Text is kept for every turn only when the page is private to this machine.

    >>> default_log_text(None, False), default_log_text("0.0.0.0", False), default_log_text(None, True)
    ('all', 'flagged', 'flagged')
    """
    local = (host or "127.0.0.1") in {"127.0.0.1", "localhost", "::1"}
    return "all" if local and not share and not os.environ.get("SPACE_ID") else "flagged"


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="python app.py",
        description="Moderated Llama 3 chat: Llama Guard judges every prompt and every reply, "
                    "also while the reply streams.",
        epilog="MODEL may be a hub id, a local folder, a .gguf file, 'offline' (the bundled "
               "small models, no GPU or hub access needed) or an http(s):// OpenAI-compatible "
               "endpoint (TGI, vLLM, Inference Endpoints; key from OPENAI_API_KEY or HF_TOKEN). "
               "Gated meta-llama models need HF_TOKEN and the license accepted on the model page.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--chat-model", default=env("CHAT_MODEL"), metavar="MODEL",
                   help="chat model [CHAT_MODEL]; default: Llama 3 8B Instruct with a CUDA GPU, else offline")
    p.add_argument("--guard-model", default=env("GUARD_MODEL"), metavar="MODEL",
                   help="guard model [GUARD_MODEL]; default: Llama Guard 2 8B with a CUDA GPU, else offline")
    p.add_argument("--guard-version", default=env("GUARD_VERSION"), choices=["llama-guard-2", "llama-guard-3"],
                   help="taxonomy and prompt format of the guard [GUARD_VERSION]; default: from the model")
    p.add_argument("--load-in-4bit", action="store_true", default=_env_flag("LOAD_IN_4BIT"),
                   help="load local models in 4 bits with bitsandbytes; needs CUDA [LOAD_IN_4BIT]")
    p.add_argument("--load-in-8bit", action="store_true", default=_env_flag("LOAD_IN_8BIT"),
                   help="load local models in 8 bits with bitsandbytes; needs CUDA [LOAD_IN_8BIT]")
    p.add_argument("--host", default=env("HOST"),
                   help="address to listen on [HOST]; default 127.0.0.1 (0.0.0.0 on a Space)")
    p.add_argument("--port", type=int, default=int(env("PORT")) if env("PORT") else None,
                   help="port [PORT]; default 7860, or the next free one")
    p.add_argument("--share", action="store_true", default=_env_flag("SHARE"),
                   help="also open a public gradio.live link [SHARE]")
    p.add_argument("--auth", type=_auth, default=_auth(env("AUTH")), metavar="USER:PASSWORD",
                   help="require this login [AUTH]")
    p.add_argument("--concurrency", type=int, default=int(env("CONCURRENCY", "2")),
                   help="turns processed at once [CONCURRENCY]")
    p.add_argument("--max-queue", type=int, default=int(env("MAX_QUEUE", "64")),
                   help="waiting requests before new ones are turned away [MAX_QUEUE]")
    p.add_argument("--threshold", type=float, default=float(env("THRESHOLD", "0.5")),
                   help="initial unsafe-probability threshold [THRESHOLD]")
    p.add_argument("--check-every", type=int, default=int(env("CHECK_EVERY", "16")),
                   help="judge the partial reply every N streamed tokens; 0: only at the end [CHECK_EVERY]")
    p.add_argument("--stream-policy", choices=["stream-first", "hold"], default=env("STREAM_POLICY", "stream-first"),
                   help="stream-first shows text at once and retracts it if flagged; hold shows "
                        "each chunk only after a check covers it [STREAM_POLICY]")
    p.add_argument("--system-prompt", default=env("SYSTEM_PROMPT", ""), help="initial system prompt [SYSTEM_PROMPT]")
    log = p.add_argument_group("moderation log, review page and metrics")
    log.add_argument("--log-db", default=env("LOG_DB", DEFAULT_LOG_DB), metavar="PATH|URL|none",
                     help="where every turn and verdict is logged: a SQLite file, a "
                          "postgresql://user:password@host/db URL, or none [LOG_DB]")
    log.add_argument("--log-text", default=env("LOG_TEXT"), metavar="all|flagged|none",
                     help="which turns keep their text (prompt and reply) in the log; default: all when "
                          "the page listens on 127.0.0.1 only, else flagged (refused, withdrawn, failed) [LOG_TEXT]")
    log.add_argument("--log-retention-days", type=_days, default=env("LOG_RETENTION_DAYS"), metavar="N",
                     help="delete logged turns older than N days; default: keep [LOG_RETENTION_DAYS]")
    log.add_argument("--operator", type=_login("--operator"), default=env("OPERATOR"), metavar="USER:PASSWORD",
                     help="login of the review page at /review; default: the --auth login, and without "
                          "either no review page [OPERATOR]")
    log.add_argument("--metrics", action="store_true", default=_env_flag("METRICS"),
                     help="serve Prometheus metrics at /metrics [METRICS]")
    return p


def parse_config(argv: list[str] | None = None) -> AppConfig:
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.load_in_4bit and a.load_in_8bit:
        parser.error("choose one of --load-in-4bit and --load-in-8bit")
    if not 0.0 <= a.threshold <= 1.0:
        parser.error("--threshold must be between 0 and 1")
    if a.concurrency < 1 or a.max_queue < 1 or a.check_every < 0:
        parser.error("--concurrency and --max-queue must be at least 1, --check-every at least 0")
    if a.port is not None and not 0 < a.port < 65536:
        parser.error("--port must be between 1 and 65535")
    log_text = (a.log_text or default_log_text(a.host, a.share)).strip().lower()
    if log_text not in LOG_TEXT_POLICIES:
        parser.error(f"--log-text must be one of {', '.join(LOG_TEXT_POLICIES)}, not {a.log_text!r}")
    log_db = (a.log_db or "").strip()
    cuda = None if (a.chat_model and a.guard_model) else has_cuda()
    return AppConfig(
        chat_model=a.chat_model or (LLAMA3_INSTRUCT if cuda else OFFLINE),
        guard_model=a.guard_model or (LLAMA_GUARD_2 if cuda else OFFLINE),
        guard_version=a.guard_version, load_in_4bit=a.load_in_4bit, load_in_8bit=a.load_in_8bit,
        host=a.host, port=a.port, share=a.share, auth=a.auth, concurrency=a.concurrency,
        max_queue=a.max_queue, threshold=a.threshold, check_every=a.check_every,
        stream_policy=a.stream_policy, system_prompt=a.system_prompt,
        log_db=None if log_db.lower() in {"", "none", "off"} else log_db, log_text=log_text,
        log_retention_days=a.log_retention_days, operator=a.operator or a.auth, metrics=a.metrics)
