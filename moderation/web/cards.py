"""What a verdict card shows besides its verdicts: the turn's live stage and timer while it
runs, why a long message was flagged (its highest-scoring window, highlighted), the risk
strip of its streaming checks, and the Report form (or that it was reported).

Plain HTML strings from a `TurnState`, escaped where a person's text goes in. The panel's
own script (`PANEL_JS`, the gr.HTML's js_on_load) runs the timers from each card's start
time, so the server sends nothing per second, and turns a submitted Report form into the
panel's `submit` event ({"turn", "label", "category", "note"}).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from guard.taxonomy import LLAMA_GUARD_2
from guard.verdict import HighestWindow
from moderation.turn import ANSWERED, RETRACTED, Check, TurnState, judged_prompt
from moderation.web.reports import CHOICES, REPORT_NOTE_MAX

STRIP_W, STRIP_H = 240, 48  # the strip's plot area, in SVG units
AROUND = 240  # characters of the message shown on each side of its highest window
MARK_MAX = 2000  # a longer window shows its first and last MARK_MAX // 2 characters
MAPPED = (
    "The guard read a normalised copy of this message (hidden characters removed, or spelling "
    "undone: the verdict's note names the reading); the highlight is its window mapped back onto "
    "the text as typed, approximately where the reading changed the text."
)


def pipeline_html(turn: TurnState) -> str:
    """A running turn's stage and timer: 'checking the prompt', 'writing · 2 checks so far',
    'final check' ('' once the turn has ended)."""
    if turn.done:
        return ""
    partial = sum(c.stage == "partial" for c in turn.checks)
    if not turn.checks:
        stage = "checking the prompt"
    elif turn.final_check:
        stage = f"final check (after {partial} while streaming)" if partial else "final check"
    else:
        stage = f"writing · {partial} check{'s' * (partial != 1)} so far"
    clock = (
        f' · <span class="vp-clock" data-start="{turn.started_at * 1000:.0f}">0.0 s</span>' if turn.started_at else ""
    )
    return f'<div class="vp-stage-now" data-stage="{html.escape(stage)}">⏳ {html.escape(stage)}{clock}</div>'


def judged_text(check: Check, turn: TurnState) -> str | None:
    """The text `check` judged, if a person may see it: the prompt (the system prompt and the
    message, as the guard read them together), or an answered reply up to what the check
    covered; None for a reply that was withdrawn or is still being written."""
    if check.stage == "prompt":
        return judged_prompt(turn.system_prompt, turn.user)
    if turn.outcome == ANSWERED and check.covered is not None and check.covered <= len(turn.shown):
        return turn.shown[: check.covered]
    return None


def _excerpt(text: str, window: HighestWindow) -> str:
    """The window highlighted (<mark>) with AROUND characters either side, all escaped; what
    is left out is counted."""
    start, end = max(0, min(window.start, len(text))), max(0, min(window.end, len(text)))
    start, end = min(start, end), max(start, end)
    begin, stop = max(0, start - AROUND), min(len(text), end + AROUND)
    marked = html.escape(text[start:end])
    if end - start > MARK_MAX:
        half = MARK_MAX // 2
        skipped = f"[… {end - start - 2 * half:,} characters …]"
        marked = (
            html.escape(text[start : start + half]) + f"</mark>{skipped}<mark>" + html.escape(text[end - half : end])
        )
    before = f'<span class="vp-why-gap">[{begin:,} characters before] </span>…' if begin else ""
    after = f'…<span class="vp-why-gap"> [{len(text) - stop:,} characters after]</span>' if stop < len(text) else ""
    return f"{before}{html.escape(text[begin:start])}<mark>{marked}</mark>{html.escape(text[end:stop])}{after}"


def why_html(check: Check, turn: TurnState) -> str:
    """For a message judged in several windows: which scored highest ('Scored highest: window
    2 of 5, 87%') and the message with that window highlighted; '' for a message judged in
    one window (all of it was). A withdrawn reply's text is not shown again."""
    window = check.verdict.highest_window
    if window is None or window.count < 2:
        return ""
    score = f", {check.verdict.score:.0%}" if check.verdict.score is not None else ""
    head = f"Scored highest: window {window.index} of {window.count}{score}"
    text = judged_text(check, turn)
    if text is None:
        body = f'<div class="vp-note">characters {window.start:,}–{window.end:,}; the withdrawn text is not shown</div>'
    else:
        body = f'<div class="vp-why-text">{_excerpt(text, window)}</div>'
        body += f'<div class="vp-note">{MAPPED}</div>' if window.mapped else ""
    return (
        f'<div class="vp-why" data-window="{window.index}" data-windows="{window.count}">'
        f'<div class="vp-why-head">{html.escape(head)}</div>{body}</div>'
    )


@dataclass(frozen=True)
class StripPoint:
    """One reply check on the strip: the reply characters it covered, its score, its verdict."""

    chars: int
    score: float
    safe: bool
    stage: str


def strip_points(turn: TurnState) -> list[StripPoint]:
    """The turn's reply checks (streaming and final) that have a score, in order."""
    return [
        StripPoint(c.covered, c.verdict.score, c.verdict.safe, c.stage)
        for c in turn.checks
        if c.covered is not None and c.verdict.score is not None
    ]


def crossing(turn: TurnState) -> tuple[int, int] | None:
    """For a withdrawn reply: (characters covered by the check that flagged it, characters
    shown when its verdict came in); None for any other turn."""
    if turn.outcome != RETRACTED:
        return None
    flagged = [c for c in turn.checks if c.covered is not None and not c.verdict.safe]
    return (flagged[0].covered, flagged[0].shown or 0) if flagged else None


def _threshold(turn: TurnState) -> float:
    found = [c.verdict.threshold for c in turn.checks if c.covered is not None and c.verdict.threshold is not None]
    return found[-1] if found else 0.5


def strip_html(turn: TurnState) -> str:
    """The risk strip: each reply check's unsafe score (up) against the reply characters it
    covered (across), the threshold as a dashed line; for a withdrawn reply, where the score
    crossed it and how much had been shown by then. '' when no reply check has a score."""
    points = strip_points(turn)
    if not points:
        return ""
    width = max([len(turn.reply), *(p.chars for p in points)]) or 1
    x = lambda chars: chars / width * STRIP_W  # noqa: E731
    y = lambda score: (1 - max(0.0, min(1.0, score))) * STRIP_H  # noqa: E731
    threshold = _threshold(turn)
    dots = "".join(
        f'<circle class="vp-pt vp-pt-{"safe" if p.safe else "unsafe"}" cx="{x(p.chars):.1f}" cy="{y(p.score):.1f}"'
        f' r="3" data-chars="{p.chars}" data-score="{p.score:.4f}"><title>{p.stage}: {p.score:.0%} after'
        f" {p.chars} characters</title></circle>"
        for p in points
    )
    line = " ".join(f"{x(p.chars):.1f},{y(p.score):.1f}" for p in points)
    checks = f"{len(points)} reply check{'s' * (len(points) != 1)}"
    mark, caption = "", f"{checks} over {width:,} characters, flagged at {threshold:.0%} or more"
    crossed = crossing(turn)
    if crossed:
        at, shown = crossed
        mark = f'<line class="vp-cross" x1="{x(at):.1f}" x2="{x(at):.1f}" y1="0" y2="{STRIP_H}"/>'
        caption = f"Withdrawn: the score crossed {threshold:.0%} at character {at:,}; " + (
            f"{shown:,} characters had been shown by then." if shown else "nothing had been shown by then."
        )
    return (
        f'<div class="vp-strip" data-threshold="{threshold:.4f}">'
        f'<svg viewBox="-4 -4 {STRIP_W + 8} {STRIP_H + 8}" role="img" aria-label="risk strip: {caption}">'
        f'<rect class="vp-strip-bg" x="0" y="0" width="{STRIP_W}" height="{STRIP_H}"/>'
        f'<line class="vp-strip-thr" x1="0" x2="{STRIP_W}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}"/>'
        f'{mark}<polyline class="vp-strip-line" points="{line}"/>{dots}</svg>'
        f'<div class="vp-note vp-strip-caption">{html.escape(caption)}</div></div>'
    )


def report_html(number: int, turn: TurnState) -> str:
    """The card's Report form (a finished, logged turn), or what the visitor reported."""
    if turn.reported:
        return f'<div class="vp-reported">✔ Reported: {html.escape(turn.reported)}</div>'
    if not turn.done or not turn.log_id or not turn.checks:
        return ""
    default = "false_positive" if turn.flagged else "false_negative"
    radios = "".join(
        f'<label><input type="radio" name="label" value="{value}"{" checked" * (value == default)}> {words}</label>'
        for value, words in CHOICES.items()
    )
    codes = dict.fromkeys([*(c for ch in turn.checks for c in ch.verdict.categories), *LLAMA_GUARD_2])
    options = "".join(
        f'<option value="{html.escape(c.code)}">{html.escape(c.code)} {html.escape(c.name)}</option>' for c in codes
    )
    return (
        f'<details class="vp-report"><summary>Report</summary>'
        f'<form class="vp-report-form" data-turn="{number}">{radios}'
        f'<select name="category" aria-label="category"><option value="">category (optional)</option>{options}</select>'
        f'<textarea name="note" rows="2" maxlength="{REPORT_NOTE_MAX}" placeholder="note (optional)"></textarea>'
        f'<button type="submit">Send report</button></form></details>'
    )


PANEL_CSS = """
.vp-why{margin:4px 0 6px;font-size:.85em}.vp-why-head{font-weight:600}
.vp-why-text{max-height:12em;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere;margin-top:2px;padding:4px 6px;
  border:1px solid var(--border-color-primary);border-radius:6px}
.vp-why-text mark{background:#fde047;color:#111}.vp-why-gap{color:var(--body-text-color-subdued)}
.vp-stage-now{font-size:.85em;margin:4px 0}
.vp-strip svg{width:100%;max-width:360px;height:auto;display:block;margin-top:6px}
.vp-strip-bg{fill:none;stroke:var(--border-color-primary)}
.vp-strip-thr{stroke:var(--body-text-color);stroke-dasharray:4 3;stroke-width:1}
.vp-strip-line{fill:none;stroke:var(--body-text-color-subdued);stroke-width:1}
.vp-pt-safe{fill:#22c55e}.vp-pt-unsafe{fill:#ef4444}
.vp-cross{stroke:#ef4444;stroke-width:2}
.vp-report{margin-top:6px;font-size:.9em}.vp-report>summary{cursor:pointer;color:var(--body-text-color-subdued)}
.vp-report-form{display:flex;flex-direction:column;gap:4px;margin-top:4px}
.vp-report-form button{align-self:flex-start;padding:2px 10px;border:1px solid var(--border-color-primary);
  border-radius:6px}
.vp-reported{margin-top:6px;font-size:.9em;color:var(--body-text-color-subdued)}
"""

# The panel's js_on_load: `element` is the panel, re-rendered in place, so it listens by delegation.
PANEL_JS = """
element.addEventListener('submit', (event) => {
  const form = event.target.closest('form.vp-report-form');
  if (!form) return;
  event.preventDefault();
  const label = form.querySelector('input[name=label]:checked');
  form.querySelector('button').disabled = true;
  trigger('submit', {turn: Number(form.dataset.turn), label: label ? label.value : '',
                     category: form.category.value, note: form.note.value});
});
setInterval(() => {
  element.querySelectorAll('.vp-clock[data-start]').forEach((clock) => {
    const s = Math.max(0, (Date.now() - Number(clock.dataset.start)) / 1000);
    clock.textContent = s.toFixed(1) + ' s';
  });
}, 200);
"""
