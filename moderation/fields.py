"""How one setting is declared and checked: `setting` (a pydantic field with its help
text, variable, flag, policy key and which way is stricter), the number types the
schema's fields use, `Bound` (a numeric field's closed range, with messages for a
person) and `problems` (pydantic's errors as sentences). The settings themselves are
declared in `moderation.schema`:

>>> class Demo(BaseModel):
...     share: Number = setting(0.5, "a share", ge=0, le=1)
>>> field_bound(Demo, "share").problem(1.5)
'share must be a number from 0 to 1, not 1.5'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Annotated, Any, get_args

from pydantic import BaseModel, BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _whole(value):
    if _number(value) != int(value):
        raise ValueError("not a whole number")
    return int(value)


Number = Annotated[float, BeforeValidator(_number)]  # what JSON, TOML and a slider send; no coercion from text
Whole = Annotated[int, BeforeValidator(_whole)]


def setting(
    default,
    help: str,
    *,
    env: str | None = None,
    flag: str | bool | None = None,
    key: str | None = None,
    stricter: str | None = None,
    metavar: str | None = None,
    show_default: bool = True,
    **constraints,
) -> Any:
    """A field with its help text and where it is read: `env` (the variable), `flag`
    (default: --name; False: the variable only), `key` (its name in a policy file and in
    messages; default: the field's), `stricter` (for a policy setting: which way a visitor
    may move it)."""
    extra = {
        "env": env,
        "flag": flag,
        "key": key,
        "stricter": stricter,
        "metavar": metavar,
        "show_default": show_default,
    }
    return Field(
        default, description=help, json_schema_extra={k: v for k, v in extra.items() if v is not None}, **constraints
    )


def field_bound(model: type[BaseModel], name: str) -> Bound:
    """The declared range of the numeric field `name` of `model`."""
    field = model.model_fields[name]
    low = next(m.ge for m in field.metadata if hasattr(m, "ge"))
    high = next(m.le for m in field.metadata if hasattr(m, "le"))
    return Bound(name, low, high, _is_whole(field.annotation))


def is_flag(model: type[BaseModel], name: str) -> bool:
    """Whether a field has a flag (every one but those declared `flag=False`)."""
    return extra(model.model_fields[name], "flag") is not False


def _is_whole(annotation) -> bool:
    """Whether a field's type is Whole (also inside `Whole | None`)."""
    return annotation is int or any(_is_whole(arg) for arg in get_args(annotation) if arg is not type(None))


class OutOfBounds(ValueError):
    """A value outside its declared range; the message says which range, for a person."""


@dataclass(frozen=True)
class Bound:
    """The closed range [low, high] of one setting, named as callers write it; made by `bound`."""

    name: str
    low: float
    high: float
    whole: bool = False

    def problem(self, value) -> str | None:
        """None when `value` is in range, else why not."""
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if number and self.low <= value <= self.high and (not self.whole or value == int(value)):
            return None
        return f"{self.name} must be {self.range()}, not {value!r}"

    def range(self) -> str:
        """'a number from 0 to 1', 'a whole number from 1 to 4096'."""
        if self.whole:
            return f"a whole number from {int(self.low)} to {int(self.high)}"
        return f"a number from {self.low:g} to {self.high:g}"

    def check(self, value) -> int | float:
        """`value` as an int (whole) or a float; raises OutOfBounds otherwise."""
        problem = self.problem(value)
        if problem:
            raise OutOfBounds(problem)
        return int(value) if self.whole else float(value)

    def parse(self, text: str) -> int | float:
        """A flag's or variable's text, as a checked number: '0.5' -> 0.5."""
        try:
            value = float(str(text).strip())
        except ValueError:
            raise OutOfBounds(f"{self.name} must be {self.range()}, not {text!r}") from None
        return self.check(value)

    def up_to(self, high: float) -> Bound:
        """The same setting with a lower ceiling (an operator's cap)."""
        return replace(self, high=min(self.high, high))

    def renamed(self, name: str) -> Bound:
        return replace(self, name=name)


def extra(field: FieldInfo, name: str, default=None):
    """One of `setting`'s declarations of a field: env, flag, key, stricter, metavar."""
    return (field.json_schema_extra or {}).get(name, default)


def key_of(model: type[BaseModel], name: str) -> str:
    """The name a person writes for a field (in a policy file, in a message)."""
    return extra(model.model_fields[name], "key") or name


def problem_text(model: type[BaseModel], error: dict) -> str:
    """One pydantic error as a sentence that names the setting and its declared range:
    'threshold must be a number from 0 to 1, not 7'."""
    name = next((str(part) for part in error["loc"] if isinstance(part, str)), "")
    field = model.model_fields.get(name) or next((f for f in model.model_fields.values() if f.alias == name), None)
    key = extra(field, "key") or name if field else name
    value = error.get("input")
    if field is not None and any(hasattr(m, "ge") for m in field.metadata):
        return (
            field_bound(model, next(n for n, f in model.model_fields.items() if f is field)).renamed(key).problem(value)
            or f"{key}: {error['msg']}"
        )
    if field is not None and field.annotation is str:
        longest = next((m.max_length for m in field.metadata if getattr(m, "max_length", None)), None)
        return f"{key} must be a text" + (f" of at most {longest:,} characters" if longest else "")
    if error["type"] == "literal_error":
        return f"{key} must be {error['ctx']['expected']}, not {value!r}"
    message = error["msg"].removeprefix("Value error, ")
    return message if key in message else f"{key}: {message}"


def problems(model: type[BaseModel], exc: ValidationError) -> str:
    """Every error of one validation, joined into one line."""
    return "; ".join(dict.fromkeys(problem_text(model, e) for e in exc.errors(include_url=False)))
