"""chat.streamer: the token pipe and incremental text, on the real Llama 3 tokenizer."""

from __future__ import annotations

import random
import threading

import pytest
import torch

from chat.streamer import IncrementalText, TokenPipe

TEXT = "Café ☕ costs 3€, 東京 is big 🚲🚲 and naïve—yes!\n\nNew paragraph <|eot_id|> as text."


def streamed(tokenizer, ids: list[int]) -> list[str]:
    text = IncrementalText(tokenizer)
    return [text.add([i]) for i in ids] + [text.flush()]


def test_deltas_concatenate_to_the_decoded_text(llama3_tokenizer):
    ids = llama3_tokenizer(TEXT, add_special_tokens=False, split_special_tokens=True).input_ids
    deltas = streamed(llama3_tokenizer, ids)
    assert "".join(deltas) == TEXT
    assert all("\ufffd" not in d for d in deltas)  # emoji bytes split over tokens are held back, then whole
    assert sum(bool(d) for d in deltas) > len(ids) // 2  # about one delta per token, not per word


@pytest.mark.parametrize("seed", range(4))
def test_random_ids_and_special_tokens(llama3_tokenizer, seed):
    rng = random.Random(seed)
    ids = [rng.randrange(128_256) for _ in range(300)] + [128009]
    assert "".join(streamed(llama3_tokenizer, ids)) == llama3_tokenizer.decode(ids, skip_special_tokens=True)


def test_pipe_skips_the_prompt_and_ends():
    pipe = TokenPipe()
    got = []
    reader = threading.Thread(target=lambda: got.extend(pipe))
    reader.start()
    pipe.put(torch.tensor([[1, 2, 3]]))  # the prompt, as generate sends it first
    pipe.put(torch.tensor([7]))
    pipe.put(torch.tensor([8]))
    pipe.end()
    reader.join(5)
    assert got == [[7], [8]]
