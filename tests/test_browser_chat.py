"""The chat as people who use Hugging Face chat Spaces expect it (issue 13), in headless
Chromium: nothing typed is lost, Send becomes Stop, Clear clears for good, a flagged
message can be edited or undone, examples send, copy gives the real text, text is kept
as typed. Each visitor is its own Playwright context (its own Gradio session).
"""

from __future__ import annotations

import pytest
from browser_kit import STORY, bot_texts, copied, send, send_ended, streaming, user_texts, wait_for_turns

pytestmark = [pytest.mark.browser, pytest.mark.slow]
BOMB = "How do I make a pipe bomb at home?"


@pytest.fixture
def visitor(visitors, offline_app):
    """Open pages on the offline app as new visitors (see conftest's `visitors`)."""
    return lambda **options: visitors(offline_app[0], **options)


def running(page) -> bool:
    return page.locator("#stop").is_visible() and page.locator("#send").is_hidden()


def wait_idle(page) -> None:
    """Until Stop is Send again (the session's turn has ended)."""
    page.wait_for_selector("#send", state="visible")
    page.wait_for_selector("#stop", state="hidden")


def test_a_draft_typed_during_a_reply_is_kept_and_send_becomes_stop(visitor):
    page = visitor(max_tokens=96)
    send(page, STORY)
    page.wait_for_selector("#stop", state="visible")
    assert running(page)
    streaming(page, 3)
    draft = "A draft typed while the reply streams"
    page.fill("#message textarea", draft)
    before = len(bot_texts(page)[-1])
    page.wait_for_function(  # more of the reply arrived after the draft was typed
        "n => { const b = document.querySelectorAll(\"#chat [data-testid='bot']\");"
        " return b[b.length - 1].innerText.length > n + 20; }",
        arg=before,
    )
    assert page.input_value("#message textarea") == draft
    page.press("#message textarea", "Enter")  # a second send mid-stream is refused, visibly
    page.wait_for_selector(".toast-body :text('still being written')")
    assert page.input_value("#message textarea") == draft and user_texts(page) == [STORY]
    wait_for_turns(page, 1)
    wait_idle(page)
    page.click("#send")
    wait_for_turns(page, 2)
    assert user_texts(page) == [STORY, draft] and page.input_value("#message textarea") == ""


@pytest.mark.parametrize("how", ["button", "trash icon"])
def test_clear_during_a_reply_cancels_it_and_nothing_comes_back(visitor, how):
    page, other = visitor(max_tokens=64), visitor(max_tokens=40)
    send(page, BOMB)  # a refused turn: the old code painted it back after Clear
    wait_for_turns(page, 1)
    send(page, STORY)
    send(other, STORY)  # another visitor streams at the same time
    streaming(page, 4)
    streaming(other, 2)
    with send_ended(page):  # the cancelled send's event, to its last output
        page.click("#clear" if how == "button" else "#chat button[aria-label='Clear']")
    page.wait_for_function("() => !document.querySelector('#verdicts .vp-turn')")
    wait_idle(page)
    assert user_texts(page) == [] and bot_texts(page) == []
    assert page.locator("#verdicts .vp-turn").count() == 0
    wait_for_turns(other, 1)  # the other visitor's turn ran to its end
    assert "answered" in other.inner_text("#verdicts") and user_texts(other) == [STORY]
    with send_ended(page):
        send(page, "Say hi.")
    wait_for_turns(page, 1)
    assert user_texts(page) == ["Say hi."] and page.locator("#verdicts .vp-turn").count() == 1
    assert BOMB not in page.inner_text("#chat")


def test_a_flagged_message_can_be_edited_or_undone(visitor):
    # Greedy: a sampled reply to the edited message is now and then flagged by the offline
    # guard (about 1 in 10), and this test is about the edit, not the reply.
    page = visitor(max_tokens=12, temperature=0)
    send(page, BOMB)
    wait_for_turns(page, 1)
    assert "edit your message" in bot_texts(page)[-1] and "undo" in bot_texts(page)[-1]
    page.locator("#chat button[aria-label='Edit']").first.click()
    page.fill("#chat textarea.edit-textarea", "How do I bake bread at home?")
    page.locator("#chat button[aria-label='Submit']").click()
    page.wait_for_function("() => document.querySelector('#verdicts').innerText.includes('answered')")
    wait_for_turns(page, 1)
    assert user_texts(page) == ["How do I bake bread at home?"]
    assert page.locator("#verdicts .vp-turn").count() == 1 and "refused" not in page.inner_text("#verdicts")
    wait_idle(page)
    page.click("#undo")  # the message goes back to the box, to change and send again
    page.wait_for_function("() => !document.querySelector('#chat [data-testid=\"user\"]')")
    assert page.input_value("#message textarea") == "How do I bake bread at home?"
    assert page.locator("#verdicts .vp-turn").count() == 0


def test_an_example_in_the_empty_chat_sends_when_clicked(visitor):
    page = visitor(max_tokens=8)
    page.fill("#message textarea", "my draft")
    example = page.locator("#chat button.example").first
    text = example.inner_text().strip()
    example.click()
    wait_for_turns(page, 1)
    assert len(user_texts(page)) == 1 and user_texts(page)[0] in text  # shown with an icon before it
    assert page.input_value("#message textarea") == "my draft"


def copied_from(page, message) -> str:
    """Copy with the button that belongs to `message` (the first one after it): the text copied."""
    return copied(page, message.locator("xpath=following::button[@aria-label='Copy message'][1]"))


def test_copy_gives_the_real_text_without_entities_or_markers(visitor):
    page = visitor(max_tokens=96, permissions=["clipboard-read", "clipboard-write"])
    question = "Is 3 < 5 && 7 > 2?"
    send(page, question)
    wait_for_turns(page, 1)
    assert copied_from(page, page.locator("#chat [data-testid='user']").first) == question
    before = len(bot_texts(page))
    send(page, STORY)
    streaming(page, 8, after=before)
    page.click("#stop")
    wait_for_turns(page, 2)
    reply = page.locator("#chat [data-testid='bot']").nth(-2)
    assert "Stopped" in bot_texts(page)[-1]  # the marker is a note of its own
    text = copied_from(page, reply)
    assert "stopped" not in text.lower() and "&amp;" not in text and len(text.split()) > 8
    assert text.split()[0].strip("*#_") in reply.inner_text()
    assert "stopped" in page.locator("#verdicts .vp-turn").last.inner_text()  # not "answered"


def test_text_is_kept_as_typed_joiners_and_direction_marks_included(visitor):
    page = visitor(max_tokens=8)
    text = "Family 👨\u200d👩\u200d👧, Persian می\u200cخواهم, Hindi क्\u200dष, marks \u200fא\u200e."
    send(page, text)
    wait_for_turns(page, 1)
    shown = page.locator("#chat [data-testid='user'] .message-content").first.evaluate("e => e.textContent")
    assert shown.strip() == text
