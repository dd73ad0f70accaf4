"""Command-line flags of `python app.py`, each with an environment variable, all derived
from the settings schema (`moderation.schema`): flag, variable, help, default and range
are declared there once. This is the one module that reads environment variables.

A flag wins over its variable; the variable wins over the policy file (for a policy
setting), which wins over the default. Defaults pick the real models (Llama 3 8B
Instruct + Llama Guard 2 8B) when a CUDA GPU is present, and the bundled offline models
otherwise.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

from moderation.access import Rate, check_api_key, check_trusted_proxies, is_loopback, parse_rate
from moderation.fields import OutOfBounds, extra, is_flag, key_of, problems
from moderation.policy import OperatorPolicy, PolicyFileError, codes, read_policy_file
from moderation.schema import DEFAULT_LOG_DB, PolicyFields, ServerFields, bound
from weights import CONTEXT_WINDOW
from weights.offline import cache_dir

LLAMA3_INSTRUCT = "meta-llama/Meta-Llama-3-8B-Instruct"
LLAMA_GUARD_2 = "meta-llama/Meta-Llama-Guard-2-8B"
OFFLINE = "offline"
TRUE = ("1", "true", "yes", "on")  # the one reading of a yes/no variable
# read when the first is not set: uvicorn's own; Inference Endpoints take the hub token as their key
FALLBACK = {"TRUSTED_PROXIES": "FORWARDED_ALLOW_IPS", "OPENAI_API_KEY": "HF_TOKEN"}
SERVER = (
    "chat_model",
    "guard_model",
    "guard_version",
    "chat_model_name",
    "guard_model_name",
    "guard_batch",
    "guard_batch_wait_ms",
    "chat_context_window",
    "model_cache_dir",
    "load_in_4bit",
    "load_in_8bit",
    "compile",
    "host",
    "port",
    "share",
    "auth",
    "concurrency",
    "max_queue",
)
API = ("api_keys", "trusted_proxies", "rate_limit", "api_concurrency")
LOG = ("log_db", "log_text", "log_retention_days", "operator", "metrics")
__all__ = ["AppConfig", "DEFAULT_LOG_DB", "build_parser", "parse_config", "truthy", "environment"]


@dataclass(frozen=True)
class AppConfig:
    chat_model: str
    guard_model: str
    guard_version: str | None = None
    chat_model_name: str | None = None  # the model asked of a chat endpoint; None: the first it lists
    guard_model_name: str | None = None  # the same for a guard endpoint
    guard_batch: int | None = None  # a local Llama Guard's checks per pass at most; None: 8 on CUDA, else 1
    guard_batch_wait_ms: float = 2.0  # how long a check waits for others to share its pass
    chat_context_window: int = CONTEXT_WINDOW  # tokens a chat endpoint reads
    endpoint_key: str | None = field(default=None, repr=False)  # OPENAI_API_KEY, else HF_TOKEN
    hf_token: str | None = field(default=None, repr=False)  # None: the hub client's own (hf auth login)
    model_cache_dir: Path | None = None  # where the offline models are made; None: weights.offline's
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    compile: str = "auto"  # compiled decoding of a local chat model: auto / on / off (chat.compiled)
    host: str | None = None  # the flag, else GRADIO_SERVER_NAME; None: Gradio's 127.0.0.1
    port: int | None = None
    share: bool = False
    auth: tuple[str, str] | None = None
    concurrency: int = 2
    max_queue: int = 64
    policy: OperatorPolicy = field(default_factory=OperatorPolicy)
    api_keys: tuple[str, ...] = ()
    rate_limit: Rate | None = Rate(60, 60.0)
    api_concurrency: int | None = None  # /v1 requests running at once in all; None: only --concurrency
    log_db: str | None = None  # SQLite path or database URL; None: no moderation log
    log_text: str = "flagged"  # which turns keep their text in the log: all / flagged / none
    log_retention_days: float | None = None  # None: keep forever
    operator: tuple[str, str] | None = None  # login of the review page; None: no review page
    metrics: bool = False  # serve Prometheus metrics at /metrics
    trusted_proxies: str = ""  # addresses whose X-Forwarded-For is believed (uvicorn's forwarded_allow_ips)
    space: str | None = None  # the Space's id (SPACE_ID) when running on Hugging Face Spaces
    zero_gpu_seconds: int | None = None  # on ZeroGPU hardware (SPACES_ZERO_GPU): seconds of GPU per call


def truthy(text: str | None) -> bool:
    """A yes/no variable: 1, true, yes or on (any case) is yes; anything else no."""
    return (text or "").strip().lower() in TRUE


def environment(name: str, default: str | None = None) -> str | None:
    """One environment variable (the only place the app reads them)."""
    return os.environ.get(name, default)


def variable(name: str) -> str | None:
    """A setting's variable (or its FALLBACK's), stripped; None when neither is set or both are blank."""
    env = extra(ServerFields.model_fields[name], "env")
    return (environment(env) or "").strip() or (environment(FALLBACK.get(env, "")) or "").strip() or None


def has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


# ---- text -> value, one converter per kind of field --------------------------------------


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


def _codes(value: str) -> frozenset[str]:
    try:
        return codes(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


CONVERTERS = {
    "auth": _auth,
    "operator": _auth,
    "log_retention_days": _days,
    "rate_limit": parse_rate,
    "trusted_proxies": check_trusted_proxies,
    "api_keys": check_api_key,
    "disabled": _codes,
}


def _choices(annotation) -> tuple[str, ...]:
    """The values of a Literal field (also inside `Literal[...] | None`)."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    return next((c for arg in get_args(annotation) if (c := _choices(arg))), ())


