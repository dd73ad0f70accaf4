"""The range of every number and the length of every text a caller may set, declared once.

The /v1 API (`moderation.api.schema`), the page and `/chat` (`moderation.policy.
turn_settings`), the operator's policy (`OperatorPolicy`, the policy file) and the
command line (`moderation.settings`) all check against these values, so they accept
exactly the same ranges. A number is an int or a float (never a bool, NaN or infinity);
a whole number may be written 16 or 16.0:

>>> TOP_P.check(0.5), CHECK_EVERY.check(16.0)
(0.5, 16)
>>> TOP_P.problem(1.5)
'top_p must be a number from 0 to 1, not 1.5'
>>> MAX_NEW_TOKENS.up_to(512).problem(600)
'max_new_tokens must be a whole number from 1 to 512, not 600'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


class OutOfBounds(ValueError):
    """A value outside its declared range; the message says which range, for a person."""


@dataclass(frozen=True)
class Bound:
    """The closed range [low, high] of one setting, named as callers write it."""

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

    def up_to(self, high: float) -> "Bound":
        """The same setting with a lower ceiling (an operator's cap)."""
        return replace(self, high=min(self.high, high))


# Sampling. top_p 0 keeps only the most likely token (transformers keeps at least one;
# chat.remote sends it to an endpoint as greedy), as OpenAI accepts it.
TEMPERATURE = Bound("temperature", 0.0, 2.0)
TOP_P = Bound("top_p", 0.0, 1.0)
MAX_NEW_TOKENS = Bound("max_new_tokens", 1, 4096, whole=True)  # a visitor's cap is the operator's value
# Moderation.
THRESHOLD = Bound("threshold", 0.0, 1.0)
CHECK_EVERY = Bound("check_every", 0, 4096, whole=True)  # 0: only the finished reply
# Texts, in characters (after `moderation.turn.clean_message`).
MAX_MESSAGE_CHARS = 16_000
MAX_SYSTEM_CHARS = 4_000

SETTINGS = (TEMPERATURE, TOP_P, MAX_NEW_TOKENS, THRESHOLD, CHECK_EVERY)
