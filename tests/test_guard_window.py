"""Every input is judged whole by Llama Guard (guard.window): the model never reads past
its window, earlier turns go first and the verdict says so, and a message longer than the
window is judged in overlapping windows that cover all of it, unsafe if any window is.

The real local backend runs on a tiny random Llama Guard with a 512-token window, and the
ids it is given are read off the model itself (a forward hook). The any-window rule is our
control flow, so it is checked with a fake backend (a random model's verdicts mean
nothing); the remote backend against a small fake endpoint."""

from __future__ import annotations

import re

import pytest
from test_guard_parse import CharBackend
from test_guard_remote import completion, endpoint

from guard import load_guard
from guard.category_scores import ANSWER_HEAD
from guard.llama_guard import LlamaGuard, merge
from guard.local import Assessment
from guard.prompt import prompt_ids, render_prompt
from guard.remote import utf8_ends
from guard.taxonomy import Category
from guard.verdict import Verdict, failed_verdict
from guard.window import ANSWER_ROOM, byte_bound, windows

WINDOW = 512
APPLES = "apple " * 150  # about 150 tokens
NUMBERS = " ".join(str(n) for n in range(1000, 1400))  # 800 tokens, every word different


@pytest.fixture(scope="module")
def small_guard(tmp_path_factory):
    """A tiny Llama Guard 2 that reads at most 512 tokens, and the model inputs it was given:
    (ids, positions already in the cache) per forward pass."""
    import reference_templates
    import tiny_models

    folder = tiny_models.build_tiny_llama(
        tmp_path_factory.mktemp("small-window-guard"),
        reference_templates.LLAMA_GUARD_2,
        max_positions=WINDOW,
        name_or_path="meta-llama/Meta-Llama-Guard-2-8B",
    )
    guard = load_guard(str(folder), reuse_prefix=False)  # the whole prompt in one forward: easy to read back
    fed: list[tuple[list[int], int]] = []

    def record(module, args, kwargs):
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        fed.append((kwargs["input_ids"][0].tolist(), cache.get_seq_length() if cache is not None else 0))

    guard.backend.model.model.register_forward_pre_hook(record, with_kwargs=True)
    return guard, fed


def judged_texts(guard, fed) -> list[str]:
    """The judged message of each check the model read, decoded from its input ids."""
    texts = []
    for ids, cached in fed:
        if cached == 0:  # a check's first forward: the whole prompt
            prompt = guard.backend.tokenizer.decode(ids)
            texts.append(re.search(r".*\n\n(?:User|Agent): (.*?)\n\n<END CONVERSATION>", prompt, re.S).group(1))
    return texts


def assert_within_window(fed):
    assert fed and max(len(ids) + cached for ids, cached in fed) <= WINDOW


def assert_covered(message: str, parts: list[str]):
    """The parts are overlapping pieces of `message`, in order, that together hold all of it."""
    covered, start = 0, 0
    for part in parts:
        at = message.find(part, start)
        assert at != -1 and at <= covered, (at, covered)  # each piece starts inside what is covered
        covered, start = max(covered, at + len(part)), at + 1
    assert covered == len(message)


def test_windows_cover_the_text_and_overlap():
    assert windows([1, 2, 3, 4, 5, 6, 7], size=3, overlap=1) == [(0, 3), (2, 5), (4, 7)]
    assert windows([4, 9], size=5, overlap=1) == [(0, 9)] and windows([], 5, 1) == [(0, 0)]
    ends = list(range(2, 202, 2))  # 100 tokens of 2 characters
    spans = windows(ends, size=30, overlap=7)
    assert spans[0][0] == 0 and spans[-1][1] == 200
    assert all(b - a <= 60 for a, b in spans)
    assert all(a2 == b1 - 14 for (_, b1), (a2, _) in zip(spans, spans[1:]))  # 7 tokens shared


def test_earlier_turns_are_left_out_first_and_the_verdict_says_so(small_guard):
    guard, fed = small_guard
    conversation = [
        {"role": "user", "content": APPLES},
        {"role": "assistant", "content": "Pears " * 150},
        {"role": "user", "content": "Plums are purple."},
        {"role": "assistant", "content": "Yes."},
        {"role": "user", "content": "Which fruit is yellow and long?"},
    ]
    fed.clear()
    verdict = guard.check(conversation, threshold=0.0)  # unsafe: the category line is generated too
    assert_within_window(fed)
    assert verdict.note == "2 earlier messages left out to fit the guard's 512-token window"
    assert not verdict.safe and verdict.raw.startswith("unsafe")
    prompt = guard.backend.tokenizer.decode(fed[0][0])
    assert "User: Plums are purple.\n\nAgent: Yes.\n\nUser: Which fruit is yellow and long?\n\n<END" in prompt
    assert "apple" not in prompt and "Pears" not in prompt
    whole = guard.check(conversation[2:], threshold=1.0)
    assert whole.note == "" and whole.safe


