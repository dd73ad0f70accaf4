"""Per-category scores from Llama Guard: p(unsafe) x p(category | unsafe).

Llama Guard answers `unsafe\\nS1,S10`. With the Llama 3 tokenizer that is

    "unsafe" "\\n" "S" "1" ",S" "10"

so after the forced `unsafe \\n S` the next token is the first code's number, one token
for any code up to S999 ("1", "10", "123"). Its distribution, normalised over the codes the
prompt listed, is p(code | unsafe): the probability that the model names that category
first, given that it answers unsafe. Times the unsafe score it gives a score per category
that sums to the unsafe score:

    score 0.9, code logits {S1: 2.0, S2: 0.0} -> {S1: 0.9 * 0.881, S2: 0.9 * 0.119}

Backends report `code_logits` (prompt code -> logit or log-probability, any constant
offset: only differences count) in their Assessment; `category_scores` maps them back
through the policy (the prompt's S1..Sn are the enabled categories renumbered) and
normalises over the policy's codes. A code the backend did not report (an endpoint's top
log-probabilities hold only a few tokens) gets 0.
"""

from __future__ import annotations

import math
import re

from guard.policy import Policy

CATEGORY_BLOCK = re.compile(r"<BEGIN UNSAFE CONTENT CATEGORIES>\n(.*?)<END UNSAFE CONTENT CATEGORIES>", re.S)
_CODE_LINE = re.compile(r"^(S\d+): ", re.M)
ANSWER_HEAD = "unsafe\nS"  # what the answer reads before the first code's number


def prompt_codes(prompt_text: str) -> list[str]:
    """The codes a rendered prompt lists, in order (S1..Sn).

    >>> prompt_codes("<BEGIN UNSAFE CONTENT CATEGORIES>\\nS1: Hate. \\nS2: Privacy. \\n<END UNSAFE CONTENT CATEGORIES>")
    ['S1', 'S2']
    """
    block = CATEGORY_BLOCK.search(prompt_text)
    return list(dict.fromkeys(_CODE_LINE.findall(block.group(1)))) if block else []


def code_tokens(tokenizer, unsafe_id: int, codes: list[str]) -> tuple[list[int], dict[str, int]] | None:
    """(ids forced after `unsafe`, {code: the one token that then names it}) for `codes`, read
    from how the tokenizer writes `unsafe\\n<code>`; None when the codes do not each end in
    one distinct token after a shared prefix (not the Llama 3 tokenizer).

    Llama 3: (["\\n", "S"], {"S1": "1", "S10": "10", ...}) as ids ([198, 50], {"S1": 16, "S10": 605}).
    """
    tails = []
    for code in codes:
        ids = tokenizer.encode("unsafe\n" + code, add_special_tokens=False)
        if not ids or ids[0] != unsafe_id:
            return None
        tails.append(ids[1:])
    if not tails:
        return None
    forced = tails[0][:-1]
    if any(tail[:-1] != forced for tail in tails):
        return None
    last = {code: tail[-1] for code, tail in zip(codes, tails)}
    return (forced, last) if len(set(last.values())) == len(last) else None


def category_scores(score: float | None, code_logits: dict[str, float], policy: Policy) -> dict[str, float]:
    """{category code: score x p(category | unsafe)} over the policy's enabled categories,
    normalised over the codes the backend reported (the others get 0); {} without a score
    or without any reported code.

    >>> from guard.policy import Policy
    >>> p = Policy(disabled=frozenset({"S1"}))  # the prompt's S1 is then S2 Non-Violent Crimes
    >>> s = category_scores(0.5, {"S1": math.log(3), "S2": 0.0}, p)
    >>> round(s["S2"], 3), round(s["S3"], 3), round(s["S4"], 3)
    (0.375, 0.125, 0.0)
    """
    if score is None or not math.isfinite(score):
        return {}
    numbered = policy.numbered()
    known = {
        code: float(code_logits[code])
        for code, _ in numbered
        if code in code_logits and math.isfinite(code_logits[code])
    }
    if not known:
        return {}
    top = max(known.values())
    weights = {code: math.exp(logit - top) for code, logit in known.items()}
    total = sum(weights.values())
    return {category.code: score * weights.get(code, 0.0) / total for code, category in numbered}


def code_logprobs_from_top(tokens: list[str], tops: list[dict], before: str = "") -> dict[str, float]:
    """{prompt code: log-probability} from an endpoint's per-token top log-probabilities, at
    the token after the answer reads `unsafe\\nS` (`before`: answer text already given in
    the prompt); {} when the answer never gets there.

    >>> code_logprobs_from_top(["unsafe", "\\n", "S", "10"], [{}, {}, {}, {"10": -0.1, "1": -2.5, ",": -4.0}])
    {'S10': -0.1, 'S1': -2.5}
    """
    text = before
    for token, top in zip(tokens or [], tops or []):
        if text.lstrip() == ANSWER_HEAD:
            found: dict[str, float] = {}
            for key, logprob in (top or {}).items():
                if str(key).strip().isdigit() and isinstance(logprob, (int, float)):
                    code = f"S{int(str(key).strip())}"
                    found[code] = max(found.get(code, -math.inf), float(logprob))
            return found
        text += str(token)
        if len(text.lstrip()) > len(ANSWER_HEAD):
            break
    return {}
