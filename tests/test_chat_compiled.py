"""chat.compiled: static caches and a compiled decoding step give the same greedy tokens as
eager decoding (on the tiny random Llama 3 and SmolLM2-135M-Instruct), compile only while
loading (a reply never recompiles), and stay off on a CPU unless asked for."""

from __future__ import annotations

import threading

import pytest
import reference_templates
import tiny_models

from chat import ChatError, GenerationSettings, load_chat
from chat.compiled import buckets_for, wanted
from chat.workers import GenerationThreads


def greedy(tokens: int) -> GenerationSettings:
    return GenerationSettings(temperature=0.0, max_new_tokens=tokens)


def graphs_compiled() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def graph_breaks() -> int:
    from torch._dynamo.utils import counters

    return sum(counters["graph_break"].values())


def reply_ids(chat, messages, tokens: int) -> list[int]:
    """The greedy token ids of a reply, decoded as `stream` decodes (compiled or not), on
    one of the chat's generation threads (its caches are per thread)."""
    import torch

    out: list = []

    def run() -> None:
        ids = torch.tensor([chat.prompt_ids(messages)])
        settings = greedy(tokens)
        with torch.inference_mode():
            made = chat.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                **chat.generate_kwargs(settings),
                **chat.decode_kwargs(ids.shape[1], settings),
            )
        out.append(made[0, ids.shape[1] :].tolist())

    chat.workers.on_each(lambda _: run(), 1)
    return out[0]


def test_buckets_grow_by_four_up_to_the_window_or_8192():
    assert buckets_for(8192) == (1024, 4096, 8192)
    assert buckets_for(131_072) == (1024, 4096, 8192)
    assert buckets_for(2048) == (1024, 2048)
    assert buckets_for(300) == (300,)


def test_auto_compiles_on_cuda_only_and_a_bad_mode_is_named():
    assert wanted("auto", "cuda") and not wanted("auto", "cpu")
    assert wanted("on", "cpu") and not wanted("off", "cuda")
    with pytest.raises(ValueError, match="compile must be one of auto, on, off, not 'fast'"):
        wanted("fast", "cpu")


def test_on_each_runs_once_on_as_many_different_threads_which_are_kept():
    workers = GenerationThreads(keep=3)
    seen: list[tuple[int, int]] = []
    workers.on_each(lambda i: seen.append((i, threading.get_ident())), 3)
    assert sorted(i for i, _ in seen) == [0, 1, 2] and len({t for _, t in seen}) == 3
    later: list[int] = []
    for _ in range(3):
        workers.run(lambda: later.append(threading.get_ident())).wait(10)
    assert set(later) <= {t for _, t in seen}  # the warmed threads are the ones reused
    workers.close()


def test_on_each_raises_the_first_error_of_a_job():
    workers = GenerationThreads(keep=2)

    def fail(i: int) -> None:
        raise RuntimeError(f"job {i} failed")

    with pytest.raises(RuntimeError, match="job . failed"):
        workers.on_each(fail, 2)
    workers.close()


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory):
    chat = load_chat(
        str(tiny_models.build_tiny_llama(tmp_path_factory.mktemp("tiny"), reference_templates.LLAMA3_INSTRUCT, seed=1))
    )
    yield chat
    chat.close()


def test_auto_leaves_a_cpu_model_eager(tiny_chat):
    assert tiny_chat.compile("auto") == {"compiled": False}
    assert tiny_chat.compiled is None and tiny_chat.decode_kwargs(10, greedy(5)) == {}


