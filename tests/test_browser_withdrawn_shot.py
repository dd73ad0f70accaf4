"""A withdrawn reply and its risk strip, in headless Chromium on the offline app with the
real offline models: the README's screenshot of it is taken here (`UPDATE_SCREENSHOTS=1`
also writes docs/screenshot-withdrawn.png).

Nothing is faked. The offline guard scores a harmless request and its reply low, so at
the operator's 50% nothing is withdrawn. A visitor may only tighten the threshold: a first
visitor's answered turn (greedy, so the same reply every time) gives the final check's score
of the whole reply, and a second visitor lowers the threshold to the whole percent under it,
above the prompt's score. The prompt passes and the same reply is withdrawn: by a check
while it streams where its score first reaches that threshold (where the checks land
depends on the guard's speed: a check starts when the last one is done), at the latest by
the final check, which judges the same whole reply as the first visitor's.
"""

from __future__ import annotations

import math
import re

import pytest
from browser_kit import screenshot, send, set_settings, wait_for_turns

pytestmark = [pytest.mark.browser, pytest.mark.slow]
# harmless requests whose greedy reply an offline model scores above the request itself
# (the sixteenth e5 run: the gangsters' scene, 0.38 against 0.03; it scores the other two
# replies under 1%; the ninth e5 run: the plot; all-MiniLM-L6-v2: the bar scene)
QUESTIONS = (
    "Write a scene where two gangsters argue.",
    "Describe the plot of Breaking Bad in detail.",
    "Write a scene where two men argue in a bar.",
)
TOKENS = 48
CAPTION = re.compile(r"Withdrawn: the score crossed (\d+)% at character ([\d,]+); ([\d,]+) characters had been shown")


def scores(page, selector: str) -> list[float]:
    """The unsafe scores of the strip's points (its circles matching `selector`), in order."""
    return [
        float(s)
        for s in page.locator(f"#vp-turn-1 .vp-strip {selector}").evaluate_all("cs => cs.map(c => c.dataset.score)")
    ]


def prompt_score_at_most(page) -> float:
    """The most the prompt's unsafe score can be: the card shows it as a whole percent."""
    summary = page.locator("#vp-turn-1").inner_text()
    percent = re.search(r"Prompt.*?unsafe score (\d+)%", summary, flags=re.S)
    assert percent, summary
    return (int(percent.group(1)) + 0.5) / 100


def set_threshold(page, value: float) -> None:
    """Settings -> Guard threshold, typed into its number box; the accordion is closed again."""
    set_settings(page, [("#threshold", round(value, 2))])


def test_a_withdrawn_reply_shows_where_its_score_crossed_and_what_had_been_shown(visitors, offline_app):
    tried = []
    for question in QUESTIONS:  # the first whose reply can be stopped while its prompt passes
        first = visitors(offline_app[0], max_tokens=TOKENS, temperature=0.0)
        send(first, question)
        wait_for_turns(first, 1)
        checks = scores(first, "circle")  # the last is the final check of the whole reply
        ceiling = prompt_score_at_most(first)
        threshold = math.floor(checks[-1] * 100 - 0.1) / 100  # a whole percent under the final check's score
        assert "answered" in first.locator("#vp-turn-1 summary").inner_text()
        if threshold > ceiling:
            break
        tried.append(f"{question!r}: prompt {ceiling:.3f}, reply {checks[-1]:.3f}")
    else:
        pytest.fail(f"no threshold lets the prompt pass and stops the reply: {'; '.join(tried)}")

    page = visitors(offline_app[0], max_tokens=TOKENS, temperature=0.0)
    set_threshold(page, threshold)
    send(page, question)
    wait_for_turns(page, 1)
    card = page.locator("#vp-turn-1")
    assert "retracted" in card.locator("summary").inner_text()
    assert "The reply was withdrawn" in page.inner_text("#chat")
    strip = card.locator(".vp-strip")
    caption = CAPTION.search(strip.locator(".vp-strip-caption").inner_text())
    assert caption, strip.inner_text()
    percent, crossed_at, shown = (int(g.replace(",", "")) for g in caption.groups())
    assert percent == round(threshold * 100) and shown > 0 and strip.locator("line.vp-cross").count() == 1
    flagged = card.locator(".vp-strip circle.vp-pt-unsafe").first
    assert int(flagged.get_attribute("data-chars")) == crossed_at
    assert float(flagged.get_attribute("data-score")) >= threshold
    passed = card.locator(".vp-strip circle.vp-pt-safe")  # every check before it stayed under the line
    assert all(int(c) < crossed_at for c in passed.evaluate_all("cs => cs.map(c => c.dataset.chars)"))
    assert all(score < threshold for score in scores(page, "circle.vp-pt-safe"))

    strip.scroll_into_view_if_needed()
    shot = screenshot(page, "screenshot-withdrawn.png", height=1000)
    assert shot.stat().st_size > 0
