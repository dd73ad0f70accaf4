"""Reading Llama Guard's answer. Never raises; what cannot be read fails closed.

    "safe"                 -> safe
    "unsafe\\nS1,S10"       -> unsafe, S1 and S10 (mapped back through the policy)
    "unsafe \\n S1, S2\\n"   -> unsafe, S1 and S2
    "unsafe"               -> unsafe, no categories given
    "unsafe\\nS99"          -> unsafe, S99 kept as "Unknown category"
    "I cannot help"        -> unsafe, parsed=False (the raw text is kept by the caller)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from guard.policy import Policy
from guard.taxonomy import Category

_CODE = re.compile(r"\b[Ss]\s*(\d{1,2})\b")


@dataclass(frozen=True)
class ParsedAnswer:
    safe: bool
    categories: tuple[Category, ...]
    parsed: bool


def parse_verdict(raw: str | None, policy: Policy | None = None) -> ParsedAnswer:
    """Read a Llama Guard answer; codes are mapped back through `policy` (the prompt's
    S1..Sn numbering of the enabled categories)."""
    policy = policy or Policy()
    if not isinstance(raw, str):
        return ParsedAnswer(False, (), False)
    lines = [line.strip() for line in raw.strip().splitlines() if line.strip()]
    first = lines[0].lower().rstrip(".") if lines else ""
    if first == "safe":
        return ParsedAnswer(True, (), True)
    if first != "unsafe" and not (first.startswith("unsafe") and _CODE.search(first)):
        return ParsedAnswer(False, (), False)
    codes: list[str] = []
    for match in _CODE.finditer(" ".join(lines)):
        code = f"S{int(match.group(1))}"
        if code not in codes:
            codes.append(code)
    categories = tuple(policy.category_for(code) or Category(code, "Unknown category") for code in codes)
    return ParsedAnswer(False, categories, True)