def converter(model: type[BaseModel], name: str):
    """The argparse type of one field: its text checked against the field's declaration."""
    if name in CONVERTERS:
        return CONVERTERS[name]
    info, key = model.model_fields[name], key_of(model, name)
    if any(hasattr(m, "ge") for m in info.metadata):
        numbers = bound(name, model).renamed(key)

        def number(text: str):
            try:
                return numbers.parse(text)
            except OutOfBounds as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None

        return number
    allowed = _choices(info.annotation)
    if allowed:

        def one_of(text: str) -> str:
            if text.strip().lower() not in allowed:
                raise argparse.ArgumentTypeError(
                    f"{flag_of(model, name)} must be one of {', '.join(allowed)}, not {text!r}"
                )
            return text.strip().lower()

        return one_of
    return None


def flag_of(model: type[BaseModel], name: str) -> str:
    return extra(model.model_fields[name], "flag") or "--" + key_of(model, name).replace("_", "-")


# ---- the parser, derived from the schema ---------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Errors as one line (plus where to look), exit status 2: a bad flag or variable is a
    usage error, never a traceback."""

    def error(self, message: str):
        one_line = message.replace("\r", "\\r").replace("\n", "\\n")  # a value may hold line breaks
        self.exit(2, f"{self.prog}: error: {one_line} (each flag's variable is in --help)\n")


def _add(group, model: type[BaseModel], name: str) -> None:
    """One flag: its type, variable, default and help, as the schema declares them."""
    info = model.model_fields[name]
    env = extra(info, "env")
    shown = info.default not in (None, False, "", (), frozenset()) and extra(info, "show_default", True)
    default = f"; default {info.default}" if shown and "default" not in (info.description or "") else ""
    help_text = f"{info.description}{default} [{env}]"
    options = dict(dest=name, help=help_text, metavar=extra(info, "metavar") or key_of(model, name).upper())
    if info.annotation is bool:
        options.update(action="store_true", default=truthy(environment(env)))
        options.pop("metavar")
    elif name in ("api_keys", "custom"):
        options.update(action="append", type=converter(model, name))
    else:  # a server setting's default is the schema's; a policy setting's may come from the file
        given = environment(env) or environment(FALLBACK.get(env, ""))
        options.update(type=converter(model, name), default=given if model is PolicyFields else given or info.default)
    group.add_argument(flag_of(model, name), **options)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python app.py",
        description="Moderated Llama 3 chat: Llama Guard judges every prompt and every reply, "
        "also while the reply streams.",
        epilog="MODEL may be a hub id, a local folder, a .gguf file, 'offline' (the bundled "
        "small models, no GPU or hub access needed) or an http(s):// OpenAI-compatible "
        "endpoint (TGI, vLLM, Inference Endpoints; key from OPENAI_API_KEY or HF_TOKEN). "
        "Gated meta-llama models need HF_TOKEN and the license accepted on the model page. "
        "API_KEYS is comma-separated (API_KEY holds one); TRUSTED_PROXIES falls back to uvicorn's "
        "FORWARDED_ALLOW_IPS; CUSTOM_CATEGORY holds one category. Without an API key the API answers "
        "only on loopback; behind a proxy set --api-key too (docs/deploy.md).",
    )
    for name in SERVER:
        _add(p, ServerFields, name)
    policy = p.add_argument_group(
        "moderation policy",
        "Set by the operator; a visitor may only tighten it (see --visitor-settings). "
        "Precedence: flag, then variable, then the policy file, then the default.",
    )
    keys = ", ".join(key_of(PolicyFields, n) for n in PolicyFields.model_fields)
    policy.add_argument(
        "--policy",
        default=environment("POLICY_FILE"),
        metavar="FILE",
        help=f"TOML or JSON policy file (keys: {keys}) [POLICY_FILE]",
    )
    for name in PolicyFields.model_fields:
        _add(policy, PolicyFields, name)
    for name in API:
        _add(p, ServerFields, name)
    log = p.add_argument_group("moderation log, review page and metrics")
    for name in LOG:
        _add(log, ServerFields, name)
    p.epilog += (
        " Variables without a flag: "
        + "; ".join(
            f"{extra(info, 'env')} ({info.description})"
            for name, info in ServerFields.model_fields.items()
            if not is_flag(ServerFields, name)
        )
        + "."
    )
    return p


# ---- flags, variables and the policy file -> AppConfig -------------------------------------


def operator_policy(a: argparse.Namespace) -> OperatorPolicy:
    """The policy from the parsed flags (flags and variables), then the file, then defaults.
    Raises ValueError (PolicyFileError, ValidationError) with a readable message."""
    file = read_policy_file(a.policy) if a.policy else {}
    custom_env = environment("CUSTOM_CATEGORY")
    given = {name: getattr(a, name) for name in PolicyFields.model_fields}
    given["custom"] = given["custom"] or ([custom_env] if custom_env else None)
    values = {
        key_of(PolicyFields, name): value if value is not None else file.get(key_of(PolicyFields, name))
        for name, value in given.items()
    }
    return OperatorPolicy(**{key: value for key, value in values.items() if value is not None})


def api_keys(a: argparse.Namespace) -> tuple[str, ...]:
    """--api-key flags, else API_KEYS (comma-separated) and API_KEY."""
    if a.api_keys:
        return tuple(a.api_keys)
    keys = [k.strip() for k in (environment("API_KEYS") or "").split(",")] + [(environment("API_KEY") or "").strip()]
    return tuple(check_api_key(k) for k in keys if k)


def default_log_text(host: str | None, share: bool, space: str | None = None) -> str:
    """Text is kept for every turn only when the page is private to this machine: it listens
    on loopback (the flag, else GRADIO_SERVER_NAME), with no share link and not on a Space.

    >>> default_log_text(None, False), default_log_text("0.0.0.0", False), default_log_text(None, True)
    ('all', 'flagged', 'flagged')
    """
    return "all" if is_loopback(host or "127.0.0.1") and not share and not space else "flagged"


def parse_config(argv: list[str] | None = None) -> AppConfig:
    """The app's settings from flags and variables; a bad value exits with a usage error (2)."""
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.load_in_4bit and a.load_in_8bit:
        parser.error("choose one of --load-in-4bit and --load-in-8bit")
    try:
        policy = operator_policy(a)
    except ValidationError as exc:
        parser.error(problems(PolicyFields, exc))
    except (ValueError, PolicyFileError) as exc:
        parser.error(str(exc))
    try:
        keys = api_keys(a)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"API_KEYS / API_KEY: {exc}")
    host = a.host or environment("GRADIO_SERVER_NAME") or None
    space = environment("SPACE_ID") or None
    log_db = (a.log_db or "").strip()
    cuda = None if (a.chat_model and a.guard_model) else has_cuda()
    try:
        gpu_seconds = bound("zero_gpu_seconds", ServerFields).parse(variable("zero_gpu_seconds") or "120")
    except OutOfBounds as exc:
        parser.error(f"ZERO_GPU_DURATION: {exc}")
    return AppConfig(
        chat_model=a.chat_model or (LLAMA3_INSTRUCT if cuda else OFFLINE),
        guard_model=a.guard_model or (LLAMA_GUARD_2 if cuda else OFFLINE),
        guard_version=a.guard_version,
        chat_model_name=(a.chat_model_name or "").strip() or None,
        guard_model_name=(a.guard_model_name or "").strip() or None,
        guard_batch=a.guard_batch,
        guard_batch_wait_ms=a.guard_batch_wait_ms,
        chat_context_window=a.chat_context_window,
        endpoint_key=variable("endpoint_key"),
        hf_token=variable("hf_token"),
        model_cache_dir=cache_dir((a.model_cache_dir or "").strip() or None, environment("XDG_CACHE_HOME")),
        load_in_4bit=a.load_in_4bit,
        load_in_8bit=a.load_in_8bit,
        compile=a.compile,
        host=host,
        port=a.port,
        share=a.share,
        auth=a.auth,
        concurrency=a.concurrency,
        max_queue=a.max_queue,
        policy=policy,
        api_keys=keys,
        rate_limit=a.rate_limit,
        api_concurrency=a.api_concurrency,
        log_db=None if log_db.lower() in {"", "none", "off"} else log_db,
        log_text=a.log_text or default_log_text(host, a.share, space),
        log_retention_days=a.log_retention_days,
        operator=a.operator or a.auth,
        metrics=a.metrics,
        trusted_proxies=a.trusted_proxies,
        space=space,
        zero_gpu_seconds=gpu_seconds if truthy(environment("SPACES_ZERO_GPU")) else None,
    )