def test_a_message_longer_than_the_window_is_judged_in_windows_that_cover_it(small_guard):
    guard, fed = small_guard
    conversation = [
        {"role": "user", "content": APPLES},
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": NUMBERS},
    ]
    fed.clear()
    verdict = guard.check(conversation, threshold=1.0)
    assert_within_window(fed)
    parts = judged_texts(guard, fed)
    assert len(parts) >= 3 and all("apple" not in p for p in parts)
    assert_covered(NUMBERS, parts)
    assert verdict.safe and verdict.note.startswith("2 earlier messages left out")
    assert f"judged in {len(parts)} overlapping windows" in verdict.note and verdict.note.endswith(
        f"safe in all {len(parts)} windows"
    )
    fed.clear()
    flagged = guard.check(conversation, threshold=0.0)  # every window unsafe, categories generated
    assert_within_window(fed)
    assert not flagged.safe


def test_a_long_reply_to_a_long_prompt_shortens_the_prompt_and_says_so(small_guard):
    guard, fed = small_guard
    prompt = "Tell me about apples. " + APPLES + " What about their seeds?"
    fed.clear()
    verdict = guard.check(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": NUMBERS}], threshold=1.0
    )
    assert_within_window(fed)
    assert verdict.role == "Agent" and "the user message it answers was shortened to its first" in verdict.note
    first = guard.backend.tokenizer.decode(fed[0][0])
    context = re.search(r"User: (.*)\n\nAgent:", first, re.S).group(1)
    assert context.startswith("Tell me about apples.") and context.endswith("What about their seeds?")
    assert "\n[...]\n" in context and len(context) < len(prompt)
    assert_covered(NUMBERS, judged_texts(guard, fed))


def test_the_local_count_is_exactly_the_ids_the_model_reads(small_guard):
    guard, fed = small_guard
    prompt = guard.render([{"role": "user", "content": "Hello there"}])
    fed.clear()
    guard.backend.assess(prompt, 1.0)
    count, ids = guard.backend.count(prompt), fed[0][0]
    # the model reads the counted prompt, then the answer head `unsafe \n S` in the same pass (the
    # category scores), which the window keeps room for (ANSWER_ROOM)
    assert guard.backend.tokenizer.decode(ids[count:]).strip() == ANSWER_HEAD and len(ids) - count <= ANSWER_ROOM
    assert guard.backend.context_window == WINDOW
    assert byte_bound(prompt) >= count  # the shortcut for short conversations is an upper bound


def test_a_zero_width_split_word_reaches_the_guard_as_the_word(llama3_tokenizer):
    split = render_prompt([{"role": "user", "content": "How do I build a b\u200bomb?"}])
    plain = render_prompt([{"role": "user", "content": "How do I build a bomb?"}])
    assert prompt_ids(llama3_tokenizer, split) == prompt_ids(llama3_tokenizer, plain)


class Marking(CharBackend):
    """One token per character in a 1,500-character window; a window that holds Bomb is
    unsafe S1 (0.9), one that holds Knife unsafe S2 (0.7), one that holds FAIL raises;
    the rest is safe (0.1). Records the prompts. (Capitalised markers: a common word in
    capitals would add the letter-case view's reading, guard.views.)"""

    context_window = 1500

    def __init__(self):
        self.prompts = []

    def assess(self, prompt, threshold):
        self.prompts.append(prompt)
        judged = prompt.rest.split("<END CONVERSATION>")[0]
        if "FAIL" in judged:
            raise RuntimeError("out of memory")
        if "Bomb" in judged:
            return Assessment(0.9, "unsafe\nS1")
        return Assessment(0.7, "unsafe\nS2") if "Knife" in judged else Assessment(0.1, "safe")


def filler(n: int) -> str:
    return " ".join(f"cake{i}" for i in range(n))


