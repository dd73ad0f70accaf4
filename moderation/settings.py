"""Command-line flags of `python app.py`, each with an environment variable.

A flag wins over its variable; the variable wins over the default. Defaults pick the
real models (Llama 3 8B Instruct + Llama Guard 2 8B) when a CUDA GPU is present, and
the bundled offline models otherwise.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from moderation.access import (Rate, check_api_key, check_trusted_proxies, effective_host, env_api_keys,
                                   is_loopback, parse_rate)
from moderation.bounds import CHECK_EVERY, MAX_NEW_TOKENS, THRESHOLD, OutOfBounds
from moderation.policy import (LOCKED, OPEN, OperatorPolicy, PolicyFileError, codes, custom_category,
                                 read_policy_file)

LLAMA3_INSTRUCT = "meta-llama/Meta-Llama-3-8B-Instruct"
LLAMA_GUARD_2 = "meta-llama/Meta-Llama-Guard-2-8B"
OFFLINE = "offline"
DEFAULT_RATE = Rate(60, 60.0)
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
    policy: OperatorPolicy = field(default_factory=OperatorPolicy)
    api_keys: tuple[str, ...] = ()
    rate_limit: Rate | None = DEFAULT_RATE
    log_db: str | None = None  # SQLite path or database URL; None: no moderation log
    log_text: str = "flagged"  # which turns keep their text in the log: all / flagged / none
    log_retention_days: float | None = None  # None: keep forever
    operator: tuple[str, str] | None = None  # login of the review page; None: no review page
    metrics: bool = False  # serve Prometheus metrics at /metrics
    trusted_proxies: str = ""  # addresses whose X-Forwarded-For is believed (uvicorn's forwarded_allow_ips)


def has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _auth(value: str) -> tuple[str, str]:
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise argparse.ArgumentTypeError("takes user:password")
    return user, password


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
    """Text is kept for every turn only when the page is private to this machine: it listens
    on loopback (the flag, else GRADIO_SERVER_NAME, as `api_access.effective_host`), with no
    share link and not on a Space.

    >>> default_log_text(None, False), default_log_text("0.0.0.0", False), default_log_text(None, True)
    ('all', 'flagged', 'flagged')
    """
    local = is_loopback(effective_host(host))
    return "all" if local and not share and not os.environ.get("SPACE_ID") else "flagged"


def _bounded(kind, low, high=None):
    """An argparse type: a number of `kind` in [low, high], with a message that says so."""
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range ({low} to {high if high is not None else '...'})")
        return value
    return convert


def _within(bound):
    """An argparse type for a setting of moderation.bounds: the same range as the API and the page."""
    def convert(text: str):
        try:
            return bound.parse(text)
        except OutOfBounds as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one (the policy's defaults are in its help text)."""

    def _get_help_string(self, action):
        return action.help if action.default in (None, False) else super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Errors as one line (plus where to look), exit status 2: a bad flag or variable is a
    usage error, never a traceback."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (each flag's variable is in --help)\n")


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = _Parser(
        prog="python app.py",
        description="Moderated Llama 3 chat: Llama Guard judges every prompt and every reply, "
                    "also while the reply streams.",
        epilog="MODEL may be a hub id, a local folder, a .gguf file, 'offline' (the bundled "
               "small models, no GPU or hub access needed) or an http(s):// OpenAI-compatible "
               "endpoint (TGI, vLLM, Inference Endpoints; key from OPENAI_API_KEY or HF_TOKEN). "
               "Gated meta-llama models need HF_TOKEN and the license accepted on the model page.",
        formatter_class=_Help)
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
    p.add_argument("--port", type=_bounded(int, 1, 65535), default=env("PORT"),
                   help="port [PORT]; default 7860, or the next free one")
    p.add_argument("--share", action="store_true", default=_env_flag("SHARE"),
                   help="also open a public gradio.live link [SHARE]")
    p.add_argument("--auth", type=_auth, default=env("AUTH"), metavar="USER:PASSWORD",
                   help="require this login [AUTH]")
    p.add_argument("--concurrency", type=_bounded(int, 1), default=env("CONCURRENCY", "2"),
                   help="moderated turns and guard checks at once, page and API together [CONCURRENCY]")
    p.add_argument("--max-queue", type=_bounded(int, 1), default=env("MAX_QUEUE", "64"),
                   help="waiting requests before new ones are turned away [MAX_QUEUE]")
    policy = p.add_argument_group(
        "moderation policy", "Set by the operator; a visitor may only tighten it (see --visitor-settings). "
        "Precedence: flag, then variable, then the policy file, then the default.")
    policy.add_argument("--policy", default=env("POLICY_FILE"), metavar="FILE",
                        help="TOML or JSON policy file (keys: threshold, check_every, stream_policy, "
                             "system_prompt, disabled, custom, max_new_tokens, visitor_settings, prompt_check) "
                             "[POLICY_FILE]")
    policy.add_argument("--threshold", type=_within(THRESHOLD), default=env("THRESHOLD"),
                        help="unsafe when the unsafe probability is at least this; default 0.5 [THRESHOLD]")
    policy.add_argument("--check-every", type=_within(CHECK_EVERY), default=env("CHECK_EVERY"),
                        help="judge the partial reply every N streamed tokens; 0: only at the end; "
                             "default 16 [CHECK_EVERY]")
    policy.add_argument("--stream-policy", type=_one_of("stream-first", "hold"), default=env("STREAM_POLICY"),
                        help="stream-first shows text at once and retracts it if flagged; hold shows each chunk "
                             "only after a check covers it; default stream-first [STREAM_POLICY]")
    policy.add_argument("--prompt-check", type=_one_of("parallel", "first"), default=env("PROMPT_CHECK"),
                        help="parallel starts generating while the prompt is judged and shows nothing before it "
                             "passes (an unsafe prompt stops it at once); first judges the prompt before the chat "
                             "model sees it (for a paid chat endpoint); default parallel [PROMPT_CHECK]")
    policy.add_argument("--system-prompt", default=env("SYSTEM_PROMPT"),
                        help="the chat model's system prompt (judged with every message) [SYSTEM_PROMPT]")
    policy.add_argument("--disable", type=codes, default=env("DISABLE_CATEGORIES"), metavar="CODES",
                        help="categories the guard does not check, e.g. S5,S7 [DISABLE_CATEGORIES]")
    policy.add_argument("--custom-category", action="append", metavar="'NAME: DESCRIPTION'",
                        help="one more category for Llama Guard (repeatable) [CUSTOM_CATEGORY, one]")
    policy.add_argument("--max-new-tokens", type=_within(MAX_NEW_TOKENS), default=env("MAX_NEW_TOKENS"),
                        help="the reply length a visitor may ask for at most; default 512 [MAX_NEW_TOKENS]")
    policy.add_argument("--visitor-settings", type=_one_of(LOCKED, OPEN), default=env("VISITOR_SETTINGS"),
                        help="locked: visitors may only tighten the policy; open: a demo mode in which "
                             "visitors may also loosen it (the page says so); default locked [VISITOR_SETTINGS]")
    p.add_argument("--api-key", action="append", type=check_api_key, dest="api_keys", metavar="KEY",
                   help="key for the OpenAI-compatible API under /v1, as a Bearer token; repeat for several "
                        "[API_KEYS, comma-separated, or API_KEY]; without one the API answers only on loopback")
    p.add_argument("--trusted-proxies", type=check_trusted_proxies, metavar="ADDRESSES",
                   default=env("TRUSTED_PROXIES") or env("FORWARDED_ALLOW_IPS"),
                   help="comma-separated addresses or networks of reverse proxies whose X-Forwarded-For "
                        "names the client address, or * for any; default: none, the address is the "
                        "connection's [TRUSTED_PROXIES, or uvicorn's FORWARDED_ALLOW_IPS]; behind a proxy, "
                        "set --api-key too: without one /v1 refuses forwarded requests (docs/deploy.md)")
    p.add_argument("--rate-limit", type=parse_rate, default=env("RATE_LIMIT", str(DEFAULT_RATE)), metavar="N/UNIT",
                   help="API requests per key (or per address without keys), e.g. 60/minute, or off [RATE_LIMIT]")
    log = p.add_argument_group("moderation log, review page and metrics")
    log.add_argument("--log-db", default=env("LOG_DB", DEFAULT_LOG_DB), metavar="PATH|URL|none",
                     help="where every turn and verdict is logged: a SQLite file, a "
                          "postgresql://user:password@host/db URL, or none [LOG_DB]")
    log.add_argument("--log-text", default=env("LOG_TEXT"), metavar="all|flagged|none",
                     help="which turns keep their text (prompt and reply) in the log; default: all when "
                          "the page listens on 127.0.0.1 only, else flagged (refused, withdrawn, failed) [LOG_TEXT]")
    log.add_argument("--log-retention-days", type=_days, default=env("LOG_RETENTION_DAYS"), metavar="N",
                     help="delete logged turns older than N days; default: keep [LOG_RETENTION_DAYS]")
    log.add_argument("--operator", type=_auth, default=env("OPERATOR"), metavar="USER:PASSWORD",
                     help="login of the review page at /review; default: the --auth login, and without "
                          "either no review page [OPERATOR]")
    log.add_argument("--metrics", action="store_true", default=_env_flag("METRICS"),
                     help="serve Prometheus metrics at /metrics [METRICS]")
    return p


