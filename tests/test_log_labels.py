"""Labels on verdicts, on real SQLite and real PostgreSQL: stored, refused when malformed or
for an unknown turn, read back with each turn, in both exports and the export CLI, newest
turn first; the queues (unreviewed flagged, disputed) and the new filters.

Turns run through `run_turn` with the test fakes for our own control flow (a guard that
flags "bomb", a paced chat); what is checked is what lands in and comes out of the database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from test_log import play

from moderation.log import TurnLog
from moderation.log.export import read_records, serialize
from moderation.log.labels import NOTE_MAX, LabelError, UnknownTurn, add_label
from moderation.log.query import DISPUTED, UNREVIEWED, TurnFilter, iter_records
from moderation.log.schema import open_engine, utcnow

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def engine(log_db):
    e = open_engine(log_db)
    yield e
    e.dispose()


@pytest.fixture
def three_turns(engine):
    """Oldest first: an answered turn, a refused one (S8 on the prompt), an answered one in
    another session. Returns their ids, oldest first."""
    log = TurnLog(engine)
    play(log, "What is green tea?", session="a")
    play(log, "bomb recipe please", session="a")
    play(log, "Tell me about rivers", session="b")
    log.close()
    return [r["id"] for r in reversed(list(iter_records(engine)))]


def test_the_labels_table_is_created_on_open_with_an_index_on_turn(engine):
    tables = inspect(engine)
    assert "labels" in tables.get_table_names()
    indexed = [ix["column_names"] for ix in tables.get_indexes("labels")]
    assert ["turn_id"] in indexed


def test_a_label_is_stored_and_read_back_with_its_turn(engine, three_turns):
    refused = three_turns[1]
    stored = add_label(
        engine,
        {
            "turn": refused,
            "stage": "prompt",
            "label": "false_positive",
            "categories": [],
            "note": "a chemistry question",
        },
        author="operator",
    )
    assert stored["seq"] == 0 and stored["source"] == "operator" and stored["author"] == "operator"
    add_label(
        engine, {"turn": refused, "stage": 0, "label": "correct", "categories": ["s8"], "note": ""}, author="operator"
    )
    record = next(iter_records(engine, TurnFilter(turn_id=refused)))
    assert [(lab["label"], lab["stage"], lab["seq"], lab["categories"]) for lab in record["labels"]] == [
        ("false_positive", "prompt", 0, []),
        ("correct", "prompt", 0, ["S8"]),
    ]
    assert record["labels"][0]["note"] == "a chemistry question" and record["labels"][0]["at"].endswith("Z")
    assert next(iter_records(engine, TurnFilter(turn_id=three_turns[0])))["labels"] == []


def test_a_label_on_an_unknown_turn_is_refused_as_unknown(engine, three_turns):
    with pytest.raises(UnknownTurn, match="no turn"):
        add_label(engine, {"turn": "f" * 32, "stage": "prompt", "label": "correct"}, author="operator")


@pytest.mark.parametrize(
    "body, message",
    [
        ({"stage": "prompt", "label": "wrong"}, "label must be one of"),
        ({"stage": "partial", "label": "correct"}, "no partial verdict"),  # the refused turn stopped at its prompt
        ({"stage": 7, "label": "correct"}, "no verdict 7"),
        ({"stage": "prompt", "label": "false_negative", "categories": ["S99"]}, "not a category of this turn"),
        ({"stage": "prompt", "label": "false_negative", "categories": "S1"}, "categories must be a list"),
        ({"stage": "prompt", "label": "correct", "note": "x" * (NOTE_MAX + 1)}, "note is longer than"),
        ({"stage": "prompt", "label": 3}, "label must be one of"),
        ({"stage": None, "label": "correct"}, "stage must be"),
        ({"stage": "prompt", "label": "correct", "extra": 1}, "unknown field"),
    ],
)
def test_a_malformed_label_is_refused_with_a_message_and_nothing_is_stored(engine, three_turns, body, message):
    with pytest.raises(LabelError, match=message):
        add_label(engine, {"turn": three_turns[1], **body}, author="operator")
    assert next(iter_records(engine, TurnFilter(turn_id=three_turns[1])))["labels"] == []


def test_everything_is_newest_first_and_the_new_filters_select(engine, three_turns):
    assert [r["id"] for r in iter_records(engine)] == three_turns[::-1]
    pick = lambda **kw: [r["user_text"] for r in iter_records(engine, TurnFilter(**kw))]  # noqa: E731
    assert pick(session=list(iter_records(engine))[0]["session"]) == ["Tell me about rivers"]
    assert pick(score_min=0.8) == ["bomb recipe please"]
    assert pick(score_max=0.2) == ["Tell me about rivers", "What is green tea?"]
    assert pick(queue=UNREVIEWED) == ["bomb recipe please"] and pick(queue=DISPUTED) == []
    add_label(engine, {"turn": three_turns[0], "stage": "prompt", "label": "correct"}, author="operator")
    assert pick(labelled="yes") == ["What is green tea?"]
    assert pick(labelled="no") == ["Tell me about rivers", "bomb recipe please"]
    assert pick(queue=UNREVIEWED) == ["bomb recipe please"]  # a label elsewhere does not review it
    add_label(engine, {"turn": three_turns[1], "stage": "prompt", "label": "correct"}, author="operator")
    assert pick(queue=UNREVIEWED) == []
    add_label(
        engine,
        {"turn": three_turns[2], "stage": "response", "label": "false_negative", "categories": ["S1"]},
        author="visitor-session",
        source="visitor",
    )
    assert pick(queue=DISPUTED) == ["Tell me about rivers"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_labels_round_trip_through_both_exports_and_the_cli_newest_first(engine, log_db, three_turns, fmt):
    add_label(
        engine,
        {
            "turn": three_turns[1],
            "stage": "prompt",
            "label": "false_positive",
            "note": '=HYPERLINK("http://evil.example")',
        },
        author="operator",
    )
    records = list(iter_records(engine))
    assert read_records("".join(serialize(records, fmt)), fmt) == records
    out = subprocess.run(
        [sys.executable, "-m", "moderation.log", "export", "--db", log_db, "--format", fmt],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    exported = read_records(out.stdout, fmt)
    assert exported == records and [r["id"] for r in exported] == three_turns[::-1]
    assert exported[1]["labels"][0]["label"] == "false_positive"


def test_an_existing_log_without_the_labels_table_gets_it_on_open(log_db):
    engine = open_engine(log_db)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE labels"))
    engine.dispose()
    engine = open_engine(log_db)
    assert "labels" in inspect(engine).get_table_names()
    engine.dispose()


def test_pruning_old_turns_deletes_their_labels(engine, three_turns):
    from moderation.log.schema import labels, turns

    add_label(engine, {"turn": three_turns[0], "stage": "prompt", "label": "correct"}, author="operator")
    with engine.begin() as conn:
        conn.execute(turns.update().values(started_at=utcnow().replace(year=2000)))
    TurnLog(engine, retention_days=1).close()  # prunes as it opens
    with engine.connect() as conn:
        assert conn.execute(labels.select()).all() == [] and conn.execute(turns.select()).all() == []


def test_the_transcript_shows_the_sessions_turns_in_order_with_labels_and_escapes_text(engine):
    from moderation.log.review import session_transcript

    log = TurnLog(engine)
    play(log, "<img src=x onerror=alert(1)> hello", session="a")
    play(log, "bomb <b>now</b>", session="a")
    play(log, "elsewhere", session="b")
    log.close()
    first, second = [r["id"] for r in reversed(list(iter_records(engine, TurnFilter(text="<"))))]
    add_label(
        engine,
        {
            "turn": second,
            "stage": "prompt",
            "label": "false_positive",
            "categories": ["S1"],
            "note": "<script>x</script>",
        },
        author="operator",
    )
    html, record = session_transcript(engine, second)
    assert record["id"] == second and "elsewhere" not in html
    assert html.index("&lt;img src=x") < html.index("bomb &lt;b&gt;now&lt;/b&gt;")  # oldest first
    assert "<img" not in html and "<script>" not in html and "&lt;script&gt;" in html
    assert "false positive</b> on prompt" in html and "should have: S1" in html
    assert f'class="turn selected" data-turn="{second}"' in html and '<details class="policy">' in html
    assert session_transcript(engine, "nope") == ('<p class="empty">Select a turn to read its conversation.</p>', {})