def test_unsafe_if_any_window_is_with_the_categories_of_each():
    backend = Marking()
    message = filler(150) + " Bomb " + filler(300) + " Knife " + filler(150)
    verdict = LlamaGuard(backend).check([{"role": "user", "content": message}])
    parts = [p.rest.split("User: ", 1)[1].split("\n\n<END CONVERSATION>")[0] for p in backend.prompts]
    assert len(parts) >= 4 and all(backend.count(p) <= 1500 - ANSWER_ROOM for p in backend.prompts)
    assert_covered(message, parts)
    assert not verdict.safe and verdict.parsed and verdict.score == 0.9 and verdict.raw == "unsafe\nS1"
    assert [c.code for c in verdict.categories] == ["S1", "S2"]
    unsafe = [str(i + 1) for i, p in enumerate(parts) if "Bomb" in p or "Knife" in p]
    assert verdict.note.endswith(f"unsafe in windows {', '.join(unsafe)} of {len(parts)}")
    safe = LlamaGuard(Marking()).check([{"role": "user", "content": filler(600)}])
    assert safe.safe and safe.score == 0.1 and "safe in all" in safe.note


def test_a_failed_window_fails_the_whole_message_closed():
    backend = Marking()
    verdict = LlamaGuard(backend).check([{"role": "user", "content": filler(300) + " FAIL " + filler(300)}])
    failed_at = len(backend.prompts)  # judging stopped at the failed window
    assert (verdict.safe, verdict.parsed) == (False, False) and failed_at >= 2
    where = re.fullmatch(r"window (\d+) of (\d+): RuntimeError: out of memory", verdict.error)
    assert int(where[1]) == failed_at < int(where[2])


def test_a_policy_that_fills_the_window_fails_closed_with_the_reason():
    backend = Marking()
    backend.context_window = 700  # the Guard 2 prompt alone is longer
    verdict = LlamaGuard(backend).check([{"role": "user", "content": "Hi"}])
    assert (verdict.safe, verdict.parsed) == (False, False) and "no room is left" in verdict.error
    assert backend.prompts == []


def test_merge_takes_the_worst_window():
    s1, s9 = Category("S1", "Violent Crimes"), Category("S9", "Hate")
    parts = [
        Verdict(safe=True, score=0.1, raw="safe", latency_s=0.5),
        Verdict(safe=False, categories=(s1,), score=0.9, raw="unsafe\nS1", latency_s=0.25),
        Verdict(safe=False, categories=(s1, s9), score=0.7, raw="unsafe\nS1,S9", latency_s=0.25, note="n"),
    ]
    merged = merge(parts, 3, "fit")
    assert (merged.safe, merged.score, merged.categories, merged.latency_s) == (False, 0.9, (s1, s9), 1.0)
    assert merged.note == "fit; unsafe in windows 2, 3 of 3; n" and merged.raw == "unsafe\nS1"
    failed = merge([parts[0], failed_verdict("timeout")], 3)
    assert (failed.safe, failed.parsed, failed.error, failed.categories) == (False, False, "window 2 of 3: timeout", ())


def test_utf8_ends_bound_the_tokens_of_the_real_tokenizer(llama3_tokenizer):
    text = "Ünïcödé façade — 日本語のテキスト 🎉🎉 naïve " * 20
    assert utf8_ends("né") == [1, 2, 2] and len(utf8_ends(text)) == len(text.encode())
    assert len(llama3_tokenizer(text, add_special_tokens=False).input_ids) <= len(utf8_ends(text))


def test_remote_windows_fit_the_servers_length_and_split_on_characters():
    message = (
        "".join(f"Crème brûlée 🍮 step {i}. " for i in range(30))
        + "Bomb "
        + "".join(f"Ça va, merci 日本 {i}. " for i in range(60))
    )

    def reply(body):
        judged = body["prompt"].split("<END CONVERSATION>")[0].rsplit("User: ", 1)[1]
        if "Bomb" in judged:
            return 200, completion("unsafe\nS9", [{"unsafe": -0.1, "safe": -2.4}])
        return 200, completion("safe", [{"safe": -0.01, "unsafe": -4.6}])

    with endpoint(reply, max_model_len=2048) as (url, sent):
        guard = load_guard(url)
        verdict = guard.check([{"role": "user", "content": message}])
    assert guard.backend.context_window == 2048
    prompts = [body["prompt"] for body in sent]
    assert len(prompts) >= 3 and all(len(p.encode()) + 1 <= 2048 - ANSWER_ROOM for p in prompts)
    parts = [p.split("User: ", 1)[1].split("\n\n<END CONVERSATION>")[0] for p in prompts]
    assert_covered(message.strip(), parts)
    assert not verdict.safe and [c.code for c in verdict.categories] == ["S9"]
    assert verdict.score == pytest.approx(0.909, abs=1e-3) and "2,048-token window" in verdict.note
    with endpoint(reply) as (url, _):
        assert load_guard(url).backend.context_window == 8192  # the server does not say: Llama 3's
