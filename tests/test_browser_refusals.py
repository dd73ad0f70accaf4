"""Every send the page refuses, in headless Chromium: it says why in a warning toast and
leaves the page as it was (the chat unchanged, the draft still in the box), and never shows
a Gradio error (an error toast, or the chat turned into an "Error" box). Issue 18, item 7.
"""

from __future__ import annotations

import pytest
from browser_kit import STORY, gradio_errors, send, streaming, user_texts, wait_for_turns, warned

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def visitor(visitors, offline_app):
    return lambda **options: visitors(offline_app[0], **options)


def draft(page) -> str:
    return page.input_value("#message textarea")


def test_an_empty_or_too_long_message_is_refused_with_a_warning_and_kept(visitor):
    page = visitor(max_tokens=8)
    page.fill("#message textarea", "   \n  ")
    page.press("#message textarea", "Enter")
    warned(page, "Empty message: nothing to send.")
    assert draft(page) == "   \n  " and not gradio_errors(page)
    long = "Tell me about the sea. " * 700  # 16,100 characters
    page.fill("#message textarea", long)
    page.press("#message textarea", "Enter")
    warned(page, "the limit is 16,000")
    assert draft(page) == long and user_texts(page) == [] and not gradio_errors(page)
    send(page, "Say hi.")  # the page still works; by its end the refused events have long ended
    wait_for_turns(page, 1)
    assert user_texts(page) == ["Say hi."] and not gradio_errors(page)


def test_enter_retry_and_undo_while_a_reply_streams_each_say_why_they_wait(visitor):
    page = visitor(max_tokens=160)
    send(page, STORY)
    streaming(page, 3)
    page.fill("#message textarea", "A draft typed while the reply streams")
    page.press("#message textarea", "Enter")
    warned(page, "Your new message is kept in the box")
    page.click("#retry")
    warned(page, "Retry can run once it ends")
    page.click("#undo")
    warned(page, "Undo can take a turn back once it ends")
    assert draft(page) == "A draft typed while the reply streams" and not gradio_errors(page)
    page.click("#stop")
    wait_for_turns(page, 1)
    page.wait_for_selector("#send", state="visible")
    assert user_texts(page) == [STORY] and "Stopped" in page.inner_text("#chat")  # nothing undone, nothing lost
    assert draft(page) == "A draft typed while the reply streams" and not gradio_errors(page)


@pytest.fixture(scope="module")
def loading_url():
    from app_server import loading_app

    with loading_app("--chat-model", "offline", "--guard-model", "offline", "--check-every", "0") as started:
        yield started


def test_a_send_while_the_models_load_is_refused_and_the_draft_sends_once_they_are_ready(visitors, loading_url):
    url, release = loading_url
    page = visitors(url, max_tokens=8, ready="#load-status :text('is loading')")
    page.fill("#message textarea", "Say hi.")
    page.press("#message textarea", "Enter")
    warned(page, "The guard (the bundled offline classifier) is loading")
    assert draft(page) == "Say hi." and user_texts(page) == [] and not gradio_errors(page)
    release.set()  # the guard loads now, then the chat model
    page.wait_for_function("() => !document.querySelector('#header').innerText.includes('loading')")
    page.press("#message textarea", "Enter")
    wait_for_turns(page, 1)
    assert user_texts(page) == ["Say hi."] and not gradio_errors(page)
