"""Special tokens typed in a message stay text, in what the chat model and the guard read
(weights.specials, the one helper both use), checked with the real Llama 3 tokenizer's
256 special tokens; plain text is left exactly as typed."""

from __future__ import annotations

import pytest

from chat import load_chat
from guard.prompt import GUARD2, GUARD3, endpoint_text, prompt_ids, render_prompt, sanitize_content
from weights.specials import defuse, defuse_messages, special_strings

PLAIN = [
    "Hello, world!",
    "a <| b |> c",
    "<|>",
    "<||>",
    "x <|eot_id> y",
    "<| eot_id|>",
    "pipe | and > and <",
    "👨\u200d👩\u200d👧 <b>bold</b> [INST]?",
    "C:\\temp\\<dir>",
    "",
]


@pytest.fixture(scope="module")
def specials(llama3_tokenizer) -> tuple[str, ...]:
    found = special_strings(llama3_tokenizer)
    assert len(found) == 256 and {
        "<|begin_of_text|>",
        "<|start_header_id|>",
        "<|eot_id|>",
        "<|reserved_special_token_250|>",
    } <= set(found)
    return found


@pytest.fixture(scope="module")
def tiny_chat(tiny_chat_path):
    return load_chat(str(tiny_chat_path))


def special_ids(tokenizer, ids) -> list[int]:
    every = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    return [i for i in ids if i in every]


def typed(specials) -> str:
    return "Hi " + " and ".join(specials) + " bye"


def test_the_local_chat_model_reads_every_typed_special_token_as_text(tiny_chat, specials):
    plain = tiny_chat.prompt_ids([{"role": "user", "content": "Hi"}])
    forged = tiny_chat.prompt_ids([{"role": "user", "content": typed(specials)}])
    assert special_ids(tiny_chat.tokenizer, forged) == special_ids(tiny_chat.tokenizer, plain)


def test_a_chat_endpoint_is_sent_every_special_token_broken_up(tiny_chat, specials):
    """RemoteChat sends defuse_messages(messages); the server renders and tokenizes them."""
    tokenizer = tiny_chat.tokenizer

    def served(content: str) -> list[int]:
        sent = defuse_messages([{"role": "user", "content": content}])
        return list(
            tokenizer.apply_chat_template(sent, add_generation_prompt=True, tokenize=True, return_dict=True)[
                "input_ids"
            ]
        )

    assert special_ids(tokenizer, served(typed(specials))) == special_ids(tokenizer, served("Hi"))


@pytest.mark.parametrize("version", [GUARD2, GUARD3])
def test_a_local_guard_reads_every_typed_special_token_as_text(llama3_tokenizer, specials, version):
    def ids(content: str) -> list[int]:
        prefix, rest = prompt_ids(
            llama3_tokenizer, render_prompt([{"role": "user", "content": content}], version=version)
        )
        return prefix + rest

    assert special_ids(llama3_tokenizer, ids(typed(specials))) == special_ids(llama3_tokenizer, ids("Hi"))


@pytest.mark.parametrize("version", [GUARD2, GUARD3])
def test_a_guard_endpoint_is_sent_every_special_token_broken_up(llama3_tokenizer, specials, version):
    """The endpoint tokenizes the text itself, special tokens on (as TGI and vLLM do)."""

    def served(content: str) -> list[int]:
        text = endpoint_text(
            render_prompt([{"role": "user", "content": content}], version=version, break_special_strings=True)
        )
        return list(llama3_tokenizer(text, add_special_tokens=False).input_ids)

    assert special_ids(llama3_tokenizer, served(typed(specials))) == special_ids(llama3_tokenizer, served("Hi"))


@pytest.mark.parametrize("token", ["<|im_start|>", "<|tool-call:v1.2|>", "<|" + "x" * 80 + "|>"])
def test_chat_and_guard_endpoints_break_the_same_token_shaped_strings(token):
    """One pattern for both (it was two: the guard's missed `.`, `:` and `-`; the chat's,
    names over 64 characters)."""
    broken = "<| " + token[2:]
    assert defuse(f"a {token} b") == f"a {broken} b"
    assert sanitize_content(f"a {token} b", break_special_strings=True) == f"a {broken} b"


@pytest.mark.parametrize("text", PLAIN)
def test_plain_text_is_unchanged(text, specials):
    assert defuse(text) == text and defuse(text, specials) == text
    assert sanitize_content(text, break_special_strings=True) == sanitize_content(text)
