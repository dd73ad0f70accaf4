"""OpenAI-shaped request bodies as pydantic models, turned into frozen values (no FastAPI here).

`ChatBody` and `ModerationBody` declare every field a caller can send, with the ranges
and lengths of the settings schema (`moderation.schema`); unknown fields are ignored, as
OpenAI's clients send many. A body that does not fit raises `ApiError`, which the API
turns into an OpenAI-style error object naming the field:

>>> parse_chat_request({"model": "offline", "messages": [{"role": "user", "content": "Hi"}],
...                     "max_tokens": 8}).max_tokens
8
>>> parse_chat_request({"messages": []})
Traceback (most recent call last):
moderation.api.schema.ApiError: (422, 'messages must be a non-empty list of {"role", "content"} objects')
>>> parse_chat_request({"messages": [{"role": "tool", "content": "x"}]})
Traceback (most recent call last):
moderation.api.schema.ApiError: (422, "messages[0].role must be system, developer, user or assistant, not 'tool'")
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from moderation.fields import Bound, Number, Whole
from moderation.schema import MAX_MESSAGE_CHARS, MAX_SYSTEM_CHARS, bound
from moderation.turn import clean_message

MAX_BODY_BYTES = 1_000_000
MAX_TOKENS_LIMIT = int(bound("max_new_tokens").high)  # then capped at the operator's --max-new-tokens (api_turn)
MAX_TOKENS = Bound("max_tokens", 1, 10**9, whole=True)  # more is accepted, and capped as above
SEED = Bound("seed", -(2**63), 2**64 - 1, whole=True)
MAX_STOPS = 4
MAX_STOP_CHARS = 100
MAX_INPUTS = 32
MAX_MESSAGES = 256  # in `messages` or a moderation `conversation`: bounds the work of one request
SYSTEM_ROLES = ("system", "developer")  # "developer" is OpenAI's newer name for system
CONVERSATIONS = ("messages", "conversation")  # the fields past whose MAX_MESSAGES the code is too_many_messages
MAX_PROBLEMS = 3  # sentences in one error message


class ApiError(Exception):
    """A request the API refuses: HTTP status, message, OpenAI error type and code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(status, message)
        self.status, self.message, self.type = status, message, type
        self.code, self.param, self.retry_after = code, param, retry_after

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# ---- the values handed on ---------------------------------------------------------------


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


@dataclass(frozen=True)
class Dialogue:
    """A `messages` list, checked: the system text (None: no system message) and the
    alternating user/assistant messages from a user message on."""

    system: str | None
    turns: tuple[dict, ...]


# ---- the bodies ---------------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class TextPart(Body):
    type: Literal["text"]
    text: str


def _text(content: str | TextPart | list[TextPart]) -> str:
    """A message's text, cleaned (moderation.turn.clean_message); parts joined by newlines."""
    parts = [content] if isinstance(content, (str, TextPart)) else content
    return clean_message("\n".join(p if isinstance(p, str) else p.text for p in parts))


def _dialogue(messages: list[Message]) -> Dialogue:
    """Consecutive messages of one role are joined; system messages anywhere are joined
    into the system text; the rest must start with a user message."""
    system: list[str] = []
    turns: list[dict] = []
    for m in messages:
        if m.role in SYSTEM_ROLES:
            system.append(m.content)
        elif turns and turns[-1]["role"] == m.role:
            turns[-1] = {"role": m.role, "content": f"{turns[-1]['content']}\n\n{m.content}".strip()}
        else:
            turns.append({"role": m.role, "content": m.content})
    if turns and turns[0]["role"] != "user":
        raise ValueError("the conversation must start with a user message (after any system message)")
    return Dialogue("\n\n".join(s for s in system if s) if system else None, tuple(turns))


def _within(b: Bound, **kw):
    """A number field bounded as `b` says; None (or null) when not sent."""
    return Field(None, ge=b.low, le=b.high, **kw)


Parts = Annotated[list[TextPart], Field(min_length=1)]
Content = Annotated[str | Parts, AfterValidator(_text), Field(max_length=MAX_MESSAGE_CHARS)]
Judged = Annotated[str | TextPart, AfterValidator(_text), Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]
Stop = Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]


class Message(Body):
    role: Literal["system", "developer", "user", "assistant"] = Field(
        description="system, developer, user or assistant"
    )
    content: Content = Field(description="a string or a list of text parts (images and files are not supported)")


