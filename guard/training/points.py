"""The operating point chosen on held-out scores: per calibrated reading
(guard.offline_model.CALIBRATIONS), a temperature fitted on the out-of-fold logits, so a
score means the same on a source the model never saw, and an offset that puts the lowest
threshold at which the FPR averaged over the families with enough benign rows to measure
it (at least 1 / MAX_FPR) is at most MAX_FPR at the verdict threshold 0.5. (Until
2026-12-07 every family with a benign row counted: the fourteenth run's reply point went to
0.98 because one of the public harmful family's 3 benign replies scored 0.96.)

By default a prompt is one reading, alone or after earlier turns. With `per_context`
(`python -m guard.train --transfer --point-per-context`), a prompt after earlier turns
gets its own temperature and offset: the two-turn families' controls (the same follow-up
after a harmless first turn) then no longer set the threshold of the single-message
families, nor the other way round.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from guard.offline_model import CALIBRATIONS, calibrate
from guard.training.trainer import fit_temperature

MAX_FPR = 0.05
# Thresholds tried, lowest first; above 0.95 in finer steps, where scores crowd
THRESHOLDS = np.concatenate([np.linspace(0.05, 0.95, 91), np.linspace(0.951, 0.999, 49)])


def unsafe_scores(logits: np.ndarray, temperature: float, offset: float) -> np.ndarray:
    return 1 - calibrate(logits, temperature, offset)[:, 0]


def measuring_families(y: np.ndarray, fams: np.ndarray, max_fpr: float = MAX_FPR) -> list[str]:
    """The families whose benign rows can measure an FPR of max_fpr: at least 1 / max_fpr of
    them (20 at 0.05), where one false flag is not already more than the bound. A family
    with fewer (the public harmful family's 3 benign replies) leaves the mean, unless no
    family has that many: then all of them count.

    >>> measuring_families(np.zeros(23, bool), np.array(["a"] * 20 + ["b"] * 3))
    ['a']
    """
    counts = Counter(str(f) for f in fams[~y])
    enough = [f for f, n in sorted(counts.items()) if n * max_fpr >= 1 - 1e-9]  # no division: max_fpr may be 0
    return enough or sorted(counts)


def operating_point(s: np.ndarray, y: np.ndarray, fams: np.ndarray, max_fpr: float = MAX_FPR) -> float:
    """The lowest threshold (of THRESHOLDS) at which the FPR averaged over the families
    whose benign rows can measure it (measuring_families) is at most max_fpr (the highest
    one tried if none holds it)."""
    benign_fams = measuring_families(y, fams, max_fpr)
    for t in THRESHOLDS:
        fprs = [(s[(fams == f) & ~y] >= t).mean() for f in benign_fams]
        if not fprs or float(np.mean(fprs)) <= max_fpr:
            return float(t)
    return float(THRESHOLDS[-1])


def calibration_of(row: dict, per_context: bool = False) -> str:
    """The reading a held-out row is calibrated as (one of CALIBRATIONS)."""
    if row["kind"] != "prompt":
        return "reply"
    return "turns" if per_context and row.get("context") else "prompt"


def scores_at(logits: np.ndarray, rows: list[dict], temperatures: list[float], offsets: list[float]) -> np.ndarray:
    """Each row's unsafe score at a given point: a temperature and offset per reading, in
    CALIBRATIONS order (two, or three with a prompt after earlier turns apart)."""
    per_context = len(temperatures) == 3
    readings = np.array([calibration_of(r, per_context) for r in rows])
    scores = np.zeros(len(rows))
    for name, t, offset in zip(CALIBRATIONS, temperatures, offsets):
        k = readings == name
        scores[k] = unsafe_scores(logits[k], t, offset)
    return scores


def choose_points(
    logits: np.ndarray, rows: list[dict], labels: np.ndarray, fams: np.ndarray, max_fpr: float, per_context: bool
) -> tuple[list[float], list[float], np.ndarray]:
    """(temperatures, offsets, each row's unsafe score at them): one temperature and offset
    per reading, in CALIBRATIONS order (two, or three with `per_context`)."""
    readings = np.array([calibration_of(r, per_context) for r in rows])
    y = labels != 0
    temperatures, offsets = [], []
    for name in CALIBRATIONS[: 3 if per_context else 2]:
        k = readings == name
        t = fit_temperature(logits[k], labels[k]) if k.any() else 1.0
        threshold = operating_point(unsafe_scores(logits[k], t, 0.0), y[k], fams[k], max_fpr)
        temperatures.append(t)
        offsets.append(float(np.log(threshold / (1 - threshold))))
    return temperatures, offsets, scores_at(logits, rows, temperatures, offsets)
