"""chat.context: the oldest turns make room; the system prompt and the newest message stay."""

from __future__ import annotations

import pytest

from chat import ContextTooLong, GenerationSettings
from chat.context import fit_messages
from chat.local import LocalChat
from weights import load_causal_lm


def one_token_per_character(messages) -> int:
    return sum(len(m["content"]) for m in messages)


def test_context_fit_drops_oldest_turns_and_reports_it():
    count = one_token_per_character
    msgs = [{"role": "system", "content": "s" * 10}]
    for i in range(3):
        msgs += [{"role": "user", "content": f"u{i}" + "x" * 18}, {"role": "assistant", "content": f"a{i}" + "y" * 18}]
    msgs.append({"role": "user", "content": "new" + "z" * 17})
    fitted = fit_messages(msgs, count, context_window=100, reply_room=30)
    assert fitted.dropped == 4
    assert fitted.messages == [msgs[0], msgs[5], msgs[6], msgs[7]]
    assert fit_messages(msgs, count, 1000, 30).dropped == 0
    with pytest.raises(ContextTooLong, match="too long"):
        fit_messages([msgs[0], {"role": "user", "content": "q" * 200}], count, 100, 30)


def test_without_a_system_prompt_the_newest_message_still_stays():
    msgs = [{"role": "user", "content": "a" * 50}, {"role": "assistant", "content": "b" * 50},
            {"role": "user", "content": "c" * 50}]
    fitted = fit_messages(msgs, one_token_per_character, context_window=80, reply_room=20)
    assert fitted.messages == [msgs[2]] and fitted.dropped == 2
    with pytest.raises(ContextTooLong, match="There is no message"):
        fit_messages([], one_token_per_character, 80, 20)


def test_real_tokenizer_context_fit_on_a_small_window(tiny_chat_path):
    model, tokenizer = load_causal_lm(str(tiny_chat_path))
    small = LocalChat(model, tokenizer, "tiny")
    assert small.context_window == 8192  # Llama 3
    small.context_window = 120
    def turn(i: int) -> list[dict]:
        return [{"role": "user", "content": f"question {i} " * 5}, {"role": "assistant", "content": f"answer {i} " * 5}]

    msgs = [{"role": "system", "content": "Be kind."}] + turn(1) + turn(2) + turn(3) + [{"role": "user", "content": "last"}]
    fitted = small.fit(msgs, GenerationSettings(max_new_tokens=40))
    assert fitted.dropped >= 2 and fitted.dropped % 2 == 0 and fitted.messages[0]["content"] == "Be kind."
    assert fitted.messages[-1]["content"] == "last" and len(small.prompt_ids(fitted.messages)) + 40 <= 120
    assert fitted.messages[1:-1] == msgs[1 + fitted.dropped:-1]  # the newest history stays, in order
    with pytest.raises(ContextTooLong, match="The message is too long"):
        list(small.stream([{"role": "user", "content": "word " * 500}], GenerationSettings(max_new_tokens=40)))
