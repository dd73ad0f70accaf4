"""Shape of the hand-written data written for issue 20 (read by guard.train).

guard/data/multilingual.tsv, guard/data/multiturn.tsv, guard/data/multiturn_v2.tsv,
guard/data/handwritten_v3.tsv and guard/data/handwritten_v4.tsv, and the tables read when named
(guard/data/handwritten_words.tsv, guard/data/multilingual_v2.tsv, guard/data/multiturn_scenes.tsv,
guard/data/multiturn_objects.tsv, guard/data/handwritten_replies.tsv and
guard/data/multilingual_replies.tsv, `--with-tables`), and the English check table that no
training reads (guard/data/handwritten_check.tsv, `python -m guard.evaluate --table`) are read as guard.training
reads its TSV files (csv.DictReader, tab-delimited); these tests check their columns,
labels, languages, pairing, minimum counts and that no text repeats one of another file in
guard/data.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from guard.taxonomy import LLAMA_GUARD_2

DATA = Path(__file__).resolve().parent.parent / "guard" / "data"
MULTILINGUAL = DATA / "multilingual.tsv"
MULTITURN = DATA / "multiturn.tsv"
MULTITURN_V2 = DATA / "multiturn_v2.tsv"
HANDWRITTEN_V3 = DATA / "handwritten_v3.tsv"
HANDWRITTEN_V4 = DATA / "handwritten_v4.tsv"
WORDS = DATA / "handwritten_words.tsv"
MULTILINGUAL_V2 = DATA / "multilingual_v2.tsv"
SCENES = DATA / "multiturn_scenes.tsv"
OBJECTS = DATA / "multiturn_objects.tsv"
REPLIES = DATA / "handwritten_replies.tsv"
ML_REPLIES = DATA / "multilingual_replies.tsv"
CHECK = DATA / "handwritten_check.tsv"
NEW_FILES = (MULTILINGUAL, MULTITURN, MULTITURN_V2, HANDWRITTEN_V3, HANDWRITTEN_V4, WORDS, MULTILINGUAL_V2)
NEW_FILES += (SCENES, OBJECTS, REPLIES, ML_REPLIES, CHECK)
SIDES = [(side, n) for side in ("harmful", "benign") for n in (1, 2, 3)]
PAIRED = {MULTITURN: 120, MULTITURN_V2: 80}  # two-turn tables and their least number of pairs

CODES = [c.code for c in LLAMA_GUARD_2]
LABELS = set(CODES) | {"safe"}
KINDS = {"prompt", "reply", "refusal"}
LANGUAGES = ("fr", "es", "de", "it", "pt", "ru", "ar", "zh")
COLUMNS = {
    MULTILINGUAL: ["label", "kind", "lang", "item", "prompt", "text"],
    **dict.fromkeys(PAIRED, ["pair", "label", "first_user", "first_assistant", "user"]),
    HANDWRITTEN_V3: ["label", "kind", "prompt", "text"],
    HANDWRITTEN_V4: ["label", "kind", "lang", "prompt", "text"],
    WORDS: ["label", "kind", "lang", "prompt", "text"],
    REPLIES: ["label", "kind", "lang", "prompt", "text"],
    MULTILINGUAL_V2: ["label", "kind", "lang", "item", "prompt", "text"],
    ML_REPLIES: ["label", "kind", "lang", "item", "prompt", "text"],
    CHECK: ["label", "kind", "lang", "prompt", "text"],
    SCENES: ["scene", "lang", "label", "question", "answer", "follow_up_1", "follow_up_2"]
    + [f"{side}_{n}" for side, n in SIDES],
    OBJECTS: ["scene", "lang", "label", "follow_up_1", "follow_up_2"]
    + [f"{side}_{part}_{n}" for side, n in SIDES for part in ("question", "answer")],
}


def _read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _key(text: str) -> str:
    return " ".join(text.split()).lower()


@pytest.mark.parametrize("path", NEW_FILES, ids=lambda p: p.name)
def test_columns_and_one_row_per_line(path):
    rows = _read(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == COLUMNS[path]
    assert len(rows) == len(lines) - 1, "a quote or newline merged lines"
    for row in rows:
        assert None not in row and all(v is not None for v in row.values()), row
        assert row["label"] in LABELS, row


@pytest.mark.parametrize(
    "path", [MULTILINGUAL, HANDWRITTEN_V3, WORDS, MULTILINGUAL_V2, REPLIES, ML_REPLIES], ids=lambda p: p.name
)
def test_kinds_and_their_prompts(path):
    for row in _read(path):
        assert row["kind"] in KINDS, row
        assert row["text"].strip(), row
        if row["kind"] == "prompt":
            assert row["prompt"] == "", row
        else:
            assert row["prompt"].strip(), row
        if row["kind"] == "refusal":
            assert row["label"] == "safe", row


def _harmful_and_safe_prompts(rows):
    prompts = [r for r in rows if r["kind"] == "prompt"]
    return ([r for r in prompts if r["label"] != "safe"], [r for r in prompts if r["label"] == "safe"])


def test_multilingual_counts_per_language():
    rows = _read(MULTILINGUAL)
    assert {r["lang"] for r in rows} <= set(LANGUAGES)
    for lang in LANGUAGES:
        harmful, safe = _harmful_and_safe_prompts([r for r in rows if r["lang"] == lang])
        assert len(harmful) >= 30, lang
        assert len(safe) >= 30, lang
        assert {r["label"] for r in harmful} == set(CODES), lang


def test_multilingual_v2_counts_per_language_with_replies():
    rows = _read(MULTILINGUAL_V2)
    assert {r["lang"] for r in rows} == set(LANGUAGES)
    for lang in LANGUAGES:
        own = [r for r in rows if r["lang"] == lang]
        harmful, safe = _harmful_and_safe_prompts(own)
        assert len(harmful) >= 60 and len(safe) >= 50, lang
        assert {r["label"] for r in harmful} == set(CODES), lang
        replies = Counter(r["label"] == "safe" for r in own if r["kind"] == "reply")
        assert replies[True] >= 10 and replies[False] >= 10, lang


def test_multilingual_replies_per_language():
    """Replies only, written in each language (no item shared across languages): harmful
    compliance over every category but S4, benign replies and refusals. (Rows that fell in
    a near-duplicate group with an older example were dropped: bench/table_splits.py.)"""
    rows = _read(ML_REPLIES)
    assert {r["lang"] for r in rows} == set(LANGUAGES) and {r["kind"] for r in rows} == {"reply", "refusal"}
    assert len({r["item"] for r in rows}) == len(rows)
    assert {r["label"] for r in rows} == LABELS - {"S4"}
    for lang in LANGUAGES:
        own = [r for r in rows if r["lang"] == lang]
        harmful = [r for r in own if r["label"] != "safe"]
        benign = [r for r in own if r["kind"] == "reply" and r["label"] == "safe"]
        assert len(harmful) >= 14 and len(benign) >= 10, lang
        assert sum(r["kind"] == "refusal" for r in own) >= 4, lang
        assert len({r["label"] for r in harmful}) >= 8, lang


@pytest.mark.parametrize(("path", "joined"), [(MULTILINGUAL, 90), (MULTILINGUAL_V2, 100)], ids=["v1", "v2"])
def test_multilingual_items_join_one_texts_translations_only(path, joined):
    """The `item` column marks the translations of one text (kept in one split by
    guard.training.dataset.assign): one row per language, one kind, one side of safe."""
    items: dict[str, list[dict]] = {}
    for row in _read(path):
        assert row["item"].strip(), row
        items.setdefault(row["item"], []).append(row)
    for item, rows in items.items():
        assert len({r["lang"] for r in rows}) == len(rows), item
        assert len({(r["kind"], r["label"] == "safe") for r in rows}) == 1, item
    assert sum(len(rows) > 1 for rows in items.values()) >= joined  # items in two languages or more


def test_words_table_gives_words_of_harm_their_harmful_sense():
    """Each word of harm is asked for in its harmful sense many times, and used harmlessly too."""
    rows = _read(WORDS)
    assert {r["kind"] for r in rows} == {"prompt"} and {r["lang"] for r in rows} == {"en"}
    harmful, safe = _harmful_and_safe_prompts(rows)
    assert len(harmful) >= 250 and len(safe) >= 75
    for word in ("hack", "bypass", "exploit", "crack", "ransomware", "phishing", "launder", "poison", "smuggl"):
        uses = [r for r in harmful if word in r["text"].lower()]
        assert len(uses) >= 8, word
        assert any(word in r["text"].lower() for r in safe), word


def test_replies_table_pairs_refusals_with_compliance():
    """The reply table: refusals of harmful prompts (many naming the harm), benign replies on
    dark topics, and harmful replies that answer a prompt the table also refuses, so a pair
    differs by the reply alone. No harmful reply for S4; every other category has some."""
    rows = _read(REPLIES)
    assert {r["kind"] for r in rows} == {"refusal", "reply"} and {r["lang"] for r in rows} == {"en"}
    refused = {_key(r["prompt"]) for r in rows if r["kind"] == "refusal"}
    harmful = [r for r in rows if r["kind"] == "reply" and r["label"] != "safe"]
    benign = [r for r in rows if r["kind"] == "reply" and r["label"] == "safe"]
    assert len(refused) >= 250 and len(benign) >= 150 and len(harmful) >= 100
    assert sum(_key(r["prompt"]) in refused for r in harmful) >= 0.95 * len(harmful)
    assert {r["label"] for r in harmful} == set(CODES) - {"S4"}


def test_the_check_table_is_english_covers_every_category_and_no_training_reads_it():
    """A table for reading models on, never for training them: no table list of
    guard.training.sources names it, and no manifest text is one of its texts."""
    from guard.training import sources

    rows = _read(CHECK)
    harmful, benign = _harmful_and_safe_prompts(rows)
    assert {r["lang"] for r in rows} == {"en"}
    assert len(harmful) >= 100 and len(benign) >= 130
    assert {r["label"] for r in harmful} == set(CODES)
    replies = [r for r in rows if r["kind"] != "prompt"]
    assert sum(r["label"] != "safe" for r in replies) >= 30 and sum(r["label"] == "safe" for r in replies) >= 30
    read = {*sources.OPTIONAL_TABLES.values(), *sources.SCENE_TABLES, *sources.PAIRED}
    read |= {v for k, v in vars(sources).items() if k.startswith("HANDWRITTEN") or k == "MULTILINGUAL"}
    assert CHECK not in read
    manifest = {_key(r["text"]) for r in _read(DATA / "examples.tsv")}
    assert not manifest & {_key(r["text"]) for r in rows}


def test_handwritten_v3_counts():
    rows = _read(HANDWRITTEN_V3)
    harmful, safe = _harmful_and_safe_prompts(rows)
    assert len(harmful) >= 500
    assert len(safe) >= 500
    per_code = Counter(r["label"] for r in harmful)
    assert all(per_code[code] >= 25 for code in CODES), per_code
    long_benign = [r for r in rows if r["label"] == "safe" and 150 <= len(r["text"].split()) <= 400]
    assert len(long_benign) >= 15


def test_handwritten_v4_counts_and_self_contained_harmful_replies():
    """v4's harmful replies are harmful by their own words: written without a prompt, so
    guard.training.dataset.drifting_replies may put them after any benign prompt; its
    benign replies keep theirs. Every category has harmful prompts and at least one such reply."""
    rows = _read(HANDWRITTEN_V4)
    harmful, safe = _harmful_and_safe_prompts(rows)
    assert len(harmful) >= 70 and len(safe) >= 90
    assert {r["label"] for r in harmful} == set(CODES)
    replies = [r for r in rows if r["kind"] == "reply"]
    unsafe = [r for r in replies if r["label"] != "safe"]
    assert len(unsafe) >= 40 and {r["label"] for r in unsafe} == set(CODES)
    assert all(r["prompt"] == "" for r in unsafe) and all(r["prompt"].strip() for r in replies if r not in unsafe)
    assert all(r["prompt"] == "" for r in rows if r["kind"] == "prompt")
    assert {r["lang"] for r in rows} <= {"en", *LANGUAGES} and {r["lang"] for r in unsafe} >= set(LANGUAGES)


@pytest.mark.parametrize("path", list(PAIRED), ids=lambda p: p.name)
def test_multiturn_pairs(path):
    rows = _read(path)
    pairs: dict[str, list[dict]] = {}
    for row in rows:
        pairs.setdefault(row["pair"], []).append(row)
    assert len(pairs) >= PAIRED[path]
    for pair, two in pairs.items():
        labels = sorted(r["label"] for r in two)
        assert len(two) == 2 and labels[1] == "safe" and labels[0] in CODES, pair
        assert two[0]["user"] == two[1]["user"], pair
        assert _key(two[0]["first_user"]) != _key(two[1]["first_user"]), pair
        assert all(r["first_user"].strip() and r["first_assistant"].strip() for r in two), pair
    in_context = Counter(r["label"] for r in rows if r["label"] != "safe")
    assert set(in_context) == set(CODES), in_context


@pytest.mark.parametrize("path", [SCENES, OBJECTS], ids=lambda p: p.name)
def test_multiturn_scenes(path):
    """Each scene: a label, two follow-ups and six first turns (three harmful, three benign),
    all different and none empty; every category, and scenes in other languages."""
    rows = _read(path)
    assert len(rows) >= {SCENES: 85, OBJECTS: 45}[path] and len({r["scene"] for r in rows}) == len(rows)
    assert {r["label"] for r in rows} == set(CODES)
    assert {r["lang"] for r in rows} <= {"en", *LANGUAGES} and len({r["lang"] for r in rows}) >= 6
    for r in rows:
        if path == SCENES:
            turns = [_key(r[f"{side}_{n}"]) for side, n in SIDES]
            assert r["question"].strip() and r["answer"].strip(), r["scene"]
        else:
            turns = [_key(r[f"{side}_question_{n}"]) for side, n in SIDES]
            assert all(r[f"{side}_answer_{n}"].strip() for side, n in SIDES), r["scene"]
        follow_ups = {_key(r["follow_up_1"]), _key(r["follow_up_2"])}
        assert all(turns) and len(set(turns)) == 6, r["scene"]
        assert len(follow_ups) == 2 and all(follow_ups), r["scene"]


def _scene_texts(row: dict) -> list[str]:
    if "question" in row:
        return [row["question"], row["follow_up_1"], row["follow_up_2"]]
    return [row["follow_up_1"], row["follow_up_2"]] + [row[f"{side}_question_{n}"] for side, n in SIDES]


_FUNCTION_WORDS = set("what whats is a an the s it of i how does do that are on in to".split())


def _content_words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower())) - _FUNCTION_WORDS


@pytest.mark.parametrize("path", [SCENES, OBJECTS], ids=lambda p: p.name)
def test_no_scene_is_near_a_two_turn_table(path):
    """The two-turn families are what a fold without them is judged on: no question or
    follow-up of a scene shares half its content words (Jaccard, function words left out:
    "What is X?" questions are short) with a first turn or follow-up of theirs."""
    theirs = [_content_words(r[c]) for p in PAIRED for r in _read(p) for c in ("first_user", "user")]
    ours = [(r["scene"], _content_words(t)) for r in _read(path) for t in _scene_texts(r)]
    near = [scene for scene, w in ours for o in theirs if w and o and len(w & o) / len(w | o) >= 0.5]
    assert not near, sorted(set(near))


def _single_turn_keys(path: Path) -> list[tuple[str, str, str]]:
    return [(r["kind"], _key(r["prompt"]), _key(r["text"])) for r in _read(path)]


@pytest.mark.parametrize("path", NEW_FILES, ids=lambda p: p.name)
def test_no_duplicates_within_a_file(path):
    if path in PAIRED:
        keys = [(_key(r["first_user"]), _key(r["first_assistant"]), _key(r["user"])) for r in _read(path)]
    elif path == SCENES:
        keys = [_key(r["question"]) for r in _read(path)]
    elif path == OBJECTS:
        keys = [_key(r[f"{side}_question_{n}"]) for r in _read(path) for side, n in SIDES]
    else:
        keys = _single_turn_keys(path)
    repeated = [k for k, n in Counter(keys).items() if n > 1]
    assert not repeated


def _texts(path: Path) -> set[str]:
    if path in PAIRED:
        rows = _read(path)
        return {_key(r["first_user"]) for r in rows}
    if path in (SCENES, OBJECTS):
        return {_key(t) for r in _read(path) for t in _scene_texts(r)}
    return {_key(r["text"]) for r in _read(path) if r.get("text")}


def test_no_text_repeats_another_file():
    """Every text of a new file is new: to each other and to every other guard/data/*.tsv
    (but the manifest, examples.tsv, which `python -m guard.train` writes from them all)."""
    files = sorted(p for p in DATA.glob("*.tsv") if p.name != "examples.tsv")
    assert set(NEW_FILES) <= set(files)
    texts = {path: _texts(path) for path in files}
    for new in NEW_FILES:
        for other in files:
            if other != new:
                shared = texts[new] & texts[other]
                assert not shared, (new.name, other.name, sorted(shared)[:5])
