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
    msgs = [
        {"role": "user", "content": "a" * 50},
        {"role": "assistant", "content": "b" * 50},
        {"role": "user", "content": "c" * 50},
    ]
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

    msgs = (
        [{"role": "system", "content": "Be kind."}]
        + turn(1)
        + turn(2)
        + turn(3)
        + [{"role": "user", "content": "last"}]
    )
    fitted = small.fit(msgs, GenerationSettings(max_new_tokens=40))
    assert fitted.dropped >= 2 and fitted.dropped % 2 == 0 and fitted.messages[0]["content"] == "Be kind."
    assert fitted.messages[-1]["content"] == "last" and len(small.prompt_ids(fitted.messages)) + 40 <= 120
    assert fitted.messages[1:-1] == msgs[1 + fitted.dropped : -1]  # the newest history stays, in order
    with pytest.raises(ContextTooLong, match="The message is too long"):
        list(small.stream([{"role": "user", "content": "word " * 500}], GenerationSettings(max_new_tokens=40)))


# ---- bounded work: linear in the history (issue 18, finding 3) ----------------------------


def quadratic_fit(messages, count_tokens, context_window, reply_room):
    """The old fit, kept as the oracle: drop two of the oldest a round, re-render the rest."""
    system = messages[:1] if messages[0]["role"] == "system" else []
    history, newest, dropped = list(messages[len(system) : -1]), list(messages[-1:]), 0
    while True:
        candidate = system + history + newest
        if count_tokens(candidate) + reply_room <= context_window:
            return candidate, dropped
        if not history:
            return None, None
        step = 2 if len(history) >= 2 else 1
        history, dropped = history[step:], dropped + step


class CountingTokenizer:
    """The real tokenizer, counting every tokenizer call and chat-template render."""

    def __init__(self, tokenizer):
        self._tokenizer, self.calls = tokenizer, 0

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._tokenizer(*args, **kwargs)

    def apply_chat_template(self, *args, **kwargs):
        self.calls += 1
        return self._tokenizer.apply_chat_template(*args, **kwargs)


@pytest.fixture(scope="module")
def tiny_local_chat(tiny_chat_path):
    model, tokenizer = load_causal_lm(str(tiny_chat_path))
    chat = LocalChat(model, tokenizer, "tiny")
    chat.tokenizer = CountingTokenizer(chat.tokenizer)
    return chat


def varied_history(pairs: int, seed: int) -> list[dict]:
    """Turns of uneven lengths, with edge whitespace and typed special tokens (defused)."""
    import random

    rng = random.Random(seed)
    words = ["bread", "  flour ", "water\n", "<|eot_id|>", "salt", "yeast", "🍞", "ok", "\n\nwhy?"]

    def text() -> str:
        return "".join(rng.choice(words) + " " for _ in range(rng.randint(0, 12)))

    msgs = []
    for _ in range(pairs):
        msgs += [{"role": "user", "content": text() or "hi"}, {"role": "assistant", "content": text() or "yes"}]
    return msgs + [{"role": "user", "content": "last " + text()}]


@pytest.mark.parametrize("pairs", [10, 100, 1000])
def test_fitting_makes_a_bounded_number_of_tokenizer_calls_whatever_the_history(tiny_local_chat, pairs):
    chat, settings = tiny_local_chat, GenerationSettings(max_new_tokens=40)
    chat.context_window = 300
    msgs = [{"role": "system", "content": "Be kind."}] + varied_history(pairs, seed=pairs)
    chat.tokenizer.calls = 0
    fitted = chat.fit(msgs, settings)
    assert chat.tokenizer.calls <= 8, f"{chat.tokenizer.calls} tokenizer calls for {pairs} turns"
    assert fitted.messages[-1] == msgs[-1] and len(chat.prompt_ids(fitted.messages)) + 40 <= 300


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("window", [60, 150, 400, 8192])
def test_fitting_keeps_exactly_what_the_old_fit_kept(tiny_local_chat, seed, window):
    """On the real Llama 3 tokenizer and template: the same messages as the quadratic fit."""
    chat, settings = tiny_local_chat, GenerationSettings(max_new_tokens=20)
    chat.context_window = window
    system = [{"role": "system", "content": " Be brief. "}] if seed % 2 else []
    msgs = system + varied_history(12 + seed, seed)
    expected, dropped = quadratic_fit(msgs, lambda m: len(chat.prompt_ids(m)), window, 20)
    if expected is None:
        with pytest.raises(ContextTooLong):
            chat.fit(msgs, settings)
        return
    fitted = chat.fit(msgs, settings)
    assert (fitted.messages, fitted.dropped) == (expected, dropped)


def test_an_odd_history_and_an_additive_count_match_the_old_fit():
    """The plain function, with a count that has per-message overhead: same as the old fit."""

    def count(messages):
        return 3 + sum(len(m["content"]) + 4 for m in messages)

    msgs = [{"role": "system", "content": "s" * 7}] + [
        {"role": "user" if i % 2 else "assistant", "content": "x" * (i % 9)} for i in range(1, 30)
    ]
    for window in range(20, 260, 7):
        expected, dropped = quadratic_fit(msgs, count, window, 10)
        if expected is None:
            with pytest.raises(ContextTooLong):
                fit_messages(msgs, count, window, 10)
        else:
            fitted = fit_messages(msgs, count, window, 10)
            assert (fitted.messages, fitted.dropped) == (expected, dropped), window
