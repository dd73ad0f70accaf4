"""What a person sees of the turns: chat messages and the verdict panel.

Plain data in, plain data out (lists of message dicts, an HTML string), so the
rendering is testable without a browser. Chat messages carry the text exactly as typed
or generated (the Chatbot sanitises what it renders, and its copy button then copies
the real text); notes such as "stopped" ride in message metadata, never in the text.
The panel is HTML built here, so everything in it that came from a person or a model
is escaped: user text, raw guard answers, custom category names.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from guard.verdict import Verdict
from moderation.turn import ANSWERED, ERROR, REFUSED, RETRACTED, Check, TurnState
from moderation.web.cards import pipeline_html, report_html, strip_html, why_html

REFUSED_HELP = (
    "If that looks like a mistake, edit your message (✎ beside it) and send it again, "
    "or undo it (↶) and rephrase. The verdict panel shows what the guard saw."
)
RETRACTED_HELP = "Retry (↻) for a different reply, or rephrase your message."
STOPPED = "⏹ Stopped: the reply ends here"
CUT = "✂️ Length limit reached: the reply was cut at the max new tokens (see Settings)"


def category_list(verdict: Verdict) -> str:
    """'S1 Violent Crimes, S10 Self-Harm' (plain text)."""
    return ", ".join(f"{c.code} {c.name}" for c in verdict.categories)


def _flag_title(what: str, verdict: Verdict) -> str:
    if verdict.failed:
        return f"🛡️ {what} blocked: the guard could not judge it"
    detail = category_list(verdict) or "unsafe"
    score = f" · unsafe score {verdict.score:.0%}" if verdict.score is not None else ""
    return f"🛡️ {what} flagged: {detail}{score}"


def _note(title: str, content: str = "", status: str = "done") -> dict:
    return {"role": "assistant", "content": content, "metadata": {"title": title, "status": status}}


def _verdict_detail(verdict: Verdict) -> str:
    """The collapsible detail under a flag: what the guard answered, verbatim (as code)."""
    lines = [
        f"Guard: {verdict.guard}" if verdict.guard else "",
        f"Answer: `{' '.join(verdict.raw.split())}`" if verdict.raw.strip() else "",
        f"Error: {verdict.error}" if verdict.error else "",
    ]
    return "\n\n".join(line for line in lines if line)


def _assistant_messages(turn: TurnState) -> list[dict]:
    if turn.outcome is None:
        if not turn.checks:
            return [_note("🛡️ Checking your message…", status="pending")]
        if not turn.shown:
            return [_note("🛡️ Writing and checking the reply…", status="pending")]
        return [{"role": "assistant", "content": turn.shown}]
    last = turn.checks[-1].verdict if turn.checks else None
    if turn.outcome in (REFUSED, RETRACTED):
        what, help_ = ("Message", REFUSED_HELP) if turn.outcome == REFUSED else ("Reply", RETRACTED_HELP)
        return [
            _note(_flag_title(what, last), _verdict_detail(last)),
            {"role": "assistant", "content": f"{turn.notice}\n\n{help_}"},
        ]
    if turn.outcome == ERROR:
        return [_note("⚠️ The turn could not be completed"), {"role": "assistant", "content": turn.notice}]
    messages = [{"role": "assistant", "content": turn.shown}] if turn.shown else [_note(f"ℹ️ {turn.notice}")]
    if turn.stopped and turn.shown:
        messages.append(_note(STOPPED))
    if turn.cut:
        messages.append(_note(CUT))
    return messages


def turn_messages(turn: TurnState) -> list[dict]:
    """One turn's Chatbot messages: the user's, then the notes and the reply."""
    messages = [{"role": "user", "content": turn.user}]
    if turn.dropped:
        messages.append(
            _note(
                "ℹ️ Context trimmed",
                (
                    f"{turn.dropped} of the oldest messages were left out so the conversation fits "
                    "the model's context window."
                ),
            )
        )
    return messages + _assistant_messages(turn)


def chat_messages(turns: Sequence[TurnState]) -> list[dict]:
    """The Chatbot value for these turns (flagged ones carry a metadata note)."""
    return [message for turn in turns for message in turn_messages(turn)]


def turn_of_message(turns: Sequence[TurnState], index: int) -> int | None:
    """Which turn (0-based) the chat message at `index` belongs to; None if there is none.

    >>> turn_of_message([TurnState("a", shown="b", outcome="answered")] * 2, 2)
    1
    """
    owners = [i for i, turn in enumerate(turns) for _ in turn_messages(turn)]
    return owners[index] if 0 <= index < len(owners) else None


# ---- verdict panel ---------------------------------------------------------------

_STAGE = {"prompt": "Prompt", "partial": "Stream check", "response": "Response"}


def _badge(verdict: Verdict) -> str:
    if verdict.failed:
        return '<span class="vp-badge vp-error">BLOCKED</span>'
    if verdict.safe:
        return '<span class="vp-badge vp-safe">SAFE</span>'
    return '<span class="vp-badge vp-unsafe">UNSAFE</span>'


def score_words(verdict: Verdict) -> str:
    """The score and the threshold in words.

    >>> score_words(Verdict(safe=True, score=0.14, threshold=0.5))
    'unsafe score 14%, flagged at 50% or more'
    """
    threshold = verdict.threshold if verdict.threshold is not None else 0.5
    return f"unsafe score {verdict.score:.0%}, flagged at {threshold:.0%} or more"


def _score_bar(verdict: Verdict) -> str:
    if verdict.score is None:
        note = html.escape(verdict.note or "no score from this guard: the verdict rests on its text")
        return f'<div class="vp-note">{note}</div>'
    pct = max(0.0, min(1.0, verdict.score)) * 100
    thr = (verdict.threshold if verdict.threshold is not None else 0.5) * 100
    kind = "vp-unsafe" if not verdict.safe else "vp-safe"
    return (
        f'<div class="vp-bar" title="p(unsafe) {verdict.score:.3f}, threshold {thr / 100:.2f}">'
        f'<div class="vp-fill {kind}" style="width:{pct:.1f}%"></div>'
        f'<div class="vp-thr" style="left:{thr:.1f}%"></div></div>'
        f'<div class="vp-meta">{score_words(verdict)}</div>'
        + (f'<div class="vp-note">{html.escape(verdict.note)}</div>' if verdict.note else "")
    )


TOP_SCORES = 3  # other categories' scores listed under an unsafe verdict
MIN_LISTED = 0.01  # ... from this score on


def _score(verdict: Verdict, code: str) -> str:
    score = verdict.category_scores.get(code)
    return "" if score is None or verdict.safe else f'<span class="vp-cat-score">{score:.0%}</span>'


def category_scores_html(verdict: Verdict) -> str:
    """For an unsafe verdict, the per-category scores (p(unsafe) x p(category | unsafe)) of
    the categories it does not name, highest first, at most TOP_SCORES of at least 1%; ''
    otherwise (the named categories carry their own score beside their name).

    >>> from guard.taxonomy import Category
    >>> out = category_scores_html(Verdict(safe=False, categories=(Category("S8", "Indiscriminate Weapons"),),
    ...                                    score=0.9, category_scores={"S1": 0.05, "S8": 0.8, "S9": 0.005}))
    >>> out.count("<li>"), "S1" in out, "S8" in out, "S9" in out
    (1, True, False, False)
    """
    if verdict.safe:
        return ""
    named = {c.code for c in verdict.categories}
    others = sorted(
        ((c, s) for c, s in verdict.category_scores.items() if c not in named and s >= MIN_LISTED),
        key=lambda kv: -kv[1],
    )[:TOP_SCORES]
    if not others:
        return ""
    items = "".join(
        f'<li><code>{html.escape(code)}</code><span class="vp-cat-score">{score:.0%}</span></li>'
        for code, score in others
    )
    return f'<ul class="vp-cat-scores" title="p(unsafe) × p(category | unsafe) of other categories">{items}</ul>'


def verdict_html(stage: str, verdict: Verdict) -> str:
    cats = "".join(
        f"<li><code>{html.escape(c.code)}</code> {html.escape(c.name)}{_score(verdict, c.code)}</li>"
        for c in verdict.categories
    )
    detail = f'<ul class="vp-cats">{cats}</ul>' if cats else ""
    detail += category_scores_html(verdict)
    if verdict.failed:
        why = verdict.error or f"unreadable answer: {verdict.raw!r}"
        detail += f'<div class="vp-note">{html.escape(why)}</div>'
    latency = f"{verdict.latency_s * 1000:.0f} ms"
    return (
        f'<div class="vp-verdict"><div class="vp-head"><span class="vp-stage">'
        f'{_STAGE.get(stage, stage)}</span>{_badge(verdict)}<span class="vp-lat">{latency}</span>'
        f"</div>{detail}{_score_bar(verdict)}</div>"
    )


def outcome_label(turn: TurnState) -> str:
    """'in progress', 'answered', 'stopped', 'refused', ... as the panel names it."""
    if turn.outcome is None:
        return "in progress"
    if turn.outcome == ANSWERED and turn.stopped:
        return "stopped"
    if turn.outcome == ANSWERED and turn.cut:
        return "answered, length limit reached"
    return turn.outcome


def _worst(checks: Sequence[Check]) -> str:
    """The worst of the verdicts a card shows, in a few words with its stage: 'S9 Defamation
    74% (response)', 'safe 3% (prompt)', 'guard failed'. A safe turn shows its highest score,
    so the title's number is always one that the card shows."""
    if not checks:
        return "not judged yet"
    worst = max(checks, key=lambda c: (not c.verdict.safe, c.verdict.failed, c.verdict.score or 0.0))
    verdict, stage = worst.verdict, _STAGE.get(worst.stage, worst.stage).lower()
    if verdict.failed:
        return "guard failed"
    what = (
        (f"{verdict.categories[0].code} {verdict.categories[0].name}" if verdict.categories else "unsafe")
        if not verdict.safe
        else "safe"
    )
    return f"{what} {verdict.score:.0%} ({stage})" if verdict.score is not None else f"{what} ({stage})"


