"""guard.train's options: the checks of its numeric ones, each turning a command-line
string into a value or raising argparse.ArgumentTypeError with the reason (argparse prints
it and exits 2), the options that add derived examples (add_data_options, derive), and the
settings an out-of-fold file records (fold_settings)."""

from __future__ import annotations

import argparse
import hashlib
import json

import numpy as np

from guard.offline_model import judge_window
from guard.training.metrics import row
from guard.training.sources import OPTIONAL_TABLES
from guard.training.trainer import derived

# --padded-turns at most: the turn context keeps the most recent TURNS_CONTEXT pieces (guard.offline_model),
# two long turns or a few short ones; the app sends the guard two answered turns (guard_context_turns)
MOST_TURNS = 4


def operating_point_arg(text: str) -> tuple[float, ...]:
    """Four numbers, the prompt and reply temperatures then the prompt and reply offsets, or
    six, with a prompt after earlier turns third in each half (what --transfer printed)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    half = len(values) // 2
    if len(values) not in (4, 6) or not all(np.isfinite(values)) or min(values[:half]) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give four numbers T_PROMPT,T_REPLY,OFFSET_PROMPT,OFFSET_REPLY, or six with T_TURNS "
            "and OFFSET_TURNS third in each half (temperatures above 0)"
        )
    return values


def window_arg(text: str) -> int:
    """A judging window given on a command line (guard.offline_model.judge_window)."""
    try:
        return judge_window(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def weight(text: str, zero: bool) -> float:
    """A finite number, above 0 or (with `zero`) 0 or more; anything else refused."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not ((0.0 <= value if zero else 0.0 < value) and value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a weight (a number, {'0 or more' if zero else 'above 0'})")
    return value


def pair_weight_arg(text: str) -> float:
    """--pair-weight: a finite number, 0 or more."""
    return weight(text, zero=True)


def context_weight_arg(text: str) -> float:
    """--context-weight: a finite number above 0 (1 weighs turns as single messages)."""
    return weight(text, zero=False)


def turns_arg(text: str) -> int:
    """--padded-turns: a whole number of benign turns, 2 to MOST_TURNS (1 is the default)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 2 <= value <= MOST_TURNS:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of turns from 2 to {MOST_TURNS}")
    return value


def tables_arg(text: str) -> str:
    """--with-tables: optional table names (guard.training.sources.OPTIONAL_TABLES), comma
    separated, returned as one canonical string (sorted, deduplicated) so that a stopped run's
    settings compare equal."""
    names = sorted({n.strip() for n in text.split(",") if n.strip()})
    unknown = [n for n in names if n not in OPTIONAL_TABLES]
    if not names or unknown:
        not_known = f" (not {', '.join(unknown)})" if unknown else ""
        raise argparse.ArgumentTypeError(f"{text!r}: name tables from: {', '.join(OPTIONAL_TABLES)}{not_known}")
    return ",".join(names)


def add_data_options(p: argparse.ArgumentParser) -> None:
    """The options that add derived examples to every split (all off by default)."""
    p.add_argument(
        "--padded-turns",
        type=turns_arg,
        metavar="N",
        help="a prompt repeated after benign turns in training gets 1 to N of them, not one (N 2-4; measure "
        "with `python -m guard.evaluate --after-turns`; with 4 on 2026-12-06, benign prompts after turns were "
        "flagged three times as often: docs/offline-classifier.md)",
    )
    p.add_argument(
        "--alone-follow-ups",
        action="store_true",
        help="also read each two-turn twin's follow-up (unsafe after one start, safe after another) without "
        "its turns, as safe, so the reading alone (which guard.offline.clear_alone kept until 2026-12-07) is not "
        "trained only by accident (off by default; measure with `python bench/clear_alone.py`)",
    )
    p.add_argument(
        "--shapes",
        action="store_true",
        help="also write about half of the English requests that open with a known lead ('How do I ...', "
        "'Write a tutorial on how to ...') once more in another shape, benign and unsafe alike, so the score "
        "follows what is asked, not how (guard.training.shapes; off by default; on one fold, 2026-12-07, "
        "public harmful held out scored no higher: docs/offline-classifier.md)",
    )

    p.add_argument(
        "--long-cuts",
        action="store_true",
        help="also train on pieces of the long prompts cut at any word, as the judging windows cut a "
        "pasted text (of a harmless one, safe; of one with a request inside, the piece that holds it, with its "
        "label), so a long text is not judged in pieces of a kind training never showed "
        "(guard.training.cuts.long_cuts; off by default; two pilots each failed their rule; measure with "
        "`python -m guard.evaluate --long` and `--table guard/data/handwritten_check.tsv`)",
    )


def derive(items: list, a) -> list:
    """The split items with everything built from them (guard.training.trainer.derived), as
    the options in `a` ask."""
    return derived(items, a.seed, a.padded_turns or 1, a.alone_follow_ups, a.shapes, a.long_cuts)


FOLD_SETTINGS = (
    "seed",
    "epochs",
    "lr",
    "batch",
    "encoder",
    "tuned_layers",
    "judge_window",
    "without_chat_replies",
    "pair_weight",
)
LATER_SETTINGS = (
    "pool_text",
    "with_tables",
    "padded_turns",
    "context_weight",
    "train_seed",
    "alone_follow_ups",
    "shapes",
    "long_cuts",
)  # in a file's settings only when on (files from before it are off)


def fold_settings(a, items: list) -> dict:
    """What a fold's logits depend on (checked when a stopped run goes on): the settings, and
    a digest of every example, derived ones included (so a change to the data, or to how it
    is derived, refuses the old folds even where a fold's own held-out rows are unchanged).
    Settings added since (LATER_SETTINGS) count only when set, so older files still go on."""
    digest = hashlib.sha256("\n".join(json.dumps(row(i), sort_keys=True) for i in items).encode()).hexdigest()
    later = {k: v for k in LATER_SETTINGS if (v := getattr(a, k)) is not None and v is not False}
    return (
        {k: getattr(a, k) for k in FOLD_SETTINGS}
        | later
        | {"with_labels": str(a.with_labels or ""), "data": digest[:16]}
    )


def make_output_folders(a) -> None:
    """Create the folders the run will write into, before hours of training rather than
    after them (a missing folder used to lose the folds or the model at the first save).
    Raises OSError when one cannot be made (a file in its place, no permission)."""
    outputs = [a.out, a.manifest] + ([a.transfer_figures, a.out_of_fold] if a.transfer else [])
    for path in outputs:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
