"""Several runs' held-out logits read as one guard's: the mean of their models' logits.

Runs that tune the same top layers of the same encoder over the same frozen lower layers can
be joined into one guard that runs the frozen layers once and each run's top layers after
them, averaging the heads' logits. Held out, that guard is read from the runs' out-of-fold
files: for every row that each file holds out, the mean of the logits of the folds that
never saw it. The result is an out-of-fold file like any run's, so the same point code
reads it (guard.training.transfer).

Rows are matched by what they say (ROW_KEYS), not by their split or group: adding a table to
a run moves some rows to other splits. A row only some files hold is left out, and so is a
row held out by different folds in different files (it would not be held out by one
guard). For a text judged in several windows, each file holds its model's worst window.

    python -m guard.training.ensemble A.npz B.npz --out AB.npz --figures AB.json
    python -m guard.training.transfer AB.npz --point-per-context   # its held-out table
    python -m guard.training.transfer AB.npz --rank
    python -m guard.training.ensemble A.safetensors B.safetensors --figures AB.json \\
        --out AB.safetensors --manifests A.tsv B.tsv --manifest-out AB.tsv   # the guard itself
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guard.training.transfer import OutOfFold

ROW_KEYS = ("kind", "label", "text", "prompt", "context", "source", "lang")


def row_key(row: dict) -> str:
    """What a row says, whatever its split and group."""
    return json.dumps({k: row.get(k) for k in ROW_KEYS}, sort_keys=True, ensure_ascii=False)


class AmbiguousRows(ValueError):
    """A file that holds out the same row twice: which logits would be its?"""


@dataclass
class Joined:
    """The joined file and what was left out of it."""

    oof: OutOfFold
    held_by_some: int  # rows that only some files hold out
    other_folds: int  # rows that the files hold out in different folds


def join(files: list[OutOfFold]) -> Joined:
    """The rows every file holds out in the same fold, in the first file's order, with the
    mean of the files' logits."""
    if len(files) < 2:
        raise ValueError("joining needs two out-of-fold files or more")
    index = []
    for f in files:
        keys = {}
        for i, r in enumerate(f.rows):
            k = row_key(r)
            if k in keys:
                raise AmbiguousRows(f"a row is held out twice in one file: {r.get('text', '')[:60]!r}")
            keys[k] = i
        index.append(keys)
    common = set(index[0]).intersection(*index[1:])
    some = len(set(index[0]).union(*index[1:]) - common)
    first, kept, other = files[0], [], 0
    for r in first.rows:
        if row_key(r) not in common:
            continue
        at = [keys[row_key(r)] for keys in index]
        if len({f.folds[j] for f, j in zip(files, at)}) > 1:
            other += 1
        else:
            kept.append(at)
    logits = np.array([np.mean([f.logits[j] for f, j in zip(files, at)], axis=0) for at in kept])
    rows = [first.rows[at[0]] for at in kept]
    folds = [first.folds[at[0]] for at in kept]
    settings = {"joined": [f.settings for f in files]}
    return Joined(OutOfFold(rows, logits.reshape(len(kept), first.logits.shape[1]), settings, folds), some, other)


ORDER = ("train", "validation", "test")


def most_trained(*splits: str) -> str:
    """The split that was trained on most: "train", then "validation", then "test"."""
    return min(splits, key=ORDER.index)


def texts_of(r: dict) -> list[str]:
    return [r["text"]] + ([r["prompt"]] if r["prompt"] else [])


