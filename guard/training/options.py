"""The checks of guard.train's numeric options: each turns a command-line string into a
value or raises argparse.ArgumentTypeError with the reason (argparse prints it and exits 2)."""

from __future__ import annotations

import argparse

import numpy as np

from guard.offline_model import judge_window
from guard.training.sources import OPTIONAL_TABLES


def operating_point_arg(text: str) -> tuple[float, float, float, float]:
    """Four numbers: the prompt and reply temperatures, then the prompt and reply offsets."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(np.isfinite(values)) or min(values[:2]) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give four numbers T_PROMPT,T_REPLY,OFFSET_PROMPT,OFFSET_REPLY (temperatures above 0)"
        )
    return values


def window_arg(text: str) -> int:
    """A judging window given on a command line (guard.offline_model.judge_window)."""
    try:
        return judge_window(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def pair_weight_arg(text: str) -> float:
    """--pair-weight: a finite number, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0.0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a weight (a number, 0 or more)")
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