def _one_of(*allowed: str):
    def convert(text: str) -> str:
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(allowed)}")
        return text
    return convert


def operator_policy(a: argparse.Namespace) -> OperatorPolicy:
    """The policy from the parsed flags (flags and variables), then the file, then defaults.
    Raises ValueError (PolicyFileError) with a readable message."""
    file = read_policy_file(a.policy) if a.policy else {}
    defaults = OperatorPolicy()

    def pick(name: str, given):
        return given if given is not None else file.get(name, getattr(defaults, name))

    custom_specs = a.custom_category or ([os.environ["CUSTOM_CATEGORY"]] if os.environ.get("CUSTOM_CATEGORY")
                                         else file.get("custom", []))
    disabled = a.disable if a.disable is not None else codes(file.get("disabled", []))
    return OperatorPolicy(
        threshold=pick("threshold", a.threshold), check_every=pick("check_every", a.check_every),
        stream_policy=pick("stream_policy", a.stream_policy), system_prompt=pick("system_prompt", a.system_prompt),
        disabled=disabled, custom=tuple(custom_category(spec, i) for i, spec in enumerate(custom_specs, start=1)),
        max_new_tokens=pick("max_new_tokens", a.max_new_tokens),
        visitors=a.visitor_settings or file.get("visitor_settings", defaults.visitors),
        prompt_check=pick("prompt_check", a.prompt_check))


def parse_config(argv: list[str] | None = None) -> AppConfig:
    """The app's settings from flags and variables; a bad value exits with a usage error (2)."""
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.load_in_4bit and a.load_in_8bit:
        parser.error("choose one of --load-in-4bit and --load-in-8bit")
    if a.guard_version not in (None, "llama-guard-2", "llama-guard-3"):  # a variable skips `choices`
        parser.error(f"GUARD_VERSION must be llama-guard-2 or llama-guard-3, not {a.guard_version!r}")
    try:
        policy = operator_policy(a)
    except (ValueError, PolicyFileError) as exc:
        parser.error(str(exc))
    try:
        api_keys = tuple(a.api_keys or [check_api_key(k) for k in env_api_keys()])
    except argparse.ArgumentTypeError as exc:
        parser.error(f"API_KEYS / API_KEY: {exc}")
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
        max_queue=a.max_queue, policy=policy, api_keys=api_keys, rate_limit=a.rate_limit,
        log_db=None if log_db.lower() in {"", "none", "off"} else log_db, log_text=log_text,
        log_retention_days=a.log_retention_days, operator=a.operator or a.auth, metrics=a.metrics,
        trusted_proxies=a.trusted_proxies or "")
