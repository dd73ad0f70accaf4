"""guard.train --with-tables: hand-written tables written after the committed model are read
only when named, so that the command that rebuilds the committed weights still reads what
they were trained on, and a named table's rows join the family leave-one-source-out holds
out with them."""

from __future__ import annotations

import argparse
import csv

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from guard.training.families import family
from guard.training.options import LATER_SETTINGS, tables_arg
from guard.training.scenes import scenes
from guard.training.sources import OBJECTS, OPTIONAL_TABLES, SCENES, all_examples, table
from guard.training.train import parser

FAMILY = {"words": "handwritten v3", "multilingual v2": "multilingual v2"}
FAMILY |= {"scenes": "multi-turn scenes", "objects": "multi-turn scenes", "replies": "handwritten replies"}
FAMILY |= {"multilingual replies": "multilingual"}


def _texts(examples) -> set[tuple[str, str]]:
    return {(e.kind, e.text) for e in examples}


def test_every_optional_table_has_a_family():
    assert set(FAMILY) == set(OPTIONAL_TABLES)


@pytest.mark.parametrize("name", sorted(OPTIONAL_TABLES))
def test_a_table_is_read_only_when_named_and_joins_its_family(name):
    rows = table(OPTIONAL_TABLES[name])
    assert len(rows) > 100
    without = all_examples(None, tiny=True)
    named = all_examples(None, tiny=True, optional=(name,))
    added = [e for e in named if (e.kind, e.text) not in _texts(without)]
    # every row of the table that is no duplicate of an older one (nor a smoke case) is added
    assert _texts(added) <= _texts(rows)
    assert len(added) >= 0.95 * len(rows)
    assert {family(e.source) for e in added} == {FAMILY[name]}
    assert len(named) == len(without) + len(added)


def test_the_default_recipe_reads_no_optional_table():
    a = parser().parse_args([])
    assert a.with_tables is None
    sources = {e.source for e in all_examples(None, tiny=True)}
    assert not {s for s in sources for path in OPTIONAL_TABLES.values() if path.stem in s}


def test_named_tables_are_one_canonical_setting_so_a_stopped_run_goes_on():
    assert "with_tables" in LATER_SETTINGS  # older out-of-fold files, made without it, still go on
    assert tables_arg("words, multilingual v2") == tables_arg("multilingual v2,words,words")
    assert parser().parse_args(["--with-tables", "words"]).with_tables == "words"


@given(st.text(max_size=40))
def test_an_unknown_table_is_refused_with_the_names_it_may_take(text):
    names = {n.strip() for n in text.split(",") if n.strip()}
    if names and names <= set(OPTIONAL_TABLES):
        assert set(tables_arg(text).split(",")) == names
        return
    with pytest.raises(argparse.ArgumentTypeError) as err:
        tables_arg(text)
    assert all(name in str(err.value) for name in OPTIONAL_TABLES)


def test_the_command_line_refuses_an_unknown_table(capsys):
    with pytest.raises(SystemExit) as stop:
        parser().parse_args(["--with-tables", "everything"])
    assert stop.value.code == 2
    assert "words" in capsys.readouterr().err


def test_a_tables_translations_of_one_item_share_a_group_and_split():
    """Rows a table marks as one item are one group whatever their words; rows without an
    item, or of another table with the same item, are grouped only when near-duplicates."""
    from guard.training.dataset import assign
    from guard.training.sources import Example

    def ex(text, lang, item, table="t"):
        return Example(text, "S1", "prompt", f"handwritten ({table})", "CC0-1.0", lang=lang, item=item)

    texts = [f"distinct text number {i} about topic {i * 7}" for i in range(40)]
    examples = [ex(t, ("fr", "de")[i % 2], f"i{i // 4}") for i, t in enumerate(texts[:20])]
    examples += [ex(t, "en", "") for t in texts[20:39]] + [ex(texts[39], "en", "i0", table="u")]
    items = assign(examples, lambda ts: np.eye(len(ts)), seed=0)  # no near-duplicates by embedding
    by_text = {i.example.text: i for i in items}
    for k in range(5):
        same = {(by_text[t].group, by_text[t].split) for t in texts[4 * k : 4 * k + 4]}
        assert len(same) == 1
    assert len({by_text[t].group for t in texts[:20]}) == 5
    assert len({by_text[t].group for t in texts[20:]}) == 20  # no item, or another table's: alone
    assert by_text[texts[39]].group != by_text[texts[0]].group


@pytest.mark.parametrize("path", [SCENES, OBJECTS], ids=lambda p: p.stem)
def test_a_scene_is_each_follow_up_after_each_first_turn_in_one_item(path):
    """A scene's two follow-ups after its three harmful first turns carry its label, after its
    three benign ones are safe; all twelve rows are one item, so one split. A first turn is a
    framing and the question, answered alike (multiturn_scenes.tsv), or one of six questions
    with its own answer (multiturn_objects.tsv)."""
    with path.open(encoding="utf-8") as f:
        first = next(csv.DictReader(f, delimiter="\t"))
    rows = [e for e in scenes(path) if e.item == first["scene"]]
    assert len(rows) == 12 and {e.text for e in rows} == {first["follow_up_1"], first["follow_up_2"]}
    unsafe = [e for e in rows if e.unsafe]
    assert len(unsafe) == 6 and {e.label for e in unsafe} == {first["label"]}
    for side, labelled in (("harmful", unsafe), ("benign", [e for e in rows if not e.unsafe])):
        if path == SCENES:
            turns = {(first[f"{side}_{n}"] + " " + first["question"], first["answer"]) for n in (1, 2, 3)}
        else:
            turns = {(first[f"{side}_question_{n}"], first[f"{side}_answer_{n}"]) for n in (1, 2, 3)}
        assert {e.context for e in labelled} == turns and len(turns) == 3
    assert {e.lang for e in rows} == {first["lang"]}