# A conversation's messages, validated into a Dialogue.
Conversation = Annotated[
    list[Message],
    Field(min_length=1, max_length=MAX_MESSAGES, description='a non-empty list of {"role", "content"} objects'),
    AfterValidator(_dialogue),
]


class StreamOptions(Body):
    include_usage: StrictBool | None = Field(None, description="true or false")


class Blocking(Body):
    mode: Literal["block"]


class ChatBody(Body):
    """A /v1/chat/completions body."""

    messages: Conversation
    model: str | None = Field(None, description="a string: the served model's id (see /v1/models)")
    temperature: Number | None = _within(bound("temperature"))
    top_p: Number | None = _within(bound("top_p"))
    max_tokens: Whole | None = _within(MAX_TOKENS)
    max_completion_tokens: Whole | None = _within(MAX_TOKENS)  # OpenAI's newer name; wins over max_tokens
    seed: Whole | None = _within(SEED)
    stop: Stop | Annotated[list[Stop], Field(max_length=MAX_STOPS)] | None = Field(
        None,
        description=f"a string or a list of up to {MAX_STOPS} non-empty strings of at most {MAX_STOP_CHARS} characters",
    )
    n: Literal[1] | None = Field(None, description="1: one choice a request")
    tools: Annotated[list, Field(max_length=0)] | None = Field(None, description="left out: tools are not supported")
    functions: Annotated[list, Field(max_length=0)] | None = Field(
        None, description="left out: functions are not supported"
    )
    stream: StrictBool | None = Field(None, description="true or false")
    stream_options: StreamOptions | None = Field(None, description='an object such as {"include_usage": true}')
    moderation: dict[str, Blocking] | None = Field(
        None,
        description='{"input": {"mode": "block"}, "output": {"mode": "block"}}: this server always blocks '
        "flagged input and output",
    )

    @field_validator("messages")
    @classmethod
    def _ends_with_the_question(cls, dialogue: Dialogue) -> Dialogue:
        if not dialogue.turns or dialogue.turns[-1]["role"] != "user" or not dialogue.turns[-1]["content"]:
            raise ValueError("the last message must be a non-empty user message")
        if dialogue.system is not None and len(dialogue.system) > MAX_SYSTEM_CHARS:
            raise ValueError(
                f"the system message has {len(dialogue.system):,} characters; the limit is {MAX_SYSTEM_CHARS:,}"
            )
        return dialogue

    def request(self) -> ChatRequest:
        turns = self.messages.turns
        pairs = tuple((turns[i]["content"], turns[i + 1]["content"]) for i in range(0, len(turns) - 1, 2))
        max_tokens = self.max_tokens if self.max_completion_tokens is None else self.max_completion_tokens
        return ChatRequest(
            model=self.model,
            system=self.messages.system,
            turns=pairs,
            user=turns[-1]["content"],
            stream=bool(self.stream),
            include_usage=bool(self.stream_options and self.stream_options.include_usage),
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=min(max_tokens, MAX_TOKENS_LIMIT) if max_tokens else None,
            seed=self.seed,
            stop=(self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ()),
        )


class ModerationBody(Body):
    """A /v1/moderations body: `input`, a string, a list of strings, or a list of
    {"type": "text"} parts (one input each); optional `conversation`, the messages before
    each input, judged in context."""

    input: Judged | Annotated[list[Judged], Field(min_length=1, max_length=MAX_INPUTS)] = Field(
        description=f"a string or a list of 1 to {MAX_INPUTS} strings"
    )
    conversation: Conversation | None = Field(
        None, description='a list of {"role", "content"} objects: the messages before the input, from a user message on'
    )

    @field_validator("conversation")
    @classmethod
    def _no_system(cls, dialogue: Dialogue | None) -> Dialogue | None:
        if dialogue is not None and dialogue.system is not None:
            raise ValueError("system messages are not judged; leave them out")
        return dialogue

    def request(self) -> ModerationRequest:
        inputs = (self.input,) if isinstance(self.input, str) else tuple(self.input)
        return ModerationRequest(inputs, self.conversation.turns if self.conversation else ())


# ---- from bytes to checked values, and validation errors to ApiError -----------------------


