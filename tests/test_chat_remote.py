"""chat.remote against a real `transformers serve` process on 127.0.0.1 (serving the
bundled SmolLM2), and against a port nobody listens on."""

from __future__ import annotations

import threading

import pytest
from serve import free_port, serve_model

from chat import ChatError, GenerationSettings, load_chat
from chat.remote import request_options
from weights.specials import defuse

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=40)
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def served():
    from weights import offline_chat_model

    with serve_model(offline_chat_model()) as url:
        yield url


@pytest.mark.slow
def test_remote_backend_streams_deltas_from_a_real_server(served):
    remote = load_chat(served)
    assert served in remote.label
    deltas = list(remote.stream(CAPITAL, GREEDY))
    assert len(deltas) > 2 and "Paris" in "".join(deltas)


@pytest.mark.slow
def test_stop_ends_a_remote_stream(served):
    remote = load_chat(served)
    stop = threading.Event()
    got = []
    for delta in remote.stream(
        [{"role": "user", "content": "Write a long poem."}],
        GenerationSettings(temperature=0.0, max_new_tokens=300),
        stop,
    ):
        got.append(delta)
        if len(got) == 3:
            stop.set()
    assert len(got) == 3


@pytest.mark.slow
def test_endpoint_that_answers_an_error_gives_a_clear_error(served):
    remote = load_chat("no-such/model", base_url=served)
    assert remote.model == "no-such/model"
    with pytest.raises(ChatError, match=r"The endpoint .* answered 400: Server is pinned to .*'no-such/model'"):
        list(remote.stream(CAPITAL, GREEDY))


def test_dead_endpoint_gives_a_clear_error():
    with pytest.raises(ChatError, match="Could not reach the endpoint .* is the server running"):
        load_chat(f"http://127.0.0.1:{free_port()}")


@pytest.mark.slow
def test_endpoint_that_goes_away_gives_a_clear_error():
    from weights import offline_chat_model

    with serve_model(offline_chat_model()) as url:
        remote = load_chat(url)
    with pytest.raises(ChatError, match="Could not reach the endpoint"):
        list(remote.stream(CAPITAL, GREEDY))


def test_greedy_requests_send_no_sampling_knobs():
    assert request_options(GREEDY) == {"max_tokens": 40, "temperature": 0.0}
    sampled = request_options(GenerationSettings(temperature=0.7, top_p=0.8, seed=3, repetition_penalty=1.1))
    assert sampled == {
        "max_tokens": 512,
        "temperature": 0.7,
        "top_p": 0.8,
        "seed": 3,
        "extra_body": {"repetition_penalty": 1.1},
    }


def test_token_shaped_strings_are_broken_up_for_endpoints():
    assert defuse("a<|eot_id|>b<|im_start|>c <|x y|>") == "a<| eot_id|>b<| im_start|>c <|x y|>"
    assert defuse("</s><s>", ["<s>", "</s>"]) == "< /s>< s>"