def joined_manifest(manifests: list[list[dict]]) -> list[dict]:
    """One manifest for a guard of several runs, whose test split none of them trained or
    validated on: the first run's rows, each of its groups moved to the most trained-on
    split that any run gave any of the group's texts (and a long prompt to where its texts
    went, guard.training.dataset.long_prompts); then the further runs' rows that the first
    lacks and that they trained or validated on, each group in the most trained-on split of
    its own and of the first run's rows it holds (group names "k:group")."""
    base, others = manifests[0], manifests[1:]
    seen: dict[str, str] = {}  # a text: the most trained-on split the further runs gave it
    for manifest in others:
        for r in manifest:
            for t in texts_of(r):
                seen[t] = most_trained(seen.get(t, "test"), r["split"])
    group: dict[str, str] = {}
    for r in base:
        split = most_trained(r["split"], *(seen.get(t, "test") for t in texts_of(r)))
        group[r["group"]] = most_trained(group.get(r["group"], "test"), split)
    sources = {r["text"]: group[r["group"]] for r in base if "+" not in r["source"] and len(r["text"]) > 60}
    for r in base:
        if r["source"].endswith("+long"):
            group[r["group"]] = most_trained(group[r["group"]], *(s for t, s in sources.items() if t in r["text"]))
    out = {row_key(r): dict(r, split=group[r["group"]]) for r in base}
    placed = {t: row["split"] for row in out.values() for t in texts_of(row)}
    for k, manifest in enumerate(others, 1):
        theirs: dict[str, str] = {}
        for r in manifest:
            split = most_trained(r["split"], *(placed.get(t, seen[t]) for t in texts_of(r)))
            theirs[r["group"]] = most_trained(theirs.get(r["group"], "test"), split)
        for r in manifest:
            if row_key(r) not in out and theirs[r["group"]] != "test":
                out[row_key(r)] = dict(r, split=theirs[r["group"]], group=f"{k}:{r['group']}")
    return list(out.values())


def join_weights(weights: list[Path], figures: Path, out: Path) -> None:
    """The runs' weights in one file (guard.offline_stacks), calibrated at the point its
    joined held-out figures chose (`figures`, written by the .npz mode)."""
    from guard.offline_model import Network, calibrations
    from guard.offline_stacks import joined

    point = json.loads(figures.read_text())
    net = joined([Network.load(w) for w in weights])
    net.temperatures, net.offsets = calibrations(point["temperatures"], point["offsets"])
    net.save(out, {"runs": [str(w) for w in weights]})


def main(argv=None) -> int:
    """`python -m guard.training.ensemble A.npz B.npz --out AB.npz --figures AB.json`: the
    held-out logits of a guard that averages the runs' models, as one out-of-fold file, and
    its held-out figures at the point chosen on them (--point-per-context). `python -m
    guard.training.ensemble A.safetensors B.safetensors --figures AB.json --out
    AB.safetensors --manifests A.tsv B.tsv --manifest-out AB.tsv`: the runs' weights as that
    guard, at that point, and one manifest of their splits."""
    p = argparse.ArgumentParser(prog="python -m guard.training.ensemble", description=main.__doc__)
    p.add_argument(
        "files", type=Path, nargs="+", metavar="FILE", help="two out-of-fold files (.npz) or weights or more"
    )
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="where the joined file goes")
    p.add_argument("--figures", type=Path, metavar="FILE.json", help="the joined held-out figures (written, or read)")
    p.add_argument("--manifests", type=Path, nargs="+", metavar="FILE.tsv", help="with weights: each run's manifest")
    p.add_argument("--manifest-out", type=Path, metavar="FILE.tsv", help="with weights: where the joined manifest goes")
    a = p.parse_args(argv)
    if len(a.files) < 2:
        p.error("give two out-of-fold files or more, or two weights files or more")
    weights = {f.suffix for f in a.files} == {".safetensors"}
    if weights and not (a.figures and a.manifests and a.manifest_out and len(a.manifests) == len(a.files)):
        p.error("weights need --figures (the joined held-out figures) and a manifest each, --manifests, --manifest-out")
    try:
        if weights:
            from guard.training.manifest import read_manifest, write_rows

            join_weights(a.files, a.figures, a.out)
            write_rows(joined_manifest([read_manifest(m) for m in a.manifests]), a.manifest_out)
            print(f"{a.out}: {len(a.files)} runs in one guard; {a.manifest_out}: their splits")
            return 0
        joined = join([OutOfFold.load(f) for f in a.files])
    except (OSError, ValueError, KeyError) as exc:
        p.error(f"{type(exc).__name__}: {exc}")
    joined.oof.save(a.out)
    print(
        f"{len(joined.oof.rows)} rows held out by every file, logits averaged; left out: "
        f"{joined.held_by_some} held out by only some, {joined.other_folds} held out in different folds"
    )
    if a.figures:
        from guard.training.transfer import choose

        a.figures.write_text(json.dumps(choose(joined.oof, per_context=True), indent=1) + "\n")
        print(f"{a.figures}: its held-out figures, a prompt after earlier turns with its own point")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
