"""A session's turns as a conversation, for the review page: each message with its verdict
chips (stage, score against the threshold, categories), withheld and withdrawn text marked,
each turn's labels, and its policy folded away.

    html = transcript_html(session_records, selected="3f2c…")   # records oldest first

Everything from the log is escaped: what visitors typed is shown as text, never as markup.
"""

from __future__ import annotations

import html
import json

from moderation.log.query import streamed_unscanned

LABEL_NAMES = {"correct": "correct", "false_positive": "false positive", "false_negative": "false negative"}
_USER_STAGES = ("prompt",)


def verdict_chip(v: dict) -> str:
    """One verdict as a chip: "prompt · 0.90 ≥ 0.50 · S8 Indiscriminate Weapons" (unsafe in red),
    each named category with its own score when the verdict has per-category scores:

    >>> "S8 Indiscriminate Weapons 0.85" in verdict_chip({"stage": "prompt", "seq": 0, "safe": False,
    ...     "score": 0.9, "threshold": 0.5, "categories": [{"code": "S8", "name": "Indiscriminate Weapons"}],
    ...     "category_scores": {"S8": 0.85, "S1": 0.05}})
    True
    """
    scores = v.get("category_scores") or {}
    parts = [v["stage"]]
    if v.get("score") is not None and v.get("threshold") is not None:
        parts.append(f"{v['score']:.2f} {'≥' if v['score'] >= v['threshold'] else '<'} {v['threshold']:.2f}")
    elif v.get("score") is not None:
        parts.append(f"{v['score']:.2f}")
    parts += [
        f"{c['code']} {c.get('name', '')}".strip() + (f" {scores[c['code']]:.2f}" if c["code"] in scores else "")
        for c in v.get("categories", [])
    ]
    if v.get("error"):
        parts.append("guard failed")
    kind = "failed" if v.get("error") or not v.get("parsed", True) else "safe" if v["safe"] else "unsafe"
    title = f"verdict {v['seq']}: {kind}" + (f" ({v['error']})" if v.get("error") else "")
    return f'<span class="chip chip-{kind}" title="{html.escape(title)}">{html.escape(" · ".join(parts))}</span>'


def _message(role: str, text: str | None, chips: list[str], marks: list[str]) -> str:
    body = (
        '<em class="withheld">(text not kept by the log\'s text policy)</em>'
        if text is None
        else html.escape(text) or "<em>(empty)</em>"
    )
    tags = "".join(f'<span class="mark">{html.escape(m)}</span>' for m in marks)
    return (
        f'<div class="msg msg-{role}"><div class="who">{role}{tags}</div>'
        f'<div class="text">{body}</div><div class="chips">{"".join(chips)}</div></div>'
    )


def _reply_marks(record: dict) -> list[str]:
    outcome = record["outcome"]
    if outcome == "retracted":
        return ["withdrawn: the visitor saw it removed"]
    if outcome == "refused" and not record["chat_started"]:
        return ["withheld: the prompt was refused"]
    if streamed_unscanned(record):
        return ["streamed text no check judged in full"]
    return [f"turn {outcome}"] if outcome and outcome != "answered" else []


def _labels(record: dict) -> str:
    if not record.get("labels"):
        return ""
    return f'<ul class="labels">{"".join(_label(lab) for lab in record["labels"])}</ul>'


def _label(lab: dict) -> str:
    should = f" · should have: {html.escape(', '.join(lab['categories']))}" if lab["categories"] else ""
    note = f" · {html.escape(lab['note'])}" if lab["note"] else ""
    by = f"{lab['source']} {lab['author']}, {lab['at'] or ''}"
    return (
        f"<li><b>{html.escape(LABEL_NAMES.get(lab['label'], lab['label']))}</b> on {html.escape(lab['stage'])} "
        f'(verdict {lab["seq"]}){should}{note} <span class="by">{html.escape(by)}</span></li>'
    )


def _policy(record: dict) -> str:
    p = record.get("policy") or {}
    brief = (
        f"threshold {p.get('threshold')}, stream policy {p.get('stream_policy')}, "
        f"{len(p.get('enabled', []))} categories" + (f" + {len(p['custom'])} custom" if p.get("custom") else "")
    )
    return (
        f'<details class="policy"><summary>Policy: {html.escape(brief)}</summary>'
        f"<pre>{html.escape(json.dumps(p, indent=1, ensure_ascii=False))}</pre></details>"
    )


def turn_html(record: dict, selected: bool = False) -> str:
    """One turn: the user's message with its prompt verdict, the reply with the others."""
    user_chips = [verdict_chip(v) for v in record["verdicts"] if v["stage"] in _USER_STAGES]
    reply_chips = [verdict_chip(v) for v in record["verdicts"] if v["stage"] not in _USER_STAGES]
    reply = record["reply"] if record["user_text"] is not None else None
    head = (
        f'<div class="turn-head">{html.escape(record["started_at"] or "")} · '
        f"{html.escape(record['outcome'] or 'unfinished')} · <code>{html.escape(record['id'])}</code></div>"
    )
    return (
        f'<section class="turn{" selected" if selected else ""}" data-turn="{html.escape(record["id"])}">'
        f"{head}{_message('user', record['user_text'], user_chips, [])}"
        f"{_message('assistant', reply, reply_chips, _reply_marks(record))}"
        f"{_labels(record)}{_policy(record)}</section>"
    )


def transcript_html(records: list[dict], selected: str = "") -> str:
    """The session's turns in order (give them oldest first), the selected one marked."""
    if not records:
        return '<p class="empty">Select a turn to read its conversation.</p>'
    session = html.escape(records[0]["session"])
    turns = "".join(turn_html(r, r["id"] == selected) for r in records)
    return (
        f'<div class="transcript"><div class="session">Session <code>{session}</code>: '
        f"{len(records)} turn(s), oldest first</div>{turns}</div>"
    )


TRANSCRIPT_CSS = """
.transcript .session { opacity: .8; margin-bottom: .5em; }
.transcript .turn { border-left: 3px solid transparent; padding: .3em .6em; margin: .4em 0; }
.transcript .turn.selected { border-left-color: var(--color-accent); background: var(--background-fill-secondary); }
.transcript .turn-head { font-size: .8em; opacity: .75; }
.transcript .msg { margin: .3em 0; padding: .4em .6em; border-radius: 8px; background: var(--block-background-fill);
  border: 1px solid var(--border-color-primary); }
.transcript .msg-user { margin-right: 15%; }
.transcript .msg-assistant { margin-left: 15%; }
.transcript .who { font-weight: 600; font-size: .85em; }
.transcript .text { white-space: pre-wrap; }
.transcript .mark { margin-left: .6em; font-weight: 600; color: var(--error-text-color, #b91c1c); }
.transcript .withheld { opacity: .7; }
.chip { display: inline-block; font-size: .8em; border-radius: 999px; padding: 0 .6em; margin: .2em .3em 0 0;
  border: 1px solid var(--border-color-primary); }
.chip-unsafe { background: #fee2e2; color: #991b1b; border-color: #fca5a5; }
.chip-safe { background: #dcfce7; color: #166534; border-color: #86efac; }
.chip-failed { background: #fef3c7; color: #92400e; border-color: #fcd34d; }
.transcript .labels { font-size: .85em; margin: .2em 0 .2em 1em; }
.transcript .labels .by { opacity: .7; }
.transcript .policy summary { font-size: .8em; cursor: pointer; opacity: .8; }
"""
