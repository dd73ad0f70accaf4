"""Labels: what the operator (or, later, a visitor) says of one verdict of a turn.

A label names its turn and verdict (by stage, `"prompt"`, `"partial"`, `"response"`, which
means that stage's last verdict, or by the verdict's `seq`), says whether the verdict was
`correct`, a `false_positive` or a `false_negative`, which category codes it should have
had, and why (a note). The same body is what `POST /review/labels` takes:

    add_label(engine, {"turn": "3f2c…", "stage": "prompt", "label": "false_positive",
                       "categories": [], "note": "a chemistry question"}, author="operator")

Every check happens before anything is written: `UnknownTurn` (an HTTP 404) when there is
no such turn (or, for a visitor, not one of their session's), `LabelError` (a 422) with a
readable message for anything malformed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from moderation.log.schema import iso, labels, turns, utcnow, verdicts

LABELS = ("correct", "false_positive", "false_negative")
SOURCES = ("operator", "visitor")
STAGES = ("prompt", "partial", "response")
FIELDS = ("turn", "stage", "label", "categories", "note")
NOTE_MAX = 2000  # characters
CATEGORIES_MAX = 32
_CODE = re.compile(r"^[SC][0-9]{1,3}$")  # S1..Sn of a taxonomy, C1..Cn custom
_ANY_TAXONOMY = tuple(f"S{i}" for i in range(1, 15))  # for a turn whose policy lists no codes


class LabelError(ValueError):
    """A malformed label; the message says what is wrong."""


class UnknownTurn(LookupError):
    """No such turn (or not one the labeller may label)."""


def _checked_body(body: object) -> dict:
    """The body's fields, type-checked and normalised (codes upper case, note stripped)."""
    if not isinstance(body, dict):
        raise LabelError('a label is a JSON object: {"turn", "stage", "label", "categories", "note"}')
    extra = sorted(set(body) - set(FIELDS))
    if extra:
        raise LabelError(f"unknown field(s) {', '.join(map(str, extra))}; a label has {', '.join(FIELDS)}")
    turn, stage, label = body.get("turn"), body.get("stage"), body.get("label")
    categories, note = body.get("categories", []), body.get("note", "")
    if not isinstance(turn, str) or not turn.strip():
        raise LabelError("turn must be a turn id (a string)")
    if not (stage in STAGES or (isinstance(stage, int) and not isinstance(stage, bool) and stage >= 0)):
        raise LabelError(f"stage must be one of {', '.join(STAGES)}, or a verdict's seq (0, 1, ...)")
    if label not in LABELS:
        raise LabelError(f"label must be one of {', '.join(LABELS)}")
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise LabelError('categories must be a list of category codes, e.g. ["S1", "C2"]')
    if len(categories) > CATEGORIES_MAX:
        raise LabelError(f"at most {CATEGORIES_MAX} categories")
    if not isinstance(note, str):
        raise LabelError("note must be a string")
    if len(note) > NOTE_MAX:
        raise LabelError(f"note is longer than {NOTE_MAX} characters")
    codes = list(dict.fromkeys(c.strip().upper() for c in categories))
    bad = [c for c in codes if not _CODE.match(c)]
    if bad:
        raise LabelError(f"{', '.join(map(repr, bad))}: not a category code (e.g. S1, or C1 for a custom one)")
    return {"turn": turn.strip(), "stage": stage, "label": label, "categories": codes, "note": note.strip()}


def turn_codes(policy: dict, flagged: Iterable[str] = ()) -> list[str]:
    """The category codes a label on a turn may name: those its policy asked the guard
    about (enabled and custom), and any a verdict flagged.

    >>> turn_codes({"enabled": ["S1", "S2"], "custom": [{"code": "C1"}]}, ["S2"])
    ['S1', 'S2', 'C1']
    """
    asked = list(policy.get("enabled") or _ANY_TAXONOMY) + [c.get("code", "") for c in policy.get("custom", [])]
    return list(dict.fromkeys([*asked, *flagged]))


def _target(conn: Connection, body: dict, own_session: str | None) -> tuple[str, int, list[str]]:
    """(stage, seq, allowed codes) of the verdict the label names; raises when there is none."""
    turn = conn.execute(select(turns.c.session, turns.c.policy).where(turns.c.id == body["turn"])).first()
    if turn is None or (own_session is not None and turn.session != own_session):
        raise UnknownTurn(f"no turn {body['turn']!r}")
    checks = conn.execute(
        select(verdicts.c.seq, verdicts.c.stage, verdicts.c.codes)
        .where(verdicts.c.turn_id == body["turn"])
        .order_by(verdicts.c.seq)
    ).all()
    stage = body["stage"]
    if isinstance(stage, int):
        chosen = [v for v in checks if v.seq == stage]
        if not chosen:
            raise LabelError(f"this turn has no verdict {stage} (it has {len(checks)}, from 0)")
    else:
        chosen = [v for v in checks if v.stage == stage]
        if not chosen:
            have = ", ".join(dict.fromkeys(v.stage for v in checks)) or "none"
            raise LabelError(f"this turn has no {stage} verdict (its verdicts: {have})")
    flagged = [c for v in checks for c in v.codes.split(",") if c]
    allowed = turn_codes(json.loads(turn.policy), flagged)
    return chosen[-1].stage, chosen[-1].seq, allowed


def add_label(
    engine: Engine, body: object, author: str, source: str = "operator", own_session: str | None = None
) -> dict:
    """Check `body` against its turn and store it; returns the label as `labels_of` reads it.
    `own_session` (a session pseudonym) limits a visitor to their own session's turns."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}")
    fields = _checked_body(body)
    with engine.begin() as conn:
        stage, seq, allowed = _target(conn, fields, own_session)
        unknown = [c for c in fields["categories"] if c not in allowed]
        if unknown:
            raise LabelError(
                f"{', '.join(unknown)}: not a category of this turn (its categories: {', '.join(allowed)})"
            )
        row = dict(
            turn_id=fields["turn"],
            stage=stage,
            seq=seq,
            label=fields["label"],
            categories=json.dumps(fields["categories"]),
            note=fields["note"],
            source=source,
            author=author[:200],
            at=utcnow(),
        )
        conn.execute(labels.insert().values(**row))
    return _label(row)


def _label(row) -> dict:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return {
        "stage": get("stage"),
        "seq": get("seq"),
        "label": get("label"),
        "categories": json.loads(get("categories")),
        "note": get("note"),
        "source": get("source"),
        "author": get("author"),
        "at": iso(get("at")),
    }


def labels_of(conn: Connection, turn_ids: list[str]) -> dict[str, list[dict]]:
    """Each turn's labels, in the order they were made: {turn id: [label, ...]}."""
    found: dict[str, list[dict]] = {i: [] for i in turn_ids}
    if turn_ids:
        for row in conn.execute(
            select(labels).where(labels.c.turn_id.in_(turn_ids)).order_by(labels.c.turn_id, labels.c.at, labels.c.id)
        ):
            found[row.turn_id].append(_label(row))
    return found
