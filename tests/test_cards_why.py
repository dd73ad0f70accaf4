"""The verdict card says why a long message was flagged (issue 21): which window scored
highest and the message with that window highlighted, escaped (the text is untrusted).
Verdicts from the real offline classifier; turns built as plain TurnStates."""

from __future__ import annotations

import html
import re

import pytest
from test_offline_long_input import BOMB, FILLER, PARTY

from guard.offline import OfflineGuard
from guard.verdict import HighestWindow, Verdict
from moderation.turn import ANSWERED, REFUSED, RETRACTED, Check, TurnState
from moderation.web.cards import AROUND, MAPPED, MARK_MAX, why_html
from moderation.web.panel import panel_html

XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
LONG = PARTY + FILLER + " " + BOMB + FILLER * 2


@pytest.fixture(scope="module")
def offline() -> OfflineGuard:
    return OfflineGuard.load()


def marked(card: str) -> str:
    """The highlighted text, unescaped."""
    return html.unescape("".join(re.findall(r"<mark>(.*?)</mark>", card, re.S)))


def test_a_refused_long_prompt_shows_its_highest_window_highlighted(offline):
    verdict = offline.check([{"role": "user", "content": LONG}])
    window = verdict.highest_window
    turn = TurnState(user=LONG, checks=(Check("prompt", verdict),), outcome=REFUSED)
    card = panel_html([turn])
    assert f"Scored highest: window {window.index} of {window.count}, {verdict.score:.0%}" in card
    assert BOMB in marked(card) and marked(card) == LONG[window.start : window.end]
    assert "characters before]" in card and "characters after]" in card  # the rest of the message is counted
    assert card.count("<mark>") == 1


def test_the_untrusted_text_is_escaped_in_and_around_the_highlight():
    text = "a" * 300 + XSS + "b" * 50 + XSS + "c" * 300
    window = HighestWindow(300, 300 + len(XSS) + 50, 2, 3)
    turn = TurnState(user=text, checks=(Check("prompt", Verdict(safe=False, score=0.87, highest_window=window)),))
    card = why_html(turn.checks[0], turn)
    assert "<img" not in card and "<script" not in card and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in card
    assert "Scored highest: window 2 of 3, 87%" in card
    assert marked(card) == XSS + "b" * 50


def test_a_very_long_window_shows_its_ends_and_counts_the_middle():
    text = "x" * 10_000
    check = Check("prompt", Verdict(safe=False, score=0.9, highest_window=HighestWindow(1000, 9000, 2, 4)))
    card = why_html(check, TurnState(user=text, checks=(check,)))
    assert len(marked(card)) == MARK_MAX and "[… 6,000 characters …]" in card
    assert "[760 characters before]" in card and f"[{10_000 - 9000 - AROUND:,} characters after]" in card


def test_one_window_has_nothing_to_show_and_a_withdrawn_reply_is_not_shown_again():
    one = Check("prompt", Verdict(safe=False, score=0.9))
    assert why_html(one, TurnState(user="bomb", checks=(one,))) == ""
    reply = "secret harmful reply " * 40
    flagged = Check(
        "response", Verdict(safe=False, score=0.8, highest_window=HighestWindow(100, 300, 2, 2)), len(reply)
    )
    withdrawn = TurnState(user="hi", reply=reply, checks=(flagged,), outcome=RETRACTED)
    card = why_html(flagged, withdrawn)
    assert "Scored highest: window 2 of 2, 80%" in card and "secret" not in card and "<mark>" not in card
    answered = TurnState(user="hi", reply=reply, shown=reply, checks=(flagged,), outcome=ANSWERED)
    assert marked(why_html(flagged, answered)) == reply[100:300]


def test_a_window_read_from_normalised_text_says_it_was_mapped_back(offline):
    hidden = LONG.replace("pipe bomb", "pi\u200bpe b\u00adomb")
    verdict = offline.check([{"role": "user", "content": hidden}])
    turn = TurnState(user=hidden, checks=(Check("prompt", verdict),), outcome=REFUSED)
    card = panel_html([turn])
    assert verdict.highest_window.mapped and MAPPED in card and "pi\u200bpe b\u00adomb" in marked(card)


def test_the_prompt_window_counts_the_system_prompt_the_guard_read_with_it(offline):
    system = "Answer briefly."
    verdict = offline.check([{"role": "user", "content": f"{system}\n\n{LONG}"}])
    turn = TurnState(user=LONG, system_prompt=system, checks=(Check("prompt", verdict),), outcome=REFUSED)
    assert BOMB in marked(panel_html([turn]))
