"""Why it was flagged (issue 21): a message judged in several windows keeps where its
highest-scoring window lies, as character offsets into the message as sent.

The offline classifier maps its word-piece windows back to characters with the fast
tokenizer's offset mapping (real model, real tokenizer); Llama Guard keeps the spans
guard.window cuts (the tiny random Llama Guard with a 512-token window, and the fake
one-token-per-character backend of test_guard_window, whose Bomb window is known to score
highest). When the guard read a view of the text (hidden characters removed), the span is
mapped back to the text as typed (guard.spans)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_guard_window import NUMBERS, WINDOW, Marking, filler, judged_texts
from test_guard_window import small_guard as small_guard  # the tiny 512-token Llama Guard fixture
from test_offline_long_input import BOMB, FILLER, PARTY

from guard.llama_guard import LlamaGuard
from guard.normalize import guard_text, spaced_text
from guard.offline import OfflineGuard
from guard.offline_model import char_spans, windows
from guard.spans import map_back

HIDDEN = ["\u200b", "\u2060", "\u00ad", "\ufe0f", "\u3164", "\u00a0"]  # zero-width, joiner, soft hyphen, ...
PIECES = [*"ab cé.\n", *HIDDEN, "ﬁ", "Ａ", "e\u0301", "\u1100\u1161"]  # NFKC: ligature, full width, composing
TEXT = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@pytest.fixture(scope="module")
def offline() -> OfflineGuard:
    return OfflineGuard.load()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def within(window, text: str) -> bool:
    return 0 <= window.start <= window.end <= len(text) and 1 <= window.index <= window.count


# ---- offline classifier ----------------------------------------------------------------------


@pytest.mark.parametrize("side", ["prompt", "reply"])
def test_offline_the_highest_window_holds_the_harmful_sentence_buried_in_benign_text(offline, side):
    text = PARTY + FILLER + " " + BOMB + FILLER * 2
    conversation = (
        user(text) if side == "prompt" else [*user("Tell me a story."), {"role": "assistant", "content": text}]
    )
    verdict = offline.check(conversation)
    window = verdict.highest_window
    assert window is not None and window.count >= 4 and not window.mapped and within(window, text)
    assert f"judged whole in {window.count} overlapping windows" in verdict.note
    assert BOMB in text[window.start : window.end]
    assert window.end - window.start < len(text) / 2  # a window, not the whole message


def test_offline_window_spans_are_the_word_pieces_each_window_reads(offline):
    net = offline.net
    text = PARTY * 2
    ids = net.ids(text)
    parts = windows(ids, *net.window_size(None))
    spans = net.window_spans(text)
    last_piece_end = net.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"][-1][1]
    assert len(parts) == len(spans) >= 2 and spans[0][0] == 0 and spans[-1][1] == last_piece_end
    for part, (a, b) in zip(parts, spans):
        assert net.ids(text[a:b])[1:-1] == part[1:-1]  # the edges may be the tail or head of a word


def test_offline_one_window_has_nothing_to_highlight(offline):
    assert offline.check(user("How do I make a pipe bomb?")).highest_window is None


def test_offline_a_span_in_text_with_hidden_characters_is_mapped_back_to_the_text_as_typed(offline):
    hidden = PARTY + FILLER + " " + BOMB.replace("pipe bomb", "pi\u200bpe b\u00adomb") + FILLER * 2
    verdict = offline.check(user(hidden))
    window = verdict.highest_window
    assert window.mapped and within(window, hidden)
    assert "pi\u200bpe b\u00adomb" in hidden[window.start : window.end]
    read = guard_text(hidden)
    plain = offline.check(user(read)).highest_window  # the same text without the hidden characters
    assert (plain.index, plain.count) == (window.index, window.count)
    assert guard_text(hidden[window.start : window.end]) == read[plain.start : plain.end]


# ---- Llama Guard -----------------------------------------------------------------------------


def test_llama_guard_keeps_the_span_of_the_window_that_scored_highest():
    message = filler(150) + " Bomb " + filler(300) + " Knife " + filler(150)
    text = "  " + message  # what the guard strips counts in the offsets of the text as sent
    verdict = LlamaGuard(Marking()).check(user(text))
    window = verdict.highest_window
    assert within(window, text) and not window.mapped and window.count >= 4
    assert "Bomb" in text[window.start : window.end] and "Knife" not in text[window.start : window.end]
    hidden = text.replace("Bomb", "Bo\u200bmb")
    mapped = LlamaGuard(Marking()).check(user(hidden)).highest_window
    assert mapped.mapped and "Bo\u200bmb" in hidden[mapped.start : mapped.end]
    assert LlamaGuard(Marking()).check(user("Bomb")).highest_window is None  # one window: all of it


def test_tiny_llama_guard_span_is_the_window_it_judged_with_the_highest_score(small_guard):  # noqa: F811
    guard, fed = small_guard
    text = " " + NUMBERS.replace(" 1200", "\u200b 1200")  # a hidden character (one reading): mapped back
    fed.clear()
    verdict = guard.check(user(text), threshold=1.0)
    parts = judged_texts(guard, fed)
    window = verdict.highest_window
    assert window.count == len(parts) >= 3 and window.mapped and within(window, text)
    assert guard_text(text[window.start : window.end]) == parts[window.index - 1]
    scores = [guard.check(user(part), threshold=1.0).score for part in parts]  # each window alone
    assert max(range(len(scores)), key=scores.__getitem__) == window.index - 1
    assert verdict.score == pytest.approx(max(scores), abs=1e-5)
    assert WINDOW == guard.backend.context_window


# ---- spans stay inside the text ----------------------------------------------------------------


@settings(max_examples=60)
@given(TEXT, st.integers(0, 80), st.integers(0, 80), st.sampled_from([guard_text, spaced_text]))
def test_a_mapped_back_span_is_always_inside_the_text(text, a, b, read):
    viewed = read(text)
    a, b = sorted((min(a, len(viewed)), min(b, len(viewed))))
    start, end = map_back((a, b), text, read)
    assert 0 <= start <= end <= len(text)
    if viewed[a:b].strip():  # what the window read lies in what is highlighted
        assert viewed[a:b].strip() in read(text[start:end])


@settings(max_examples=30)
@given(TEXT, st.integers(2, 6), st.integers(0, 1))
def test_word_piece_spans_are_always_inside_the_text(offline, text, size, overlap):
    offsets = offline.net.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    spans = char_spans([tuple(o) for o in offsets], size, overlap, len(text))
    assert spans and all(0 <= a <= b <= len(text) for a, b in spans)


@settings(max_examples=15)
@given(st.lists(st.sampled_from(["cake", "Bomb", "BOMB", "Knife", "\u200b", " ", "\u00a0", "ﬁ", "\n"]), max_size=700))
def test_llama_guard_spans_are_always_inside_the_text(words):
    text = "".join(words)
    verdict = LlamaGuard(Marking()).check(user(text))
    if verdict.highest_window is not None:
        assert within(verdict.highest_window, text)
