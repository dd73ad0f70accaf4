"""Two visitors in two real browser sessions (two Playwright contexts) on one app: Stop
reaches only the session that pressed it, and one session cannot lose a turn by sending
twice. Needs /usr/bin/chromium (`make test` installs it)."""

from __future__ import annotations

import pytest

from test_browser import CHROMIUM_FLAGS, bot_texts, chromium_path, send, wait_for_turns

pytestmark = [pytest.mark.browser, pytest.mark.slow]
STORY = "Write a very long story about a dragon who learns to cook, with many chapters."


@pytest.fixture(scope="module")
def app_url():
    from app_server import running_app

    with running_app("--chat-model", "offline", "--guard-model", "offline", "--check-every", "0",
                     "--concurrency", "2") as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield b
        b.close()


def open_page(browser, url):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(180_000)
    page.goto(url)
    page.wait_for_selector("#header :text('not Llama Guard')")
    return context, page


def set_max_tokens(page, n: int) -> None:
    page.click("#settings")
    box = page.get_by_label("Max new tokens").locator("xpath=ancestor::div[contains(@class,'block')][1]") \
        .locator("input[type='number']")
    box.fill(str(n))
    box.press("Enter")


def streaming(page, words: int = 6) -> None:
    """Wait until the newest reply has streamed a few words."""
    page.wait_for_function(
        "w => { const b = document.querySelectorAll(\"#chat [data-testid='bot']\");"
        " return b.length && b[b.length - 1].innerText.trim().split(/\\s+/).length > w; }", arg=words)


def test_stop_in_one_session_leaves_the_other_streaming(browser, app_url):
    (ca, a), (cb, b) = open_page(browser, app_url), open_page(browser, app_url)
    try:
        set_max_tokens(b, 64)
        send(a, STORY)
        send(b, STORY)
        streaming(a), streaming(b)
        a.click("#stop")
        wait_for_turns(a, 1)
        wait_for_turns(b, 1)
        assert "(stopped)" in bot_texts(a)[-1]
        assert "(stopped)" not in bot_texts(b)[-1] and "answered" in b.inner_text("#verdicts")
        assert len(bot_texts(b)[-1].split()) > len(bot_texts(a)[-1].split()) // 4  # B ran to its own end
    finally:
        ca.close(), cb.close()


def test_a_second_send_while_a_reply_streams_loses_no_turn(browser, app_url):
    context, page = open_page(browser, app_url)
    try:
        set_max_tokens(page, 48)
        send(page, "Write a poem about the sea.")
        streaming(page, 3)
        send(page, "Now one about the mountains.")  # the first reply is still streaming
        page.wait_for_selector(":text('still being written')")
        assert page.input_value("#message textarea") == "Now one about the mountains."  # kept, not lost
        wait_for_turns(page, 1)
        page.click("#send")
        wait_for_turns(page, 2)
        users = page.locator("#chat [data-testid='user']").all_inner_texts()
        assert [u.strip() for u in users] == ["Write a poem about the sea.", "Now one about the mountains."]
    finally:
        context.close()
