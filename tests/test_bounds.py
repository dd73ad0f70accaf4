"""One validation path: the /v1 API, the page's turn settings, the operator's policy (file,
flags and variables) accept exactly the ranges declared in the settings schema (moderation.schema), and the bugs that
came from their disagreeing stay fixed."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_api_flow import RecordingChat, api_client, ask
from test_turn import FakeGuard

from guard.taxonomy import LLAMA_GUARD_2
from moderation import fields, schema
from moderation.api.schema import MAX_TOKENS, ApiError, parse_chat_request
from moderation.api.turn import api_turn_settings
from moderation.policy import OPEN, OperatorPolicy, SettingsRefused, VisitorChoices, turn_settings
from moderation.settings import parse_config
from moderation.web.actions import message_problem

OFFLINE = ["--chat-model", "offline", "--guard-model", "offline"]
OPEN_POLICY = OperatorPolicy(visitors=OPEN, max_new_tokens=int(schema.bound("max_new_tokens").high))
CONFIG = parse_config(OFFLINE)
FIXTURES = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def around(bound: fields.Bound) -> st.SearchStrategy:
    """Values at, just inside and just outside a bound's ends, and anything else numeric."""
    edges = [bound.low, bound.high]
    near = [math.nextafter(e, d) for e in edges for d in (-math.inf, math.inf)]
    steps = [e + d for e in edges for d in (-1, 1, -0.5, 0.5, 0.01, -0.01)]
    return st.one_of(
        st.sampled_from(edges + near + steps),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-10_000, 10_000),
        st.booleans(),
    )


# ---- each entry point, as one yes/no on one value ----------------------------------------


def api_accepts(name: str, value) -> bool:
    """The /v1 request is accepted and its turn settings can be made (what a 200 needs)."""
    body = {"messages": [{"role": "user", "content": "Hi"}], name: value}
    try:
        request = parse_chat_request(body)
    except ApiError as exc:
        assert exc.status == 422 and (exc.param or "").startswith(name), exc.message
        return False
    api_turn_settings(CONFIG, FakeGuard(), request)  # must not raise: it would be a 500
    return True


def turn_accepts(name: str, value) -> bool:
    """The page's (and /chat's) turn settings accept the visitor's value (open mode: no loosening refusal)."""
    try:
        turn_settings(OPEN_POLICY, VisitorChoices(**{name: value}), LLAMA_GUARD_2)
    except SettingsRefused as exc:
        assert name.replace("_", " ") in str(exc).replace("_", " ")
        return False
    return True


def policy_accepts(name: str, value) -> bool:
    try:
        OperatorPolicy(**{name: value})
    except ValueError as exc:
        assert name in str(exc)
        return False
    return True


def flag_accepts(flag: str, value, capsys) -> bool:
    try:
        parse_config(OFFLINE + [f"{flag}={value!r}"])
    except SystemExit as exit_:
        assert exit_.code == 2 and flag.lstrip("-").replace("-", "_") in capsys.readouterr().err
        return False
    return True


def file_accepts(tmp_path, name: str, value, capsys) -> bool:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({name: value}))
    try:
        parse_config(OFFLINE + ["--policy", str(path)])
    except SystemExit as exit_:
        assert exit_.code == 2 and name in capsys.readouterr().err
        return False
    return True


# ---- the same ranges everywhere --------------------------------------------------------


@settings(deadline=None)
@given(
    st.one_of(around(schema.bound("temperature")), around(schema.bound("top_p"))),
    st.sampled_from(["temperature", "top_p"]),
)
@example(0, "top_p")  # the bug: the API took top_p 0, the turn wanted at least 0.01 (a 500)
@example(0.005, "top_p")
def test_sampling_values_are_accepted_alike_by_the_api_and_the_turn(value, name):
    bound = schema.bound(name)
    expected = bound.problem(value) is None
    assert api_accepts(name, value) is expected
    assert turn_accepts(name, value) is expected


@pytest.mark.parametrize("name", ["threshold", "check_every"])
@FIXTURES
@given(data=st.data())
def test_moderation_values_are_accepted_alike_by_flags_file_policy_and_turn(name, data, tmp_path_factory, capsys):
    bound = schema.bound(name)
    value = data.draw(around(bound))
    expected = bound.problem(value) is None
    assert policy_accepts(name, value) is expected
    assert turn_accepts(name, value) is expected
    assert file_accepts(tmp_path_factory.mktemp("p"), name, value, capsys) is expected
    if not isinstance(value, bool) and math.isfinite(value):  # a flag is text: '1.0', not True
        assert flag_accepts("--" + name.replace("_", "-"), value, capsys) is expected


@settings(deadline=None)
@given(around(schema.bound("max_new_tokens")))
def test_max_new_tokens_is_bounded_alike_for_the_operator_and_the_visitor(value):
    expected = schema.bound("max_new_tokens").problem(value) is None
    assert policy_accepts("max_new_tokens", value) is expected
    assert turn_accepts("max_new_tokens", value) is expected  # the operator's cap here is the bound's top


