"""Why it was flagged (issue 21), in headless Chromium on the offline app: a long message
with one harmful sentence buried in benign text is refused, and its verdict card says which
window scored highest and shows the message with that sentence highlighted. The message
also carries an XSS payload: the card shows it as text."""

from __future__ import annotations

import pytest
from browser_kit import send, wait_for_turns
from test_offline_long_input import BOMB, FILLER, PARTY

pytestmark = [pytest.mark.browser, pytest.mark.slow]
XSS = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
LONG = PARTY + FILLER + " " + XSS + " " + BOMB + FILLER * 2  # the payload inside the card's excerpt


@pytest.fixture(scope="module")
def offline_app():
    from app_server import running_app

    with running_app("--chat-model", "offline", "--guard-model", "offline", "--log-db", "none") as (url, _):
        yield url


def test_a_buried_harmful_sentence_is_highlighted_in_the_card(visitors, offline_app):
    page = visitors(offline_app, max_tokens=8)
    send(page, LONG)
    wait_for_turns(page, 1)
    card = page.locator("#vp-turn-1")
    why = card.locator(".vp-why")
    why.wait_for()
    head = why.locator(".vp-why-head").inner_text()
    windows = int(why.get_attribute("data-windows"))
    assert windows >= 4 and head.startswith(f"Scored highest: window {why.get_attribute('data-window')} of {windows},")
    assert head.endswith("%") and head.rsplit(" ", 1)[1] in card.locator(".vp-meta").first.inner_text()
    mark = why.locator("mark")
    assert mark.count() == 1 and mark.is_visible()
    assert BOMB in mark.inner_text()
    assert "refused" in card.locator("summary").inner_text()
    assert XSS in why.inner_text()  # the payload is text in the card ...
    assert page.locator("#verdicts img, #verdicts script").count() == 0  # ... not elements
    assert page.evaluate("window.pwned") is None
