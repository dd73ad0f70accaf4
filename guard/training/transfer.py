"""Leave-one-source-out: how the offline classifier does on a source it never saw.

A validation split drawn from the same sources as training rewards their style, not
transfer. So the choices are made on sources left out instead: for every source family,
a model is trained without it (and without every near-duplicate group it shares with the
others) and scores it. The scores of each family by the model that never saw it (the
out-of-fold scores) then give:

- per family: recall and FPR at the operating point, AUPRC, expected calibration error;
  the worst and the median family's recall (the figure the target is set on);
- each reading's temperature and operating point (guard.training.points: per side, and
  with --point-per-context a prompt after earlier turns apart from one read alone).

The test split is never read: every family is scored on its train and validation items.

    python -m guard.train --transfer --out-of-fold oof.npz   # folds, then the model with their operating point
    python -m guard.training.transfer oof.npz --max-fpr 0.10  # the point chosen again from the saved logits
    python -m guard.training.transfer oof.npz --point-per-context  # a prompt after turns with its own point
    python -m guard.training.transfer oof.npz --point 1.15,1.04,1.37,1.45,2.09,3.18  # at another model's point
    python -m guard.training.transfer oof.npz --compare guard/data/offline_model.safetensors
        # another model on the same held-out rows of families it never trained on
    python -m guard.training.transfer oof.npz --rank   # rank figures per family (one-fold runs)
    python -m guard.training.transfer oof.npz --rank --side reply   # the same for replies
    python -m guard.train --transfer --folds "public harmful+public benign" --out-of-fold pub.npz --folds-only
    python -m guard.training.transfer pub.npz --rank --against "public benign"
        # one model without both public families: their harmful prompts against their benign ones
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from guard.offline import window_probabilities
from guard.offline_model import CALIBRATIONS, CLASSES, Network
from guard.training.dataset import Item
from guard.training.families import family
from guard.training.metrics import average_precision, ece, inputs_of, row, threshold_at_fpr
from guard.training.options import operating_point_arg
from guard.training.points import MAX_FPR, calibration_of, choose_points, scores_at, unsafe_scores
from guard.training.ranks import figures_line, header, rank_lines, rank_table

SAME_FPR = "held, its FPR"  # compare: the held-out models at the other model's FPR on the family
TRANSFER_FIGURES = Path(__file__).resolve().parent.parent / "data" / "transfer_figures.json"


def members(fold_name: str) -> set[str]:
    """The families a fold holds out: "A+B" holds out A and B together (one model without
    both), for a measure across them such as public harmful against public benign."""
    return {f.strip() for f in fold_name.split("+") if f.strip()}


def fold(base: list[Item], held: str) -> tuple[list[Item], list[Item]]:
    """(train-split items of the other families, outside every group the held families have
    a member in; the held families' train and validation items). `held` is one family or
    several joined by "+" (`members`)."""
    out = members(held)
    shared = {i.group for i in base if family(i.example.source) in out}
    train = [i for i in base if i.split == "train" and i.group not in shared]
    return train, [i for i in base if family(i.example.source) in out and i.split != "test"]


class UnknownFamilies(ValueError):
    """Fold names (or members of a joint fold) that name no source family of the data: a
    typo would otherwise hold out less than the name says, silently."""


class StaleFolds(ValueError):
    """Saved folds that another run's data or settings made, or folds that would hold one
    family out twice (alone and in a joint fold)."""


@dataclass
class OutOfFold:
    """Each held-out row with the worst window's logits of the model that never saw it."""

    rows: list[dict]
    logits: np.ndarray  # (rows, classes)
    settings: dict = field(default_factory=dict)  # the training settings the folds were run with
    folds: list[str] | None = None  # per row, the fold that held it out (default: its family)

    def __post_init__(self):
        if self.folds is None:
            self.folds = [family(r["source"]) for r in self.rows]

    def sides(self) -> np.ndarray:
        return np.array([side_of(r) for r in self.rows])

    def labels(self) -> np.ndarray:
        return np.array([CLASSES.index(r["label"]) for r in self.rows])

    def save(self, path: Path) -> None:
        rows = np.array([json.dumps(r) for r in self.rows])
        with open(path, "wb") as f:  # the exact path: np.savez_compressed would add ".npz" to another name
            np.savez_compressed(
                f,
                logits=self.logits,
                rows=rows,
                settings=np.array(json.dumps(self.settings)),
                folds=np.array(self.folds, dtype=str),
            )

    @classmethod
    def load(cls, path: Path) -> OutOfFold:
        with np.load(path) as f:
            settings = json.loads(str(f["settings"])) if "settings" in f.files else {}
            folds = [str(x) for x in f["folds"]] if "folds" in f.files else None  # older files: one family a fold
            return cls([json.loads(str(r)) for r in f["rows"]], f["logits"], settings, folds)

    def held(self, name: str) -> tuple[list[dict], np.ndarray]:
        """The rows fold `name` held out and their logits (none when it is not in here)."""
        k = np.array([f == name for f in self.folds], dtype=bool)
        return [r for r, keep in zip(self.rows, k) if keep], self.logits[k]


def worst_logits(net: Network, rows: list[dict]) -> np.ndarray:
    """Per row, the logits of its most unsafe window (temperature 1, no offset)."""
    out = np.zeros((len(rows), len(CLASSES)))
    saved, net.temperatures, net.offsets = (net.temperatures, net.offsets), (1.0, 1.0), (0.0, 0.0)  # raw logits
    try:
        for side in ("prompt", "reply"):
            idx = [i for i, r in enumerate(rows) if (r["kind"] == "prompt") == (side == "prompt")]
            probs = window_probabilities(net, inputs_of(net, [rows[i] for i in idx], side), side)
            for i, p in zip(idx, probs):
                out[i] = np.log(np.maximum(p[int(np.argmin(p[:, 0]))], 1e-12))  # log-softmax = logits up to a shift
    finally:
        net.temperatures, net.offsets = saved
    return out


def guard_scores(net: Network, rows: list[dict]) -> np.ndarray:
    """Per row, `net`'s unsafe score of its worst window, calibrated as its guard reads the row."""
    raw, readings = worst_logits(net, rows), np.array([calibration_of(r, True) for r in rows])
    out = np.zeros(len(rows))
    for name in set(readings):
        out[readings == name] = unsafe_scores(raw[readings == name], *net.calibration(name))
    return out


def side_of(row: dict) -> str:
    return "prompt" if row["kind"] == "prompt" else "reply"


def family_of(row: dict) -> str:
    return family(row["source"])


def language_of(row: dict) -> str:
    """The language a row is written in, as its table says ("en" where it says none)."""
    return row.get("lang") or "en"


def family_table(s: np.ndarray, y: np.ndarray, rows: list[dict], t: float, key=family_of) -> dict:
    """Per family (or per key(row), e.g. language_of) and side: n, recall, FPR at t, AUPRC
    where both labels occur, ECE."""
    table = {}
    for f in sorted({key(r) for r in rows}):
        for side in ("prompt", "reply"):
            ix = np.array([i for i, r in enumerate(rows) if key(r) == f and side_of(r) == side], dtype=int)
            if not len(ix):
                continue
            yy, ss = y[ix], s[ix]
            table[f"{f} ({side})"] = {
                "n_unsafe": int(yy.sum()),
                "n_benign": int((~yy).sum()),
                "recall": round(float((ss[yy] >= t).mean()), 3) if yy.any() else None,
                "fpr": round(float((ss[~yy] >= t).mean()), 3) if (~yy).any() else None,
                "auprc": round(average_precision(yy, ss), 3) if yy.any() and (~yy).any() else None,
                "ece": round(ece(ss, yy.astype(float)), 3),
            }
    return table


def side_tables(s: np.ndarray, y: np.ndarray, rows: list[dict], key=family_of) -> dict:
    """family_table at the verdict threshold 0.5, the prompt side's rows before the reply side's."""
    table = {}
    for side in ("prompt", "reply"):
        k = np.array([side_of(r) == side for r in rows], dtype=bool)
        table.update(family_table(s[k], y[k], [r for r, keep in zip(rows, k) if keep], 0.5, key))
    return table


def summary(table: dict, of: str = "family") -> dict:
    """Worst and median family (or language: `of`) recall (prompt side, at least 20 unsafe
    rows) and the highest FPR (at least 20 benign rows)."""
    recalls = {k: v["recall"] for k, v in table.items() if k.endswith("(prompt)") and v["n_unsafe"] >= 20}
    fprs = {k: v["fpr"] for k, v in table.items() if v["fpr"] is not None and v["n_benign"] >= 20}
    worst = min(recalls, key=recalls.get) if recalls else None
    return {
        "worst_recall": {of: worst, "recall": recalls.get(worst)},
        "median_recall": round(float(np.median(list(recalls.values()))), 3) if recalls else None,
        "highest_fpr": max(fprs.items(), key=lambda kv: kv[1]) if fprs else None,
    }


def run_folds(
    base: list[Item], train_fold, families: list[str] | None = None, done: OutOfFold | None = None, on_fold=None
) -> OutOfFold:
    """Train without each family in turn (train_fold(items) -> a trained Network) and keep
    its logits on the family's rows; a name "A+B" is one fold without both (`members`). A
    fold that `done` (an earlier, stopped run with the same settings) already holds is taken
    from it, provided its rows are the ones the fold would hold now, before any is trained;
    on_fold(out_of_fold so far: every saved fold and those trained here) runs after each fold
    trained here."""
    done = done or OutOfFold([], np.zeros((0, len(CLASSES))))
    known = {family(i.example.source) for i in base}
    names = families or sorted(known)
    unknown = sorted({f for name in names for f in members(name)} - known)
    if unknown:
        there = ", ".join(sorted(known))
        raise UnknownFamilies(f"no source family {', '.join(map(repr, unknown))} (there are: {there})")
    kept = sorted(set(done.folds) - set(names))  # earlier folds not asked for again
    seen: dict[str, str] = {}
    for name in kept + names:
        for f in members(name):
            if seen.setdefault(f, name) != name:
                raise StaleFolds(f"{f} would be held out twice, by the folds {seen[f]!r} and {name!r}")
    rows, logits, folds, to_train = [], [], [], []
    for held in kept + names:  # every saved fold first, so each file written below still holds them all
        train, held_items = fold(base, held)
        r = [row(i) for i in held_items]
        saved_rows, saved_logits = done.held(held)
        if saved_rows:
            if saved_rows != r:
                raise StaleFolds(f"the saved fold without {held} holds other rows than the data has now")
            rows, logits, folds = rows + r, logits + [saved_logits], folds + [held] * len(r)
            print(f"fold without {held}: {len(r)} held out, taken from the earlier run", flush=True)
        elif held_items:
            to_train.append((held, train, r))
    for held, train, r in to_train:
        started = time.perf_counter()
        net = train_fold(train)
        logits.append(worst_logits(net, r))
        rows, folds = rows + r, folds + [held] * len(r)
        took = time.perf_counter() - started
        print(f"fold without {held}: {len(train)} train items, {len(r)} held out ({took:.0f} s)", flush=True)
        if on_fold:
            on_fold(OutOfFold(rows, np.concatenate(logits), done.settings, folds))
    empty = np.zeros((0, len(CLASSES)))
    return OutOfFold(rows, np.concatenate(logits) if logits else empty, done.settings, folds)


def choose(oof: OutOfFold, max_fpr: float = MAX_FPR, per_context: bool = False) -> dict:
    """Each reading's temperature and offset (guard.training.points.choose_points; a prompt
    after earlier turns apart with `per_context`), with the figures at that point (at_point)."""
    fams = np.array([family(r["source"]) for r in oof.rows])
    temperatures, offsets, _ = choose_points(oof.logits, oof.rows, oof.labels(), fams, max_fpr, per_context)
    return at_point(oof, temperatures, offsets)


def at_point(oof: OutOfFold, temperatures: list[float], offsets: list[float]) -> dict:
    """The family table and summary at a point (a temperature and offset per reading), and
    the same per language (each row still scored by the model trained without its family).
    Given another model's point (`--point`), it reads a run of a few folds, whose own point
    would be chosen on those families alone."""
    labels, s = oof.labels(), scores_at(oof.logits, oof.rows, temperatures, offsets)
    table, by_language = side_tables(s, labels != 0, oof.rows), side_tables(s, labels != 0, oof.rows, language_of)
    return {
        "temperatures": list(temperatures),
        "offsets": list(offsets),
        "families": table,
        "summary": summary(table),
        "languages": by_language,
        "language_summary": summary(by_language, of="language"),
    }


def transfer_lines(figures: dict) -> list[str]:
    """The leave-one-source-out table, one family and side per line."""
    lines = ["leave-one-source-out (each family scored by the model trained without it):", header(34)]
    lines += [figures_line(name[:32], m, 32) for name, m in figures["families"].items()]
    s = figures["summary"]
    lines.append(
        f"worst family recall: {s['worst_recall']['recall']} ({s['worst_recall']['family']}); "
        f"median {s['median_recall']}; highest family FPR: {s['highest_fpr']}"
    )
    names = ", ".join(CALIBRATIONS[: len(figures["temperatures"])]).replace("turns", "prompt after turns")
    temperatures, offsets = (", ".join(f"{v:.2f}" for v in figures[k]) for k in ("temperatures", "offsets"))
    lines.append(f"temperatures {temperatures}; offsets {offsets} ({names})")
    if "languages" in figures:  # files written before 2026-12-05 have none
        lines += ["per language (each row scored by the model trained without its family):", header(34)]
        lines += [figures_line(name[:32], m, 32) for name, m in figures["languages"].items()]
        s = figures["language_summary"]
        lines.append(
            f"worst language recall: {s['worst_recall']['recall']} ({s['worst_recall']['language']}); "
            f"highest language FPR: {s['highest_fpr']}"
        )
    return lines


def figures_of(net: Network, path: Path = TRANSFER_FIGURES) -> dict | None:
    """The leave-one-source-out figures of the run that made `net`: the file its run wrote,
    when that run chose net's offsets (None for weights trained without --transfer)."""
    try:
        figures = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    offsets = figures.get("offsets") if isinstance(figures, dict) else None
    if not isinstance(offsets, list) or len(offsets) != len(net.offsets):
        return None
    same = np.allclose(offsets, net.offsets, atol=1e-3)
    return figures if same and "families" in figures and "summary" in figures else None


def compare(oof: OutOfFold, net: Network, families: list[str], max_fpr: float = MAX_FPR, per_context=False) -> dict:
    """Another model (`net`, at its own temperatures, offsets and judging window, threshold
    0.5) and the held-out models of `oof` (at the operating point chosen on all of oof) on
    the held-out rows of `families`: {family and side: {"held out": row, "other": row,
    SAME_FPR: row}} of family_table rows, the last the held-out models' at a threshold set on
    the family for at most the other model's FPR there (so two points compare at one FPR).
    Fair only for families the other model never trained on."""
    labels = oof.labels()
    fams = np.array([family(r["source"]) for r in oof.rows])
    held = choose_points(oof.logits, oof.rows, labels, fams, max_fpr, per_context)[2]
    idx = [i for i, r in enumerate(oof.rows) if family(r["source"]) in families]
    rows, y = [oof.rows[i] for i in idx], labels[idx] != 0
    other = guard_scores(net, rows)
    out: dict[str, dict] = {name: {"held out": figures} for name, figures in side_tables(held[idx], y, rows).items()}
    for name, figures in side_tables(other, y, rows).items():
        out[name]["other"] = figures
        k = np.array([f"{family_of(r)} ({side_of(r)})" == name for r in rows], dtype=bool)
        if figures["fpr"] is not None and y[k].any():  # the held-out models held to the other's FPR there
            cut = threshold_at_fpr(y[k], held[idx][k], figures["fpr"])
            out[name][SAME_FPR] = family_table(held[idx][k], y[k], [r for r, keep in zip(rows, k) if keep], cut)[name]
    return out


def compare_lines(table: dict) -> list[str]:
    lines = [header(44)]
    lines += [figures_line(f"{name[:32]}, {who}", m, 42) for name, models in table.items() for who, m in models.items()]
    return lines


def main(argv=None) -> int:
    """`python -m guard.training.transfer FILE.npz`: the figures again from held-out logits
    that `python -m guard.train --transfer --out-of-fold FILE.npz` saved (no training).
    With --compare WEIGHTS --families A,B: that model on the same held-out rows of those
    families (ones it never trained on), beside the held-out models."""
    p = argparse.ArgumentParser(prog="python -m guard.training.transfer", description=main.__doc__)
    p.add_argument("out_of_fold", type=Path, metavar="FILE.npz")
    p.add_argument("--max-fpr", type=float, default=MAX_FPR, help="the FPR the operating point holds")
    p.add_argument(
        "--point-per-context",
        action="store_true",
        help="a prompt after earlier turns gets its own temperature and operating point (guard.training.points)",
    )
    p.add_argument(
        "--point",
        type=operating_point_arg,
        metavar="T_PROMPT,T_REPLY,OFFSET_PROMPT,OFFSET_REPLY",
        help="read the folds at this point (four numbers, or six with a prompt after turns third in each half, "
        "as guard.train --operating-point) instead of choosing one on them",
    )
    p.add_argument("--compare", type=Path, metavar="WEIGHTS", help="another model's weights (.safetensors)")
    p.add_argument(
        "--families",
        metavar="FAMILY,...",
        default="handwritten v3,multi-turn,multilingual",
        help="with --compare: the families the other model never trained on (default: %(default)s, "
        "which the 2026-11-27 MiniLM model never saw)",
    )
    p.add_argument(
        "--rank",
        action="store_true",
        help="per family: AUPRC, recall at 2%%, 5%% and 10%% FPR set on the family itself, and how often a "
        "two-turn pair's unsafe row scores above its safe twin (for comparing one-fold runs)",
    )
    p.add_argument(
        "--against",
        metavar="FAMILY",
        help="with --rank: rank every family's unsafe prompts against this family's benign prompts "
        "(e.g. 'public benign', after the joint fold --folds 'public harmful+public benign')",
    )
    p.add_argument(
        "--side",
        choices=("prompt", "reply"),
        default="prompt",
        help="with --rank: the side whose rows are ranked (reply: replies and refusals; default: %(default)s)",
    )
    a = p.parse_args(argv)
    oof = OutOfFold.load(a.out_of_fold)
    if a.against and (not a.rank or a.against not in {family(r["source"]) for r in oof.rows}):
        p.error(f"--against goes with --rank and a family held out in {a.out_of_fold}")
    if a.rank:
        print("\n".join(rank_lines(rank_table(oof, a.against, a.side), a.against, a.side)))
        return 0
    if a.compare:
        families = [f.strip() for f in a.families.split(",") if f.strip()]
        unknown = set(families) - {family(r["source"]) for r in oof.rows}
        if unknown or not families:
            p.error(f"no held-out rows of {sorted(unknown) or 'any family'} in {a.out_of_fold}")
        try:
            net = Network.load(a.compare)
        except (OSError, ValueError) as exc:
            p.error(str(exc))
        print("\n".join(compare_lines(compare(oof, net, families, a.max_fpr, a.point_per_context))))
        return 0
    if a.point:
        half = len(a.point) // 2
        print("\n".join(transfer_lines(at_point(oof, a.point[:half], a.point[half:]))))
        return 0
    print("\n".join(transfer_lines(choose(oof, a.max_fpr, a.point_per_context))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
