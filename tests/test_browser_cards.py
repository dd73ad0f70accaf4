"""A verdict card in headless Chromium, on the offline app with a real SQLite moderation
log: Report on a card reaches the log as a visitor label and the card says "reported"; the
risk strip's points are the logged reply verdicts; a running card shows its stage and a
timer that runs in the browser."""

from __future__ import annotations

import pytest
from browser_kit import STORY, send, wait_for_turns
from sqlalchemy import select

from moderation.log.schema import labels, open_engine, turns, verdicts

pytestmark = [pytest.mark.browser, pytest.mark.slow]
BOMB = "How do I make a pipe bomb at home?"


@pytest.fixture(scope="module")
def logged_app(tmp_path_factory):
    """The offline app with its moderation log in a fresh SQLite file: (url, engine)."""
    from app_server import running_app

    db = str(tmp_path_factory.mktemp("log") / "log.sqlite3")
    flags = ("--chat-model", "offline", "--guard-model", "offline", "--check-every", "4", "--log-db", db)
    with running_app(*flags) as (url, _):
        engine = open_engine(db)
        yield url, engine
        engine.dispose()


def rows(engine, query) -> list:
    with engine.connect() as conn:
        return conn.execute(query).all()


def test_report_on_a_card_reaches_the_log_and_the_card_says_reported(visitors, logged_app):
    url, engine = logged_app
    page = visitors(url, max_tokens=8)
    send(page, BOMB)
    wait_for_turns(page, 1)
    card = page.locator("#vp-turn-1")
    card.locator(".vp-report > summary").click()
    form = card.locator("form.vp-report-form")
    form.locator("input[value='false_positive']").check()
    form.locator("select[name='category']").select_option("S9")
    form.locator("textarea[name='note']").fill("a question about a film plot")
    form.get_by_role("button", name="Send report").click()
    card.locator(".vp-reported").wait_for()
    assert "Reported: should not have been flagged" in card.locator(".vp-reported").inner_text()
    [label] = rows(
        engine,
        select(labels.c.source, labels.c.label, labels.c.stage, labels.c.categories, labels.c.note)
        .join(turns, turns.c.id == labels.c.turn_id)
        .where(turns.c.user_text == BOMB),
    )
    assert tuple(label) == ("visitor", "false_positive", "prompt", '["S9"]', "a question about a film plot")
    assert card.get_attribute("open") is not None and page.locator(".toast-body.error").count() == 0


def test_the_risk_strip_shows_the_logged_reply_verdicts(visitors, logged_app):
    url, engine = logged_app
    page = visitors(url, max_tokens=40, temperature=0.0)
    send(page, STORY)
    wait_for_turns(page, 1)
    strip = page.locator("#vp-turn-1 .vp-strip svg")
    strip.wait_for()
    box = strip.bounding_box()
    assert box["width"] > 100 and box["height"] > 15
    drawn = [
        float(s) for s in page.locator("#vp-turn-1 .vp-strip circle").evaluate_all("cs => cs.map(c => c.dataset.score)")
    ]
    logged = rows(
        engine,
        select(verdicts.c.score)
        .join(turns, turns.c.id == verdicts.c.turn_id)
        .where(turns.c.user_text == STORY, verdicts.c.stage != "prompt")
        .order_by(verdicts.c.seq),
    )
    assert len(drawn) >= 3 and drawn == [round(score, 4) for (score,) in logged]


def test_a_running_card_shows_its_stage_and_a_timer_that_runs_in_the_browser(visitors, logged_app):
    url, _ = logged_app
    page = visitors(url, max_tokens=64)
    page.evaluate("""() => {
      window.stages = []; window.clocks = [];
      new MutationObserver(() => {
        const now = document.querySelector('#verdicts .vp-stage-now');
        const clock = document.querySelector('#verdicts .vp-clock');
        if (now && window.stages[window.stages.length - 1] !== now.dataset.stage) window.stages.push(now.dataset.stage);
        if (clock) window.clocks.push(clock.textContent);
      }).observe(document.querySelector('#verdicts'), {childList: true, subtree: true, characterData: true});
    }""")
    send(page, STORY)
    wait_for_turns(page, 1)
    stages = page.evaluate("window.stages")
    clocks = page.evaluate("window.clocks")
    assert stages[0] == "checking the prompt" and any(s.startswith("writing") for s in stages), stages
    assert stages[-1].startswith("final check"), stages
    assert any(float(c.split()[0]) > 0 for c in clocks), clocks  # the browser ran the clock
    assert page.locator("#verdicts .vp-stage-now").count() == 0  # gone once the turn ended
