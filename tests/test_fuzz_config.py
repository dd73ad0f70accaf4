"""Fuzz the operator's side: command-line flags, environment variables and policy files.

`python app.py` is parsed in-process (`moderation.settings.parse_config`) with generated
flags, variables and a TOML or JSON policy file. The outcome is a config, from which
the page builds, or exit status 2 with one readable line on stderr; never another
exception. Text is kept in the log for every turn only when the page is private to
this machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

import pytest
import tomlkit
from fuzz_kit import JSON, readable
from hypothesis import example, given, reject
from hypothesis import strategies as st

from moderation.access import effective_host, is_loopback
from moderation.models import Models, ModelSlot
from moderation.policy import _POLICY_KEYS
from moderation.settings import AppConfig, parse_config

MODELS = ["--chat-model", "offline", "--guard-model", "offline", "--log-db", "none"]
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20)
PLAUSIBLE = {  # each flag, its variable, and values that make sense for it
    "--threshold": ("THRESHOLD", ["0", "0.3", "1", "1.5", "-0", "nan", "inf", "1e-9"]),
    "--check-every": ("CHECK_EVERY", ["0", "1", "16", "4096", "4097", "-1", "3.5"]),
    "--stream-policy": ("STREAM_POLICY", ["stream-first", "hold", "HOLD"]),
    "--prompt-check": ("PROMPT_CHECK", ["parallel", "first"]),
    "--system-prompt": ("SYSTEM_PROMPT", ["", "Be brief.", "x" * 4001]),
    "--disable": ("DISABLE_CATEGORIES", ["S5,S7", "s1", "S99", ",", "C1", "S1,S2,S3,S4,S5,S6,S7,S8,S9,S10,S11"]),
    "--custom-category": ("CUSTOM_CATEGORY", ["Medical: no dosing advice", ":", "x" * 81, "A:" + "b" * 501]),
    "--max-new-tokens": ("MAX_NEW_TOKENS", ["1", "512", "4096", "4097", "0"]),
    "--visitor-settings": ("VISITOR_SETTINGS", ["locked", "open", "Open"]),
    "--concurrency": ("CONCURRENCY", ["1", "2", "0", "-3"]),
    "--max-queue": ("MAX_QUEUE", ["1", "64", "0"]),
    "--host": ("HOST", ["127.0.0.1", "0.0.0.0", "localhost", "::1", "example.org", ""]),
    "--port": ("PORT", ["7860", "0", "65536", "http"]),
    "--auth": ("AUTH", ["user:pw", "user", ":", "a:b:c"]),
    "--operator": ("OPERATOR", ["op:secret", "op"]),
    "--rate-limit": ("RATE_LIMIT", ["60/minute", "off", "0", "1/s", "5/fortnight", "-1/minute"]),
    "--api-key": ("API_KEY", ["key-key-key-1", "short", "with space key"]),
    "--log-text": ("LOG_TEXT", ["all", "flagged", "none", "ALL", "some"]),
    "--log-retention-days": ("LOG_RETENTION_DAYS", ["30", "0", "-1", "inf", "nan", "1e400"]),
    "--guard-version": ("GUARD_VERSION", ["llama-guard-2", "llama-guard-3", "llama-guard-9"]),
}
SWITCHES = {
    "--share": "SHARE",
    "--metrics": "METRICS",
    "--load-in-4bit": "LOAD_IN_4BIT",
    "--load-in-8bit": "LOAD_IN_8BIT",
}
OTHER_VARIABLES = ["API_KEYS", "GRADIO_SERVER_NAME", "SPACE_ID", "POLICY_FILE"]
VARIABLES = [v for v, _ in PLAUSIBLE.values()] + list(SWITCHES.values()) + OTHER_VARIABLES


def value(plausible: list[str]):
    return st.one_of(st.sampled_from(plausible), TEXT)


FLAGS = st.lists(
    st.one_of(
        st.sampled_from(sorted(PLAUSIBLE)).flatmap(lambda flag: st.tuples(st.just(flag), value(PLAUSIBLE[flag][1]))),
        st.sampled_from(sorted(SWITCHES)).map(lambda flag: (flag,)),
        st.tuples(TEXT),
    ),
    max_size=5,
).map(lambda pairs: [part for pair in pairs for part in pair])
ENVIRONMENT = st.dictionaries(
    st.sampled_from(VARIABLES),
    st.one_of(
        st.sampled_from([v for _, values in PLAUSIBLE.values() for v in values] + ["1", "true", "0.0.0.0"]), TEXT
    ),
    max_size=5,
)
POLICY_VALUES = {
    "threshold": st.floats(0, 1),
    "check_every": st.integers(0, 64),
    "stream_policy": st.sampled_from(["stream-first", "hold"]),
    "system_prompt": TEXT,
    "disabled": st.lists(st.sampled_from(["S1", "S5", "s7", "S12"]), max_size=3),
    "custom": st.lists(st.one_of(TEXT, st.fixed_dictionaries({"name": TEXT, "description": TEXT})), max_size=2),
    "max_new_tokens": st.integers(0, 5000),
    "visitor_settings": st.sampled_from(["locked", "open"]),
    "prompt_check": st.sampled_from(["parallel", "first"]),
    "thresholds": st.dictionaries(st.sampled_from(["S1", "S8", "s10", "S15", "C1"]), st.floats(-1, 2), max_size=3),
}
assert set(POLICY_VALUES) == _POLICY_KEYS  # every setting a policy file may hold
POLICY = st.fixed_dictionaries(
    {}, optional={"colour": JSON} | {key: st.one_of(good, JSON) for key, good in POLICY_VALUES.items()}
)


def parse(argv: list[str], env: dict[str, str]) -> AppConfig | None:
    """parse_config(argv) with exactly these variables set; None when it exits with status 2
    after one readable line on stderr (anything else fails the test)."""
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for name in VARIABLES:
            mp.delenv(name, raising=False)
        for name, text in env.items():
            mp.setenv(name, text)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                config = parse_config(argv + MODELS)
        except SystemExit as exc:
            if exc.code == 0 and any(a.startswith(("-h", "--h")) for a in argv):
                return None  # --help (or a prefix of it)
            line = err.getvalue().strip()
            assert exc.code == 2 and "\n" not in line and line.startswith("python app.py: error: "), (exc.code, line)
            assert readable(line), line
            return None
        build_page(config)
        text_given = "LOG_TEXT" in env or any(a.startswith("--log-t") for a in argv)
        public = not is_loopback(effective_host(config.host)) or config.share or bool(env.get("SPACE_ID"))
        assert text_given or not public or config.log_text != "all", (
            f"a page on {effective_host(config.host)} keeps every turn's text by default"
        )
        return config


def build_page(config: AppConfig) -> None:
    """The page builds for this config (the models are not loaded)."""
    from moderation.web.page import create_app

    models = Models(
        ModelSlot("Chat model", config.chat_model, lambda: None), ModelSlot("Guard", config.guard_model, lambda: None)
    )
    create_app(models, config)


@given(argv=FLAGS, env=ENVIRONMENT)
@example(argv=["--visitor-settings", "open"], env={})  # issue 18: NameError while the page was built
@example(argv=[], env={"GRADIO_SERVER_NAME": "0.0.0.0"})  # issue 18: a public page kept every text
@example(argv=["--threshold", "0"], env={})  # found by this suite: a slider from 0 to 0
@example(argv=["--max-new-tokens", "1"], env={})  # ... from 1 to 1
@example(argv=["--check-every", "1"], env={})  # ... from 1 to 1
@example(argv=["\n"], env={})  # found by the long profile: a line break in an argument made a two-line error
def test_flags_and_variables_give_a_config_or_one_line(argv, env):
    parse(argv, env)


@given(policy=POLICY, kind=st.sampled_from(["toml", "json"]), env=ENVIRONMENT)
@example(policy={"disabled": 5}, kind="toml", env={})  # issue 18: a TypeError traceback
@example(policy={"threshold": None}, kind="json", env={})  # found by this suite: float(None)
def test_a_policy_file_gives_a_config_or_one_line(policy, kind, env):
    try:
        text = json.dumps(policy) if kind == "json" else tomlkit.dumps(policy)
    except (TypeError, ValueError):  # TOML has no null, and tomlkit writes no NaN inside some arrays
        reject()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"policy.{kind}"
        path.write_text(text, encoding="utf-8")
        parse(["--policy", str(path)], env)


@given(
    text=st.one_of(
        st.text(max_size=80),
        st.sampled_from(
            ["[", "threshold =", "{}", "[]", "threshold = 1e999", '"a" = 1\n"a" = 2', "\ufeffthreshold = 0.1"]
        ),
    ),
    kind=st.sampled_from(["toml", "json", "txt"]),
)
def test_a_broken_policy_file_gives_one_line(text, kind):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"policy.{kind}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        parse(["--policy", str(path)], {})
