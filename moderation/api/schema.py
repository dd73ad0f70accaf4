"""OpenAI-shaped requests, checked and turned into frozen values (no FastAPI here).

Every field a caller can send is checked; a bad one raises `ApiError`, which the API
turns into an OpenAI-style error object:

>>> parse_chat_request({"model": "offline", "messages": [{"role": "user", "content": "Hi"}],
...                     "max_tokens": 8}).max_tokens
8
>>> parse_chat_request({"messages": []})
Traceback (most recent call last):
ApiError: (422, 'messages must be a non-empty list of {"role", "content"} objects')
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from moderation.schema import MAX_MESSAGE_CHARS, MAX_SYSTEM_CHARS, Bound, bound
from moderation.turn import clean_message

MAX_BODY_BYTES = 1_000_000
MAX_TOKENS_LIMIT = int(bound("max_new_tokens").high)  # then capped at the operator's --max-new-tokens (api_turn)
MAX_TOKENS = Bound("max_tokens", 1, 10**9, whole=True)  # more is accepted, and capped as above
SEED = Bound("seed", -(2**63), 2**64 - 1, whole=True)
MAX_STOPS = 4
MAX_INPUTS = 32
MAX_MESSAGES = 256  # in `messages` or a moderation `conversation`: bounds the work of one request
SYSTEM_ROLES = {"system", "developer"}  # "developer" is OpenAI's newer name for system


class ApiError(Exception):
    """A request the API refuses: HTTP status, message, OpenAI error type and code."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, retry_after: float | None = None):
        super().__init__(status, message)
        self.status, self.message, self.type = status, message, type
        self.code, self.param, self.retry_after = code, param, retry_after

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(422, message, code="invalid_value", param=param)


@dataclass(frozen=True)
class ChatRequest:
    """A checked /v1/chat/completions request. `turns` are earlier (user, assistant) pairs."""

    model: str | None
    system: str | None  # None: the caller sent no system message
    turns: tuple[tuple[str, str], ...]
    user: str
    stream: bool = False
    include_usage: bool = False
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModerationRequest:
    """A checked /v1/moderations request: each input is judged after `conversation`."""

    inputs: tuple[str, ...]
    conversation: tuple[dict, ...] = ()


def parse_json_body(raw: bytes) -> dict:
    """The request body as a JSON object; 400 for bytes that are not UTF-8 JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the request body is not valid UTF-8 (byte {exc.start})", code="invalid_encoding")
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {getattr(exc, 'msg', exc)}", code="invalid_json")
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    return body


def _text(content, param: str) -> str:
    """A message's text: a string, or a list of {"type": "text", "text": ...} parts."""
    if isinstance(content, str):
        text = content
    elif isinstance(content, list) and content and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
        text = "\n".join(p["text"] for p in content)
    else:
        raise _invalid(f"{param} must be a string or a list of text parts (images and files are not supported)", param)
    text = clean_message(text)
    if len(text) > MAX_MESSAGE_CHARS:
        raise _invalid(f"{param} has {len(text):,} characters; the limit is {MAX_MESSAGE_CHARS:,}", param)
    return text


def _number(body: dict, bound: Bound, name: str | None = None):
    """body[name] (the bound's name by default) checked against `bound`; None when not sent."""
    name = name or bound.name
    value = body.get(name)
    if value is None:
        return None
    problem = bound.problem(value)
    if problem:
        raise _invalid(problem.replace(bound.name, name, 1), name)
    return bound.check(value)


def _stops(value) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value
    if value is None:
        return ()
    if (not isinstance(stops, list) or len(stops) > MAX_STOPS
            or not all(isinstance(s, str) and 0 < len(s) <= 100 for s in stops)):
        raise _invalid(f"stop must be a string or a list of up to {MAX_STOPS} non-empty strings", "stop")
    return tuple(stops)