@settings(deadline=None)
@given(st.one_of(st.integers(-5, 10**12), st.floats(allow_nan=True), st.booleans()))
def test_any_max_tokens_the_api_accepts_makes_a_turn(value):
    """The API takes any whole max_tokens of 1 or more (as OpenAI does) and caps it at the
    operator's --max-new-tokens; none may reach the turn out of its range."""
    accepted = api_accepts("max_tokens", value)
    assert accepted is (MAX_TOKENS.problem(value) is None)


@pytest.mark.parametrize("length, ok", [(schema.MAX_MESSAGE_CHARS, True), (schema.MAX_MESSAGE_CHARS + 1, False)])
def test_the_page_and_the_api_take_the_same_message_length(length, ok):
    text = "a" * length
    assert (message_problem(text) == "") is ok
    assert api_accepts("messages", [{"role": "user", "content": text}]) is ok


@pytest.mark.parametrize("length, ok", [(schema.MAX_SYSTEM_CHARS, True), (schema.MAX_SYSTEM_CHARS + 1, False)])
def test_the_system_prompt_has_one_limit_for_operator_visitor_and_api(length, ok):
    text = "a" * length
    assert policy_accepts("system_prompt", text) is ok
    assert turn_accepts("system_prompt", text) is ok
    messages = [{"role": "system", "content": text}, {"role": "user", "content": "Hi"}]
    assert api_accepts("messages", messages) is ok


# ---- the bugs --------------------------------------------------------------------------


def test_top_p_zero_over_v1_is_a_turn_not_a_500(caplog):
    chat = RecordingChat(["Hello", " there"])
    response = ask(api_client(FakeGuard(), chat), top_p=0)
    assert response.status_code == 200, response.text
    assert chat.settings[-1].top_p == 0.0 and "Traceback" not in caplog.text


def test_top_p_zero_is_greedy_for_a_remote_endpoint_too():
    """TGI and vLLM refuse top_p 0; keeping only the most likely token is greedy decoding."""
    from chat import GenerationSettings
    from chat.remote import request_options

    assert request_options(GenerationSettings(temperature=0.7, top_p=0.0, max_new_tokens=8)) == {
        "max_tokens": 8,
        "temperature": 0.0,
    }


# ---- the schema, walked --------------------------------------------------------------------


def env_accepts(variable: str, value, monkeypatch, capsys) -> bool:
    monkeypatch.setenv(variable, repr(value))
    try:
        parse_config(OFFLINE)
    except SystemExit as exit_:
        assert exit_.code == 2 and capsys.readouterr().err.startswith("python app.py: error:")
        return False
    finally:
        monkeypatch.delenv(variable)
    return True


NUMERIC_POLICY = [n for n, f in schema.PolicyFields.model_fields.items() if any(hasattr(m, "ge") for m in f.metadata)]


@pytest.mark.parametrize("name", NUMERIC_POLICY)
def test_every_numeric_policy_setting_has_one_range_on_every_surface(name, tmp_path, monkeypatch, capsys):
    """Walks the schema: each numeric policy field, at and just past its declared ends, is
    accepted or refused alike by its flag, its variable, the policy file, the operator's
    policy and a visitor's turn settings."""
    info = schema.PolicyFields.model_fields[name]
    bound = schema.bound(name)
    step = 1 if bound.whole else 0.01
    for value in (bound.low, bound.high, bound.low - step, bound.high + step):
        expected = bound.problem(value) is None
        assert policy_accepts(name, value) is expected
        assert file_accepts(tmp_path, name, value, capsys) is expected
        assert flag_accepts("--" + name.replace("_", "-"), value, capsys) is expected
        assert env_accepts(info.json_schema_extra["env"], value, monkeypatch, capsys) is expected
        if name != "max_new_tokens":  # a visitor's max_new_tokens is capped by the operator's
            assert turn_accepts(name, value) is expected


@pytest.mark.parametrize("operator", [OperatorPolicy(), OPEN_POLICY, OperatorPolicy(threshold=0, check_every=0)])
def test_the_page_sliders_offer_only_values_the_turn_accepts(operator):
    from moderation.web.settings_form import slider_ranges

    for name, (low, high) in slider_ranges(operator).items():
        for value in (low, high):
            turn_settings(operator, VisitorChoices(**{name: value}), LLAMA_GUARD_2)  # raises when refused


def test_help_lists_every_setting_with_its_variable_and_default():
    from moderation.settings import build_parser

    text = " ".join(build_parser().format_help().split())
    for model in (schema.PolicyFields, schema.ServerFields):
        for name, info in model.model_fields.items():
            extra = info.json_schema_extra
            if not fields.is_flag(model, name):  # a variable only (a secret, or set by the platform)
                assert f"{extra['env']} ({info.description})" in text, name
                continue
            assert f"[{extra['env']}]" in text, name
            if extra.get("show_default", True) and info.default not in (None, False):
                assert f"{info.default}" in text, name


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("", False),
        ("2", False),
    ],
)
def test_yes_no_variables_are_read_one_way(text, expected, monkeypatch):
    from moderation.settings import truthy

    assert truthy(text) is expected
    monkeypatch.setenv("SHARE", text)
    monkeypatch.setenv("SPACES_ZERO_GPU", text)
    config = parse_config(OFFLINE)
    assert config.share is expected and (config.zero_gpu_seconds is not None) is expected
