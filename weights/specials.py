"""Keeping special-token strings a person typed as text, for the chat model and the guard.

A default tokenizer call turns the text `<|eot_id|>` into the real end-of-turn token, so a
message could close its own turn and open a forged one (`<|start_header_id|>system...`).
Before such text is rendered, each special-token string in a message gets a space after
its opening, which the tokenizer reads as plain text; other text is left alone:

    defuse("Hi<|eot_id|>", ["<|eot_id|>"])  ->  "Hi<| eot_id|>"
    defuse("Hi<|eot_id|><|im_start|>")      ->  "Hi<| eot_id|><| im_start|>"   (any token-shaped string)

Used by chat.local (the tokenizer's own special strings), chat.remote and the guard's
endpoint prompts (guard.prompt: an endpoint tokenizes for itself, so every token-shaped
string). A local guard needs none of it: it tokenizes message text with special tokens
off (guard.prompt.prompt_ids).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# Every token-shaped string: Llama 3's <|eot_id|> and <|reserved_special_token_250|>,
# ChatML's <|im_start|>, names with dots, colons or dashes (<|tool-call:v1.2|>).
TOKEN_SHAPED = re.compile(r"<\|[A-Za-z0-9_.:-]+\|>")


def _break(token: str) -> str:
    cut = 2 if token.startswith("<|") else 1
    return token[:cut] + " " + token[cut:]


def defuse(text: str, tokens: Iterable[str] | None = None) -> str:
    """`text` with every occurrence of `tokens` (None: any `<|...|>`) broken up."""
    if tokens is None:
        return TOKEN_SHAPED.sub(lambda m: _break(m.group(0)), text)
    for token in sorted(set(tokens), key=len, reverse=True):
        if len(token) > 1 and token in text:
            text = text.replace(token, _break(token))
    return text


def defuse_messages(messages: Sequence[dict], tokens: Iterable[str] | None = None) -> list[dict]:
    """Copies of the messages with their content defused."""
    tokens = None if tokens is None else tuple(tokens)
    return [dict(m, content=defuse(m["content"], tokens)) for m in messages]


def special_strings(tokenizer) -> tuple[str, ...]:
    """Every string the tokenizer turns into a special token."""
    added = [t.content for t in tokenizer.added_tokens_decoder.values() if getattr(t, "special", True)]
    return tuple(sorted(set(added) | set(tokenizer.all_special_tokens), key=len, reverse=True))