def _turn_html(number: int, turn: TurnState, latest: bool) -> str:
    checks: list[Check] = list(turn.checks)
    partial = [c for c in checks if c.stage == "partial"]
    shown = [c for c in checks if c.stage != "partial"]
    if partial and not partial[-1].verdict.safe:
        shown.append(partial[-1])  # the check that stopped the stream
    body = "".join(verdict_html(c.stage, c.verdict) + why_html(c, turn) for c in shown)
    passed = sum(c.verdict.safe for c in partial)
    if partial:
        body += f'<div class="vp-note">{passed} of {len(partial)} checks while streaming passed</div>'
    body += pipeline_html(turn) + strip_html(turn) + report_html(number, turn)
    outcome = html.escape(outcome_label(turn))
    kind = "vp-flagged" if turn.flagged else "vp-ok"
    snippet = html.escape(turn.user[:60] + ("…" if len(turn.user) > 60 else ""))
    return (
        f'<details class="vp-turn {kind}" id="vp-turn-{number}" data-turn="{number}"{" open" if latest else ""}>'
        f'<summary class="vp-title">Turn {number} · <i>{outcome}</i> · '
        f'<span class="vp-worst">{html.escape(_worst(shown))}</span></summary>'
        f'<div class="vp-user">“{snippet}”</div>{body}</details>'
    )


def guard_caption(guard) -> str:
    """What the panel says judges the turns: the guard's label and the languages it covers."""
    if guard is None:
        return ""
    languages = getattr(guard, "languages", "")
    return f"{guard.label} · languages: {languages}" if languages else guard.label


def panel_html(turns: Sequence[TurnState], guard_label: str = "") -> str:
    """The verdict panel, oldest turn first like the chat; only the newest turn is open,
    the older ones are one line each (turn, outcome, worst category and score)."""
    if not turns:
        return (
            '<div class="vp-empty">Verdicts appear here: for every turn, the prompt and '
            "the response, with categories, unsafe score and latency.</div>"
        )
    items = "".join(_turn_html(i, t, i == len(turns)) for i, t in enumerate(turns, start=1))
    guard = f'<div class="vp-guard">Judged by {html.escape(guard_label)}</div>' if guard_label else ""
    return f'<div class="vp">{guard}{items}</div>'
