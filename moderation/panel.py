"""What a person sees of the turns: chat messages and the verdict panel.

Plain data in, plain data out (lists of message dicts, an HTML string), so the
rendering is testable without a browser. Every string that came from a person or
a model is escaped here: user text, replies, raw guard answers, custom category names.
"""

from __future__ import annotations

import html
import re
from typing import Sequence

from guard.verdict import Verdict
from moderation.turn import ANSWERED, ERROR, REFUSED, RETRACTED, Check, TurnState

_FENCE = re.compile(r"(```.*?(?:```|\Z)|`[^`\n]+`)", re.S)


def as_markdown_text(text: str) -> str:
    """Escape HTML outside code so a chat shows `<b>` or `<script>` as text, never as markup.

    >>> as_markdown_text("<b>hi</b> `<i>`")
    '&lt;b&gt;hi&lt;/b&gt; `<i>`'
    """
    parts = _FENCE.split(text)
    return "".join(p if i % 2 else html.escape(p, quote=False) for i, p in enumerate(parts))


def category_list(verdict: Verdict) -> str:
    """'S1 Violent Crimes, S10 Self-Harm' (plain text)."""
    return ", ".join(f"{c.code} {c.name}" for c in verdict.categories)


def _flag_title(what: str, verdict: Verdict) -> str:
    if verdict.failed:
        return f"🛡️ {what} blocked: the guard could not judge it"
    detail = category_list(verdict) or "unsafe"
    score = f" · p(unsafe) {verdict.score:.2f}" if verdict.score is not None else ""
    return f"🛡️ {what} flagged: {detail}{score}"


def _note(title: str, content: str = "", status: str = "done") -> dict:
    return {"role": "assistant", "content": content, "metadata": {"title": title, "status": status}}


def _verdict_detail(verdict: Verdict) -> str:
    """The collapsible detail under a flag: what the guard answered, verbatim."""
    lines = [f"Guard: {verdict.guard}" if verdict.guard else "",
             f"Answer: `{verdict.raw.strip()}`" if verdict.raw.strip() else "",
             f"Error: {verdict.error}" if verdict.error else ""]
    return html.escape("\n\n".join(line for line in lines if line), quote=False)


def _assistant_messages(turn: TurnState) -> list[dict]:
    if turn.outcome is None:
        if not turn.checks:
            return [_note("🛡️ Checking your message…", status="pending")]
        if not turn.shown:
            return [_note("🛡️ Writing and checking the reply…", status="pending")]
        return [{"role": "assistant", "content": as_markdown_text(turn.shown)}]
    last = turn.checks[-1].verdict if turn.checks else None
    if turn.outcome in (REFUSED, RETRACTED):
        what = "Message" if turn.outcome == REFUSED else "Reply"
        return [_note(_flag_title(what, last), _verdict_detail(last)),
                {"role": "assistant", "content": turn.notice}]
    if turn.outcome == ERROR:
        return [_note("⚠️ The turn could not be completed"), {"role": "assistant", "content": turn.notice}]
    text = as_markdown_text(turn.shown) if turn.shown else f"_{turn.notice}_"
    if turn.stopped:
        text += "\n\n_(stopped)_"
    return [{"role": "assistant", "content": text}]


def chat_messages(turns: Sequence[TurnState]) -> list[dict]:
    """The Chatbot value for these turns (flagged ones carry a metadata note)."""
    messages: list[dict] = []
    for turn in turns:
        messages.append({"role": "user", "content": as_markdown_text(turn.user)})
        if turn.dropped:
            messages.append(_note("ℹ️ Context trimmed", (
                f"{turn.dropped} of the oldest messages were left out so the conversation fits "
                "the model's context window.")))
        messages += _assistant_messages(turn)
    return messages


# ---- verdict panel ---------------------------------------------------------------

_STAGE = {"prompt": "Prompt", "partial": "Stream check", "response": "Response"}


def _badge(verdict: Verdict) -> str:
    if verdict.failed:
        return '<span class="vp-badge vp-error">BLOCKED</span>'
    if verdict.safe:
        return '<span class="vp-badge vp-safe">SAFE</span>'
    return '<span class="vp-badge vp-unsafe">UNSAFE</span>'


