"""One validation path: the /v1 API, the page's turn settings, the operator's policy (file
and flags) accept exactly the ranges declared in moderation.bounds, and the bugs that
came from their disagreeing stay fixed."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from guard.taxonomy import LLAMA_GUARD_2
from moderation import bounds
from moderation.api.schema import MAX_TOKENS, ApiError, parse_chat_request
from moderation.api.turn import api_turn_settings
from moderation.web.actions import message_problem
from moderation.policy import OPEN, OperatorPolicy, SettingsRefused, VisitorChoices, turn_settings
from moderation.settings import parse_config
from test_api_flow import RecordingChat, api_client, ask
from test_turn import FakeGuard

OFFLINE = ["--chat-model", "offline", "--guard-model", "offline"]
OPEN_POLICY = OperatorPolicy(visitors=OPEN, max_new_tokens=int(bounds.MAX_NEW_TOKENS.high))
CONFIG = parse_config(OFFLINE)
FIXTURES = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def around(bound: bounds.Bound) -> st.SearchStrategy:
    """Values at, just inside and just outside a bound's ends, and anything else numeric."""
    edges = [bound.low, bound.high]
    near = [math.nextafter(e, d) for e in edges for d in (-math.inf, math.inf)]
    steps = [e + d for e in edges for d in (-1, 1, -0.5, 0.5, 0.01, -0.01)]
    return st.one_of(st.sampled_from(edges + near + steps), st.floats(allow_nan=True, allow_infinity=True),
                     st.integers(-10_000, 10_000), st.booleans())


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
@given(st.one_of(around(bounds.TEMPERATURE), around(bounds.TOP_P)), st.sampled_from(["temperature", "top_p"]))
@example(0, "top_p")  # the bug: the API took top_p 0, the turn wanted at least 0.01 (a 500)
@example(0.005, "top_p")
def test_sampling_values_are_accepted_alike_by_the_api_and_the_turn(value, name):
    bound = getattr(bounds, name.upper())
    expected = bound.problem(value) is None
    assert api_accepts(name, value) is expected
    assert turn_accepts(name, value) is expected


@pytest.mark.parametrize("name", ["threshold", "check_every"])
@FIXTURES
@given(data=st.data())
def test_moderation_values_are_accepted_alike_by_flags_file_policy_and_turn(name, data, tmp_path_factory, capsys):
    bound = getattr(bounds, name.upper())
    value = data.draw(around(bound))
    expected = bound.problem(value) is None
    assert policy_accepts(name, value) is expected
    assert turn_accepts(name, value) is expected
    assert file_accepts(tmp_path_factory.mktemp("p"), name, value, capsys) is expected
    if not isinstance(value, bool) and math.isfinite(value):  # a flag is text: '1.0', not True
        assert flag_accepts("--" + name.replace("_", "-"), value, capsys) is expected


@settings(deadline=None)
@given(around(bounds.MAX_NEW_TOKENS))
def test_max_new_tokens_is_bounded_alike_for_the_operator_and_the_visitor(value):
    expected = bounds.MAX_NEW_TOKENS.problem(value) is None
    assert policy_accepts("max_new_tokens", value) is expected
    assert turn_accepts("max_new_tokens", value) is expected  # the operator's cap here is the bound's top


@settings(deadline=None)
@given(st.one_of(st.integers(-5, 10**12), st.floats(allow_nan=True), st.booleans()))
def test_any_max_tokens_the_api_accepts_makes_a_turn(value):
    """The API takes any whole max_tokens of 1 or more (as OpenAI does) and caps it at the
    operator's --max-new-tokens; none may reach the turn out of its range."""
    accepted = api_accepts("max_tokens", value)
    assert accepted is (MAX_TOKENS.problem(value) is None)


@pytest.mark.parametrize("length, ok", [(bounds.MAX_MESSAGE_CHARS, True), (bounds.MAX_MESSAGE_CHARS + 1, False)])
def test_the_page_and_the_api_take_the_same_message_length(length, ok):
    text = "a" * length
    assert (message_problem(text) == "") is ok
    assert api_accepts("messages", [{"role": "user", "content": text}]) is ok


@pytest.mark.parametrize("length, ok", [(bounds.MAX_SYSTEM_CHARS, True), (bounds.MAX_SYSTEM_CHARS + 1, False)])
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

    assert request_options(GenerationSettings(temperature=0.7, top_p=0.0, max_new_tokens=8)) == \
        {"max_tokens": 8, "temperature": 0.0}
