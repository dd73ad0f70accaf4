"""Reading Llama Guard's answer. Never raises; what cannot be read fails closed.

`parse_verdict(raw, policy) -> ParsedAnswer(safe, categories, parsed)`:

    "safe"                  -> safe
    "\\n\\nsafe<|eot_id|>"     -> safe (Guard 3 via its own template; special tokens left in)
    "unsafe\\nS1,S10"        -> unsafe, S1 and S10 (mapped back through the policy)
    "unsafe \\n S1, S2\\n"    -> unsafe, S1 and S2
    "unsafe"                -> unsafe, no categories given
    "unsafe\\nS99"           -> unsafe, S99 kept as "Unknown category"
    "I cannot help"         -> unsafe, parsed=False (the caller keeps the raw text)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from guard.policy import Policy
from guard.taxonomy import Category

UNKNOWN = "Unknown category"
_CODE = re.compile(r"\b[Ss]\s*(\d{1,2})\b")
_SPECIAL = re.compile(r"<\|[A-Za-z0-9_]+\|>|</s>")


@dataclass(frozen=True)
class ParsedAnswer:
    safe: bool
    categories: tuple[Category, ...]
    parsed: bool  # False: not an answer in the format; then safe is False


def parse_verdict(raw: str | None, policy: Policy | None = None) -> ParsedAnswer:
    """Read a Llama Guard answer; codes are mapped back through `policy` (the prompt's
    S1..Sn numbering of the enabled categories), unknown codes kept as unknown."""
    try:
        return _parse(raw, policy or Policy())
    except Exception:  # noqa: BLE001 - a parser bug must fail closed too, never raise
        return ParsedAnswer(False, (), False)


def _parse(raw: str | None, policy: Policy) -> ParsedAnswer:
    if not isinstance(raw, str):
        return ParsedAnswer(False, (), False)
    text = _SPECIAL.sub("\n", raw)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0].lower().rstrip(".") if lines else ""
    if first == "safe":
        return ParsedAnswer(True, (), True)
    if first != "unsafe" and not (first.startswith("unsafe") and _CODE.match(first[6:].lstrip(" :,-"))):
        return ParsedAnswer(False, (), False)
    codes: list[str] = []
    for match in _CODE.finditer(" ".join(lines)[6:]):
        code = f"S{int(match.group(1))}"
        if code not in codes:
            codes.append(code)
    categories = tuple(policy.category_for(code) or Category(code, UNKNOWN) for code in codes)
    return ParsedAnswer(False, categories, True)