def conversation_messages(messages, param: str = "messages") -> tuple[str | None, list[dict]]:
    """(system text or None, alternating user/assistant messages). Consecutive messages of
    one role are joined; system messages anywhere are joined into the system text."""
    if not isinstance(messages, list) or not messages:
        raise _invalid(f'{param} must be a non-empty list of {{"role", "content"}} objects', param)
    if len(messages) > MAX_MESSAGES:
        raise ApiError(422, f"{param} has {len(messages):,} messages; the limit is {MAX_MESSAGES}: "
                            "send only the recent part of the conversation", code="too_many_messages", param=param)
    system: list[str] = []
    turns: list[dict] = []
    for i, m in enumerate(messages):
        where = f"{param}[{i}]"
        if not isinstance(m, dict) or "role" not in m:
            raise _invalid(f'{where} must be an object with "role" and "content"', where)
        role = m["role"]
        if not isinstance(role, str) or role not in SYSTEM_ROLES | {"user", "assistant"}:
            raise _invalid(f"{where}.role {str(role)[:40]!r} is not supported: use system, user or assistant", f"{where}.role")
        text = _text(m.get("content"), f"{where}.content")
        if role in SYSTEM_ROLES:
            system.append(text)
        elif turns and turns[-1]["role"] == role:
            turns[-1] = {"role": role, "content": f"{turns[-1]['content']}\n\n{text}".strip()}
        else:
            turns.append({"role": role, "content": text})
    if turns and turns[0]["role"] != "user":
        raise _invalid(f"{param}: the conversation must start with a user message (after any system message)", param)
    return ("\n\n".join(s for s in system if s) if system else None), turns


def parse_chat_request(body: dict) -> ChatRequest:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _invalid("model must be a string", "model")
    if body.get("n") not in (None, 1):
        raise _invalid("only n=1 is supported", "n")
    if body.get("tools") or body.get("functions"):
        raise _invalid("tools and functions are not supported", "tools")
    wanted = body.get("moderation") or {}
    modes = [side.get("mode") for side in wanted.values() if isinstance(side, dict)] if isinstance(wanted, dict) else [None]
    if any(mode != "block" for mode in modes):
        raise _invalid('moderation: this server always blocks flagged input and output (mode "block")', "moderation")
    stream = body.get("stream") or False  # null (sent by some clients) means the default
    if not isinstance(stream, bool):
        raise _invalid("stream must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _invalid("stream_options must be an object", "stream_options")
    system, turns = conversation_messages(body.get("messages"))
    if not turns or turns[-1]["role"] != "user" or not turns[-1]["content"]:
        raise _invalid("the last message must be a non-empty user message", "messages")
    pairs = tuple((turns[i]["content"], turns[i + 1]["content"]) for i in range(0, len(turns) - 1, 2))
    if system is not None and len(system) > MAX_SYSTEM_CHARS:
        raise _invalid(f"the system message has {len(system):,} characters; the limit is {MAX_SYSTEM_CHARS:,}",
                       "messages")
    max_tokens = _number(body, MAX_TOKENS, "max_completion_tokens" if "max_completion_tokens" in body else None)
    return ChatRequest(
        model=model, system=system, turns=pairs, user=turns[-1]["content"], stream=stream,
        include_usage=bool(options.get("include_usage")),
        temperature=_number(body, bound("temperature")), top_p=_number(body, bound("top_p")),
        max_tokens=min(max_tokens, MAX_TOKENS_LIMIT) if max_tokens else None,
        seed=_number(body, SEED), stop=_stops(body.get("stop")))


def parse_moderation_request(body: dict) -> ModerationRequest:
    """`input`: a string, a list of strings, or a list of {"type": "text"} parts (one input
    each); optional `conversation`: the messages before each input, judged in context."""
    raw = body.get("input")
    items = raw if isinstance(raw, list) else [raw]
    if raw is None or not items or len(items) > MAX_INPUTS:
        raise _invalid(f"input must be a string or a list of 1 to {MAX_INPUTS} strings", "input")
    inputs = []
    for i, item in enumerate(items):
        text = _text(item if isinstance(item, str) else [item], f"input[{i}]")
        if not text:
            raise _invalid(f"input[{i}] is empty: nothing to judge", f"input[{i}]")
        inputs.append(text)
    conversation: list[dict] = []
    if body.get("conversation") is not None:
        system, conversation = conversation_messages(body["conversation"], "conversation")
        if system is not None:
            raise _invalid("conversation: system messages are not judged; leave them out", "conversation")
    return ModerationRequest(tuple(inputs), tuple(conversation))