def parse_json_body(raw: bytes) -> dict:
    """The request body as a JSON object; 400 for bytes that are not UTF-8 JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, f"the request body is not valid UTF-8 (byte {exc.start})", code="invalid_encoding"
        ) from None
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ApiError(
            400, f"the request body is not valid JSON: {getattr(exc, 'msg', exc)}", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    return body


def parse_chat_request(body: dict) -> ChatRequest:
    return _validated(ChatBody, body).request()


def parse_moderation_request(body: dict) -> ModerationRequest:
    return _validated(ModerationBody, body).request()


def _validated(model: type[Body], body: dict):
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(model, exc) from None


def invalid_request(model: type[BaseModel], exc: ValidationError) -> ApiError:
    """A body's validation errors as one OpenAI-style error: 422, `param` the first field
    at fault, the message a sentence for each (at most MAX_PROBLEMS); code
    `too_many_messages` for a conversation past MAX_MESSAGES, else `invalid_value`."""
    errors = [(e, located(model, e["loc"])) for e in exc.errors(include_url=False)]
    for error, _ in errors:
        if error["type"] == "too_long" and error["loc"] in [(name,) for name in CONVERSATIONS]:
            name, count = error["loc"][0], len(error["input"])
            return ApiError(
                422,
                f"{name} has {count:,} messages; the limit is {MAX_MESSAGES}: send only the recent "
                "part of the conversation",
                code="too_many_messages",
                param=name,
            )
    found = dict.fromkeys(problem(model, e, place) for e, place in _telling(errors))
    sentences = list(dict.fromkeys(message for _, message in found))
    more = f"; and {len(sentences) - MAX_PROBLEMS} more" if len(sentences) > MAX_PROBLEMS else ""
    return ApiError(422, "; ".join(sentences[:MAX_PROBLEMS]) + more, code="invalid_value", param=next(iter(found))[0])


def _telling(errors: list[tuple[dict, Place]]) -> list[tuple[dict, Place]]:
    """The errors minus a union member's type mismatch ('not a string' for a value that
    is a list) where another error at or under the same place says what is wrong."""

    def mismatch(error: dict) -> bool:
        return error["type"].endswith("_type")

    return [
        (e, place)
        for e, place in errors
        if not mismatch(e)
        or not any(not mismatch(other) and _under(where.param, place.param) for other, where in errors)
    ]


def _under(param: str, parent: str) -> bool:
    return param == parent or param.startswith((parent + "[", parent + "."))


def problem(model: type[BaseModel], error: dict, place: Place) -> tuple[str, str]:
    """(param, sentence) for one pydantic error: 'messages[3].role', "messages[3].role must
    be system, developer, user or assistant, not 'tool'"."""
    param, kind, value = place.param, error["type"], error.get("input")
    field = model.model_fields.get(param)
    if field is not None and any(hasattr(m, "ge") for m in field.metadata):
        return param, bound(param, model).problem(value) or f"{param}: {error['msg']}"
    if kind == "value_error":
        message = error["msg"].removeprefix("Value error, ")
        return param, message if message.startswith(param) else f"{param}: {message}"
    if kind in ("too_long", "string_too_long") and isinstance(value, str):
        return param, f"{param} has {len(value):,} characters; the limit is {error['ctx']['max_length']:,}"
    if kind in ("too_short", "string_too_short") and isinstance(value, str):
        return param, f"{param} is empty"
    if place.described is None:
        return param, f"{param}: {error['msg']}"
    where, description = place.described
    shown = where == param and kind != "missing" and isinstance(value, (str, int, float, bool, type(None)))
    return where, f"{where} must be {description}" + (f", not {_short(value)}" if shown else "")


@dataclass(frozen=True)
class Place:
    """Where an error is: its param ('messages[3].role'), and the innermost field on the
    way there that has a description, as (param, description)."""

    param: str
    described: tuple[str, str] | None


def located(model: type[BaseModel], loc: tuple) -> Place:
    """Walks an error's location through the models; names that are not fields (a union
    member's, such as 'str' or 'list[TextPart]', or a dict key) are skipped."""
    param, described = "", None
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            param = f"{param}[{part}]"
        elif current is not None and part in current.model_fields:
            field = current.model_fields[part]
            param = f"{param}.{part}" if param else part
            if field.description:
                described = (param, field.description)
            current = _model_in(field.annotation)
    return Place(param, described)


def _model_in(annotation) -> type[BaseModel] | None:
    """The model a field holds, also inside list[...], X | None, dict[str, ...] and Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_in, get_args(annotation)) if m is not None), None)


def _short(value) -> str:
    return repr(value[:40] + "…" if isinstance(value, str) and len(value) > 40 else value)
