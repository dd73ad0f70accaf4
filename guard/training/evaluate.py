"""python -m guard.evaluate: the offline classifier's standard metrics on one split.

    python -m guard.evaluate                       # validation split, table
    python -m guard.evaluate --split test --json   # the test split (once per committed model)
    python -m guard.evaluate --split sample        # every 10th test example (what CI checks)
    python -m guard.evaluate --split test --write-figures   # also update guard/data/offline_figures.json
    python -m guard.evaluate --split test --labels labels.tsv --model new.safetensors   # before / after
    python -m guard.evaluate --obfuscation         # flagged unsafe prompts still flagged when obfuscated
    python -m guard.evaluate --long --window 128   # ... when buried in long benign text, judged in 128-piece windows
    python -m guard.evaluate --after-turns         # ... when sent after harmless turns of chat
    python -m guard.evaluate --table guard/data/multilingual_v2.tsv   # a table the model never read
    python -m guard.evaluate --weights run/model.safetensors --manifest run/examples.tsv \
        --transfer-figures run/transfer.json        # a candidate, with its run's held-out table

Reads guard/data/examples.tsv (written by `python -m guard.train`) and the committed model,
and judges every example the way OfflineGuard.check does (normalised text, every window).
Per side (prompt, reply) and per source: precision, recall and F1 at the threshold (0.5,
Llama Guard's default), AUPRC, recall at 1% and 5% FPR (the threshold that lets that share
of benign examples through), expected calibration error (ece), over-refusal on benign-edgy
prompts (benign prompts with words of harm, see guard.training.dataset.benign_edgy),
per-category recall with n, the hand-written multi-turn pairs (follow-ups flagged after
the turn that makes them harmful, and after the harmless one), recall and FPR per language,
the prompts of over 150 words (pasted text: harmful and harmless ones flagged),
and the median latency of OfflineGuard.check on 50 of the split's prompts. How the model
does on sources it never saw is printed after them: the leave-one-source-out table of the
run that made the model (guard/data/transfer_figures.json, written by `python -m guard.train
--transfer`), with each family's recall, FPR, AUPRC and calibration error.

With --table FILE it scores a hand-written table (guard/data's columns label, kind, lang,
prompt, text) instead of a split, and says how many of its texts the model trained on: a
table written after the model is a fresh held-out set (per language, per category).

With --model (a model trained with `python -m guard.train --with-labels`), it compares
the committed model (before) with that one (after) on the split, and with --labels FILE
also on the `heldout` rows of a file of `python -m moderation.log dataset` (rows no
training run reads).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import torch  # the figures record torch's thread count

from guard.offline import OfflineGuard
from guard.offline_model import Network
from guard.taxonomy import LLAMA_GUARD_2
from guard.training.dilution import benign_texts, dilution_figures
from guard.training.dilution import table as dilution_table
from guard.training.in_context import ALONE
from guard.training.manifest import MANIFEST, read_manifest
from guard.training.metrics import LONG_WORDS, evaluate_rows
from guard.training.obfuscation import obfuscation_figures, unsafe_prompts
from guard.training.obfuscation import table as obfuscation_table
from guard.training.padded_turns import harmless_turns, padded_turn_figures
from guard.training.padded_turns import table as padded_turns_table
from guard.training.sources import KINDS, handwritten, labelled_turns
from guard.training.train import window_arg
from guard.training.transfer import TRANSFER_FIGURES, figures_of, transfer_lines

FIGURES = Path(__file__).resolve().parent.parent / "data" / "offline_figures.json"
NO_TRANSFER = (
    "guard/data/transfer_figures.json is written by python -m guard.train --transfer; weights re-made with "
    "--operating-point have their run's table in docs/offline-classifier.md"
)


def median_latency_ms(guard: OfflineGuard, rows: list[dict], n: int = 50) -> float:
    prompts = [r["text"] for r in rows if r["kind"] == "prompt"][:n]
    times = []
    for text in prompts:
        started = time.perf_counter()
        guard.check([{"role": "user", "content": text}])
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1) if times else float("nan")


def select(rows: list[dict], split: str) -> list[dict]:
    if split == "sample":
        return [r for r in rows if r["split"] == "test"][::10]
    return [r for r in rows if r["split"] == split]


def table(result: dict) -> list[str]:
    cols = (
        "n_unsafe",
        "n_benign",
        "precision",
        "recall",
        "f1",
        "fpr",
        "auprc",
        "recall_at_1pct_fpr",
        "recall_at_5pct_fpr",
        "ece",
    )
    lines = [f"{'':<44}" + "".join(f"{c.replace('recall_at_', 'R@').replace('pct_fpr', '%'):>10}" for c in cols)]
    for side in ("prompt", "reply"):
        if side not in result:
            continue
        part = result[side]
        lines.append(f"{side + ' side (all)':<44}" + "".join(f"{part[c]:>10}" for c in cols))
        for src, m in part["per_source"].items():
            lines.append(f"  {src[:42]:<42}" + "".join(f"{m[c]:>10}" for c in cols))
        if side == "prompt":
            lines.append(
                f"  over-refusal on benign-edgy prompts: {part['over_refusal_benign_edgy']} (n {part['benign_edgy_n']})"
            )
            if part.get("multi_turn"):
                m = part["multi_turn"]
                lines.append(
                    f"  multi-turn pairs (n {m['n_pairs']}): in context flagged {m['in_context_flagged']}, "
                    f"harmless controls flagged {m['controls_flagged']}"
                )
            if part.get("long"):
                m = part["long"]
                lines.append(
                    f"  prompts of over {LONG_WORDS} words: harmful flagged {m['unsafe_flagged']} of {m['n_unsafe']}, "
                    f"harmless flagged {m['benign_flagged']} of {m['n_benign']}"
                )
            lines.append(
                "  per language (recall / FPR): "
                + ", ".join(f"{k} {v['recall']} / {v['fpr']}" for k, v in part.get("per_language", {}).items())
            )
        lines.append(
            "  per-category recall: "
            + ", ".join(f"{c} {v['recall']} (n {v['n']})" for c, v in part["per_category_recall"].items())
        )
    lines.append(f"median latency of a prompt check: {result['median_latency_ms']} ms")
    return lines


def label_rows(path: Path) -> list[dict]:
    """The held-out labelled turns as manifest rows."""
    return [
        {"split": "heldout", "label": e.label, "kind": e.kind, "source": e.source, "prompt": e.prompt, "text": e.text}
        for e in labelled_turns(path, "heldout")
    ]


def table_rows(path: Path) -> list[dict]:
    """A hand-written table's rows as manifest rows (split "table"). Raises ValueError
    naming the file when it is not such a table."""
    with path.open(encoding="utf-8") as f:
        columns = set(next(csv.reader(f, delimiter="\t"), []))
    missing = {"label", "kind", "text"} - columns
    if missing:
        raise ValueError(f"{path} is not a hand-written table (no column {', '.join(sorted(missing))})")
    rows = [
        {"split": "table", "group": "", "label": e.label, "kind": e.kind, "source": e.source}
        | {"license": e.license, "prompt": e.prompt, "text": e.text, "context": [], "lang": e.lang}
        for e in handwritten(path)
    ]
    labels = {"safe", *(c.code for c in LLAMA_GUARD_2)}
    wrong = next((r for r in rows if r["label"] not in labels or r["kind"] not in KINDS), None)
    if wrong:
        what = f"{wrong['label']!r} / {wrong['kind']!r}"
        raise ValueError(f"{path}: {what} is no label / kind (row {wrong['text'][:40]!r})")
    return rows


def seen_in_training(rows: list[dict], manifest: list[dict]) -> int:
    """How many of `rows` share their text (and, for a reply, its prompt) with a training row."""

    def key(r: dict) -> tuple:
        return r["kind"] == "prompt", r["prompt"].lower(), r["text"].lower()

    trained = {key(r) for r in manifest if r["split"] == "train"}
    return sum(key(r) in trained for r in rows)


def comparison(models: dict[str, Network], parts: dict[str, list[dict]], threshold: float) -> list[str]:
    """Each model's precision, recall, FPR and AUPRC per part and side, one line each."""
    cols = ("n_unsafe", "n_benign", "precision", "recall", "fpr", "auprc")
    lines = [f"{'':<34}" + "".join(f"{c:>10}" for c in cols)]
    for part, rows in parts.items():
        results = {name: evaluate_rows(net, rows, threshold) for name, net in models.items()}
        for side in ("prompt", "reply"):
            for name, result in results.items():
                if side in result:
                    lines.append(f"{f'{part}, {side}, {name}':<34}" + "".join(f"{result[side][c]:>10}" for c in cols))
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m guard.evaluate",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--split", choices=("validation", "test", "sample", "train"), default="validation")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--write-figures", action="store_true", help=f"store the result in {FIGURES.name}")
    p.add_argument("--model", type=Path, help="compare the committed model (before) with this one (after)")
    p.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="also score the heldout rows of this `python -m moderation.log dataset` file",
    )
    p.add_argument(
        "--table",
        type=Path,
        metavar="FILE",
        help="instead of a split, score a hand-written table (label, kind, lang, prompt, text)",
    )
    p.add_argument(
        "--obfuscation",
        action="store_true",
        help="instead: the share of the split's flagged unsafe prompts still flagged when obfuscated "
        "(guard.training.obfuscation)",
    )
    p.add_argument(
        "--long",
        action="store_true",
        help="instead: the share of the split's flagged unsafe prompts still flagged when buried in long "
        "benign text, and of the same texts with a benign prompt flagged (guard.training.dilution)",
    )
    p.add_argument(
        "--after-turns",
        action="store_true",
        help="instead: the share of the split's flagged unsafe prompts still flagged after 1, 2 and 4 harmless "
        "turns, and of its benign prompts flagged after them (guard.training.padded_turns)",
    )
    p.add_argument(
        "--window",
        type=window_arg,
        metavar="PIECES",
        help="judge in windows of this many word pieces instead of the model's own (to choose its judging window)",
    )
    p.add_argument(
        "--weights",
        type=Path,
        metavar="FILE",
        help="judge with these weights instead of the committed ones (a candidate; its own run's --manifest)",
    )
    p.add_argument(
        "--manifest", type=Path, default=MANIFEST, help="the split examples to read (default: the committed manifest)"
    )
    p.add_argument(
        "--transfer-figures",
        type=Path,
        default=TRANSFER_FIGURES,
        metavar="FILE",
        help="the leave-one-source-out figures of the run that made the weights (printed when its offsets are theirs)",
    )
    a = p.parse_args(argv)
    if a.write_figures and (a.weights or a.manifest != MANIFEST or a.table):
        p.error("--write-figures stores the committed model's figures: not with --weights, --manifest or --table")
    try:
        manifest = read_manifest(a.manifest)
        rows = table_rows(a.table) if a.table else select(manifest, a.split)
        guard = OfflineGuard.load(a.weights) if a.weights else OfflineGuard.load()
    except (OSError, ValueError, KeyError) as exc:
        p.error(str(exc))
    if a.window is not None:
        guard.net.window = a.window
    if a.long:
        figures = {"split": a.split, "window": guard.net.window}
        figures |= dilution_figures(guard, unsafe_prompts(rows), benign_texts(rows), a.threshold)
        lines = [f"split: {a.split}, windows of {guard.net.window} word pieces"] + dilution_table(figures)
        print(json.dumps(figures, indent=1) if a.json else "\n".join(lines))
        return 0
    if a.after_turns:
        alone = [  # what every run derives alike (not a twin's follow-up read alone: --alone-follow-ups)
            r for r in rows if r["kind"] == "prompt" and not r.get("context") and not r["source"].endswith(ALONE)
        ]
        benign, unsafe = ([r["text"] for r in alone if (r["label"] == "safe") == safe] for safe in (True, False))
        figures = padded_turn_figures(guard, unsafe, benign, harmless_turns(rows), a.threshold)
        figures = {"split": f"table {a.table}" if a.table else a.split, **figures}
        lines = [f"split: {figures['split']}"] + padded_turns_table(figures)
        print(json.dumps(figures, indent=1) if a.json else "\n".join(lines))
        return 0
    if a.obfuscation:
        figures = {"split": a.split, **obfuscation_figures(guard, unsafe_prompts(rows), a.threshold)}
        print(
            json.dumps(figures, indent=1) if a.json else "\n".join([f"split: {a.split}"] + obfuscation_table(figures))
        )
        return 0
    if a.model or a.labels:
        models = {"before": guard.net, **({"after": OfflineGuard.load(a.model).net} if a.model else {})}
        try:
            parts = {a.split: rows, **({"held-out labels": label_rows(a.labels)} if a.labels else {})}
        except (OSError, ValueError) as exc:
            p.error(str(exc))
        print("\n".join([f"threshold {a.threshold:g}"] + comparison(models, parts, a.threshold)))
        return 0
    result = {
        "split": f"table {a.table} ({seen_in_training(rows, manifest)} of {len(rows)} rows trained on)"
        if a.table
        else a.split,
        "threshold": a.threshold,
        "torch_threads": torch.get_num_threads(),
        **evaluate_rows(guard.net, rows, a.threshold),
    }
    result["median_latency_ms"] = median_latency_ms(guard, rows)
    if a.write_figures:
        figures = json.loads(FIGURES.read_text()) if FIGURES.is_file() else {}
        figures[a.split] = result
        FIGURES.write_text(json.dumps(figures, indent=1) + "\n")
    moved = figures_of(guard.net, a.transfer_figures)
    if a.json:
        print(json.dumps(result | {"leave_one_source_out": moved}, indent=1))
        return 0
    lines = [f"split: {result['split']}"] + table(result) + [""]
    lines += transfer_lines(moved) if moved else ["no leave-one-source-out figures for these weights: " + NO_TRANSFER]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
