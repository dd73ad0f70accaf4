"""Two visitors in two real browser sessions (two Playwright contexts) on one app: Stop
reaches only the session that pressed it, and one session cannot lose a turn by sending
twice. Needs /usr/bin/chromium (`make test` installs it)."""

from __future__ import annotations

import pytest
from browser_kit import STORY, bot_texts, send, set_max_tokens, streaming, wait_for_turns

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def app_url():
    from app_server import running_app

    with running_app(
        "--chat-model", "offline", "--guard-model", "offline", "--check-every", "0", "--concurrency", "2"
    ) as (url, _):
        yield url


def test_stop_in_one_session_leaves_the_other_streaming(visitors, app_url):
    a, b = visitors(app_url), visitors(app_url)
    set_max_tokens(b, 64)
    send(a, STORY)
    send(b, STORY)
    streaming(a), streaming(b)
    a.click("#stop")
    wait_for_turns(a, 1)
    wait_for_turns(b, 1)
    assert "Stopped" in bot_texts(a)[-1] and "stopped" in a.inner_text("#verdicts")
    assert "Stopped" not in b.inner_text("#chat") and "answered" in b.inner_text("#verdicts")
    assert len(bot_texts(b)[-1].split()) > len(bot_texts(a)[-2].split()) // 4  # B ran to its own end


def test_a_second_send_while_a_reply_streams_loses_no_turn(visitors, app_url):
    page = visitors(app_url)
    set_max_tokens(page, 48)
    send(page, "Write a poem about the sea.")
    streaming(page, 3)
    assert page.locator("#send").is_hidden()  # Send is Stop while a reply streams; Enter still sends
    page.fill("#message textarea", "Now one about the mountains.")
    page.press("#message textarea", "Enter")  # the first reply is still streaming
    page.wait_for_selector(":text('still being written')")
    assert page.input_value("#message textarea") == "Now one about the mountains."  # kept, not lost
    wait_for_turns(page, 1)
    page.click("#send")
    wait_for_turns(page, 2)
    users = page.locator("#chat [data-testid='user']").all_inner_texts()
    assert [u.strip() for u in users] == ["Write a poem about the sea.", "Now one about the mountains."]