def _score_bar(verdict: Verdict) -> str:
    if verdict.score is None:
        note = html.escape(verdict.note or "no score from this guard: the verdict rests on its text")
        return f'<div class="vp-note">{note}</div>'
    pct = max(0.0, min(1.0, verdict.score)) * 100
    thr = (verdict.threshold if verdict.threshold is not None else 0.5) * 100
    kind = "vp-unsafe" if not verdict.safe else "vp-safe"
    return (f'<div class="vp-bar" title="p(unsafe) {verdict.score:.3f}, threshold {thr / 100:.2f}">'
            f'<div class="vp-fill {kind}" style="width:{pct:.1f}%"></div>'
            f'<div class="vp-thr" style="left:{thr:.1f}%"></div></div>'
            f'<div class="vp-meta">p(unsafe) <b>{verdict.score:.3f}</b> · threshold {thr / 100:.2f}</div>')


def verdict_html(stage: str, verdict: Verdict) -> str:
    cats = "".join(f'<li><code>{html.escape(c.code)}</code> {html.escape(c.name)}</li>'
                   for c in verdict.categories)
    detail = f'<ul class="vp-cats">{cats}</ul>' if cats else ""
    if verdict.failed:
        why = verdict.error or f"unreadable answer: {verdict.raw!r}"
        detail += f'<div class="vp-note">{html.escape(why)}</div>'
    latency = f"{verdict.latency_s * 1000:.0f} ms"
    return (f'<div class="vp-verdict"><div class="vp-head"><span class="vp-stage">'
            f'{_STAGE.get(stage, stage)}</span>{_badge(verdict)}<span class="vp-lat">{latency}</span>'
            f'</div>{detail}{_score_bar(verdict)}</div>')


def _turn_html(number: int, turn: TurnState) -> str:
    checks: list[Check] = list(turn.checks)
    partial = [c for c in checks if c.stage == "partial"]
    shown = [c for c in checks if c.stage != "partial"]
    if partial and not partial[-1].verdict.safe:
        shown.append(partial[-1])  # the check that stopped the stream
    body = "".join(verdict_html(c.stage, c.verdict) for c in shown)
    passed = sum(c.verdict.safe for c in partial)
    if partial:
        body += f'<div class="vp-note">{passed} of {len(partial)} checks while streaming passed</div>'
    if turn.outcome is None:
        body += '<div class="vp-note">checking…</div>'
    outcome = html.escape(turn.outcome or "in progress")
    snippet = html.escape(turn.user[:60] + ("…" if len(turn.user) > 60 else ""))
    return (f'<div class="vp-turn"><div class="vp-title">Turn {number} · <i>{outcome}</i></div>'
            f'<div class="vp-user">“{snippet}”</div>{body}</div>')


def panel_html(turns: Sequence[TurnState], guard_label: str = "") -> str:
    """The verdict panel: newest turn first."""
    if not turns:
        return ('<div class="vp-empty">Verdicts appear here: for every turn, the prompt and '
                'the response, with categories, unsafe probability and latency.</div>')
    items = "".join(_turn_html(i, t) for i, t in reversed(list(enumerate(turns, start=1))))
    guard = f'<div class="vp-guard">Judged by {html.escape(guard_label)}</div>' if guard_label else ""
    return f'<div class="vp">{guard}{items}</div>'


PANEL_CSS = """
.vp-turn{border:1px solid var(--border-color-primary);border-radius:8px;padding:8px;margin-bottom:8px}
.vp-title{font-weight:600}.vp-user{opacity:.75;font-size:.9em;margin:2px 0 6px}
.vp-verdict{margin:6px 0}.vp-head{display:flex;gap:8px;align-items:center}
.vp-stage{min-width:6.5em;font-weight:500}.vp-lat{margin-left:auto;opacity:.7;font-size:.85em}
.vp-badge{padding:1px 8px;border-radius:10px;color:#fff;font-size:.8em;font-weight:700}
.vp-safe.vp-badge{background:#15803d}.vp-unsafe.vp-badge{background:#b91c1c}
.vp-error.vp-badge{background:#b45309}
.vp-bar{position:relative;height:8px;background:var(--neutral-200);border-radius:4px;margin-top:4px}
.vp-fill{height:100%;border-radius:4px}.vp-fill.vp-safe{background:#22c55e}
.vp-fill.vp-unsafe{background:#ef4444}
.vp-thr{position:absolute;top:-3px;width:2px;height:14px;background:#111}
.vp-meta,.vp-note,.vp-guard{font-size:.8em;opacity:.8}.vp-cats{margin:2px 0 0 1.2em;padding:0}
.vp-empty{opacity:.7}
"""