@pytest.mark.slow
def test_compiled_decoding_gives_the_eager_greedy_tokens_and_never_recompiles_in_a_reply(tiny_chat):
    short = [{"role": "user", "content": "Name three fruits."}]
    longer = [{"role": "user", "content": "Tell me about bicycles. " * 12}]
    eager = {name: reply_ids(tiny_chat, m, 24) for name, m in (("short", short), ("longer", longer))}
    eager_text = "".join(tiny_chat.stream(short, greedy(24)))
    said: list[str] = []
    graphs_before, breaks_before = graphs_compiled(), graph_breaks()
    try:
        assert tiny_chat.compile("on", said.append, buckets=(64, 128)) == {"compiled": True, "buckets": [64, 128]}
        assert said and all(s.startswith("compiling the decoding step") for s in said)
        compiled_graphs = graphs_compiled()
        # one whole graph per bucket at most (the second makes the length dynamic): the
        # per-layer core sharing on a CPU (compute.cpu) does not break it into layers
        assert 0 < compiled_graphs - graphs_before <= 2 and graph_breaks() == breaks_before
        # the short prompt fits the 64-token cache, the longer one the 128-token one
        assert tiny_chat.compiled.bucket(len(tiny_chat.prompt_ids(short)) + 24) == 64
        assert tiny_chat.compiled.bucket(len(tiny_chat.prompt_ids(longer)) + 24) == 128
        for _ in range(2):  # the caches are reused, emptied, by the next reply
            assert reply_ids(tiny_chat, short, 24) == eager["short"]
            assert reply_ids(tiny_chat, longer, 24) == eager["longer"]
        assert "".join(tiny_chat.stream(short, greedy(24))) == eager_text
        assert tiny_chat.decode_kwargs(200, greedy(24)) == {}  # above the largest bucket: eager
        assert reply_ids(tiny_chat, longer, 100) == reply_ids_eager(tiny_chat, longer, 100)
        rates: list[dict] = []  # what --compile auto measures on CUDA, here on the warmed thread
        tiny_chat.workers.on_each(lambda _: rates.append(tiny_chat.compiled.rates(tiny_chat._short_reply, 4)), 1)
        assert set(rates[0]) == {"eager", "compiled"} and min(rates[0].values()) > 0
        assert graphs_compiled() == compiled_graphs  # everything compiled while loading
    finally:
        tiny_chat.compiled = None


def test_a_failed_compilation_is_named_and_leaves_decoding_eager(tiny_chat):
    with pytest.raises(ChatError, match=r"compiling the decoding step failed \(.*\); run with --compile off"):
        tiny_chat.compile("on", buckets=(4,))  # a cache too short for the warm-up's prompt
    assert tiny_chat.compiled is None


def reply_ids_eager(chat, messages, tokens: int) -> list[int]:
    compiled, chat.compiled = chat.compiled, None
    try:
        return reply_ids(chat, messages, tokens)
    finally:
        chat.compiled = compiled


@pytest.mark.slow
def test_compiled_smollm2_gives_the_eager_greedy_tokens():
    smol = load_chat("offline")
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    try:
        eager_ids = reply_ids(smol, messages, 16)
        eager_text = "".join(smol.stream(messages, greedy(16)))
        assert smol.compile("on", buckets=(128,))["compiled"]
        assert reply_ids(smol, messages, 16) == eager_ids
        assert "".join(smol.stream(messages, greedy(16))) == eager_text
        assert "Paris" in eager_text
    finally:
        smol.close()


@pytest.mark.slow
def test_the_app_compiles_while_loading_and_its_status_says_so(tmp_path):
    from moderation.models import model_slots, slot_line
    from moderation.settings import AppConfig

    path = tiny_models.build_tiny_llama(tmp_path, reference_templates.LLAMA3_INSTRUCT, max_positions=256)
    slot = model_slots(AppConfig(chat_model=str(path), guard_model="offline", compile="on")).chat
    lines: list[str] = []
    said = slot.say

    def say(stage: str) -> None:  # what the page shows at the moment the loader says it
        said(stage)
        lines.append(slot_line(slot.status()))

    slot.say = say
    slot.load()
    try:
        assert slot.status().state == "ready" and slot.value.compiled is not None
        assert lines and lines[0].startswith(f"The chat model ({path}) is loading: compiling the decoding step")
        assert "256-token cache, 1 of 1" in lines[0]
        assert slot.status().stage == "" and "compiling" not in slot_line(slot.status())
    finally:
        slot.value.close()


def test_the_compile_setting_is_auto_unless_a_flag_or_variable_says(monkeypatch, capsys):
    from moderation.settings import parse_config

    models = ["--chat-model", "offline", "--guard-model", "offline"]
    monkeypatch.delenv("COMPILE", raising=False)
    assert parse_config(models).compile == "auto"
    monkeypatch.setenv("COMPILE", "off")
    assert parse_config(models).compile == "off"
    assert parse_config([*models, "--compile", "on"]).compile == "on"
    with pytest.raises(SystemExit):
        parse_config([*models, "--compile", "fast"])
    assert "--compile must be one of auto, on, off, not 'fast'" in capsys.readouterr().err


def test_zero_gpu_hardware_decodes_eagerly():
    from moderation.models import decoding
    from moderation.settings import AppConfig

    assert decoding(AppConfig(chat_model="offline", guard_model="offline", compile="on")) == "on"
    assert decoding(AppConfig(chat_model="x", guard_model="x", compile="on", zero_gpu_seconds=120)) == "off"
