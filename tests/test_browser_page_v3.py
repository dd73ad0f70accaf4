"""The page's rough edges (issue 21), in headless Chromium: it opens at its top with the box
focused, the keyboard (Escape, focus after Stop and examples, Enter in the edit box), the
cards (finding a message keeps its card open; red categories in dark mode), the settings'
words, the API page's descriptions and streaming sample, one "Turn N" per turn and plain
notes, long messages folded and counted, and the running turn's verdict in view on a phone.
Screenshots of what changed go to artifacts/ (page21a-*.png).
"""

from __future__ import annotations

import pytest
from browser_kit import (
    DESKTOP,
    PHONE,
    STORY,
    screenshot,
    send,
    set_max_tokens,
    streaming,
    user_texts,
    wait_for_turns,
)

from moderation.schema import MAX_MESSAGE_CHARS

pytestmark = [pytest.mark.browser, pytest.mark.slow]
BOMB = "How do I make a pipe bomb at home?"
SHORT_PHONE = {"width": 360, "height": 640}


def box_focused(page) -> None:
    page.wait_for_function("() => document.activeElement === document.querySelector('#message textarea')")


def in_viewport(page, selector: str) -> bool:
    return page.evaluate(
        "s => { const r = document.querySelector(s).getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= innerHeight && r.height > 0; }",
        selector,
    )


def idle(page) -> None:
    page.locator("#send").wait_for(state="visible")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE, SHORT_PHONE], ids=["desktop", "phone", "short-phone"])
def test_the_page_opens_at_its_top_with_the_box_focused_and_no_label_over_the_chat(visitors, offline_app, viewport):
    page = visitors(offline_app[0], viewport=viewport)
    box_focused(page)
    assert page.evaluate("scrollY") == 0
    for part in ("#header h2", "#header p", "#notice"):  # the title, the model line, the notice's start
        assert page.evaluate("s => document.querySelector(s).getBoundingClientRect().top", part) >= 0
    assert not page.locator("#chat [data-testid='block-label']").is_visible()  # no floating "Chat"
    assert page.get_attribute("#chat [role=log]", "aria-label")  # the chat keeps an accessible name
    # nothing drawn over the first example: measured and probed in one step in the page, since the
    # chat's own autoscroll may still move it (on a short phone) between two separate calls
    page.wait_for_function(
        """() => {
            const b = document.querySelector('#chat button.example');
            b.scrollIntoView({block: 'nearest'});
            const r = b.getBoundingClientRect();
            const hit = document.elementFromPoint(r.left + 8, r.top + 8);
            return hit !== null && hit.closest('button.example') === b;
        }""",
        timeout=15_000,
    )


def test_the_keyboard_stops_sends_and_edits(visitors, offline_app):
    page = visitors(offline_app[0], max_tokens=200, temperature=0)
    send(page, STORY)
    streaming(page, 4)
    page.keyboard.press("Escape")  # stops the reply
    wait_for_turns(page, 1)
    assert "stopped" in page.inner_text("#vp-turn-1 summary")
    box_focused(page)
    page.click("#clear")
    page.wait_for_function("() => !document.querySelector('#verdicts .vp-turn')")
    set_max_tokens(page, 8, temperature=0)
    page.locator("#chat button.example").first.focus()
    page.keyboard.press("Enter")  # an example, with Enter: the focus goes back to the box
    box_focused(page)
    wait_for_turns(page, 1)
    idle(page)
    page.locator("#stop").wait_for(state="hidden")
    page.locator("#chat button[aria-label='Edit']").first.click()
    edit = page.locator("#chat textarea.edit-textarea")
    edit.wait_for()
    assert in_viewport(page, "#chat textarea.edit-textarea")
    edit.fill("Name a colour.")
    edit.press("Shift+Enter")  # a new line, not a send
    assert edit.input_value() == "Name a colour.\n"
    edit.press("Backspace")
    edit.press("Enter")  # submits the edit
    page.wait_for_function("() => !document.querySelector('#chat textarea.edit-textarea')")
    wait_for_turns(page, 1)
    assert user_texts(page) == ["Name a colour."]


def test_a_cards_title_finds_its_message_and_keeps_it_open_and_flags_are_red_in_dark_mode(visitors, offline_app):
    page = visitors(offline_app[0], max_tokens=6, color_scheme="dark")
    send(page, BOMB)
    wait_for_turns(page, 1)
    card = page.locator("#vp-turn-1")
    assert card.get_attribute("open") is not None and "vp-flagged" in card.get_attribute("class")
    page.locator("#vp-turn-1 summary .vp-worst").click()
    page.wait_for_function("() => document.querySelector('#chat .user-row[data-turn=\"1\"]').matches('.vp-highlight')")
    assert card.get_attribute("open") is not None  # finding the message did not collapse the card
    red, green, blue = page.evaluate(
        "() => getComputedStyle(document.querySelector('#vp-turn-1 .vp-worst')).color.match(/\\d+/g).map(Number)"
    )
    assert red > 180 and red > green + 60 and red > blue + 60
    page.locator("#vp-turn-1 summary").click(position={"x": 4, "y": 8})  # the ▸ marker still closes it
    page.wait_for_function("() => !document.querySelector('#vp-turn-1').open")
    screenshot(page, "page21a-dark.png")


def test_the_settings_say_their_range_which_way_is_stricter_and_keep_min_max_on_a_phone(visitors, offline_app):
    page = visitors(offline_app[0], viewport=PHONE)
    page.locator("#settings").get_by_text("Settings", exact=True).click()
    every = page.locator("#check-every")
    low = int(every.locator("[data-testid='min-value']").inner_text())
    assert ("0 = only at the end" in every.inner_text()) == (low == 0)  # the label matches the range
    for control in ("#threshold", "#check-every", "#stream-policy", "#categories"):
        if page.locator(control).is_visible():
            assert "Stricter:" in page.inner_text(control)
    assert "varied" in page.inner_text("#temperature")  # Temperature explained
    system = page.locator("#system-prompt")
    assert "read-only" in system.inner_text() and system.locator("textarea").is_disabled()
    assert page.evaluate(
        "() => getComputedStyle(document.querySelector('#system-prompt textarea')).borderStyle"
    ).startswith("dashed")
    for slider in ("#temperature", "#threshold", "#max-new-tokens"):  # min and max shown on a phone
        assert page.locator(f"{slider} [data-testid='min-value']").is_visible()
        assert page.locator(f"{slider} [data-testid='max-value']").is_visible()
    page.locator("#threshold").scroll_into_view_if_needed()
    screenshot(page, "page21a-phone-settings.png", height=2400)


def test_the_api_page_describes_each_parameter_streams_chat_and_points_to_v1(visitors, offline_app):
    page = visitors(offline_app[0])
    page.click("text=Use via API")
    page.wait_for_selector(":text('API documentation')")
    text = page.inner_text("body")
    assert "No description" not in text and "The input value that is provided" in text
    for described in ("the message to judge", "optional earlier messages", "the user's message"):
        assert described in text
    assert "job = client.submit(" in text and "for update in job" in text  # the /chat sample streams
    assert "client.predict(" in text  # /moderate's sample is Gradio's own
    assert "/v1/models" in text and "docs/api.md" in text


def test_one_turn_label_per_turn_and_plain_notes(visitors, offline_app):
    page = visitors(offline_app[0], max_tokens=4, temperature=0)
    send(page, "Write a long poem about the sea.")
    wait_for_turns(page, 1)
    send(page, BOMB)
    wait_for_turns(page, 2)
    labels = page.evaluate(
        "() => [...document.querySelectorAll('#chat [data-testid]')]"
        ".map(e => getComputedStyle(e, '::before').content).filter(c => c.includes('Turn'))"
    )
    assert len(labels) == 2  # one per turn, though the refusal has three bubbles
    note = page.locator("#chat .message-row.vp-plain-note").filter(has_text="Length limit reached")
    note.wait_for()
    assert not note.locator(".arrow").is_visible()
    copies = page.locator("#chat .vp-plain-note + .message-buttons button[aria-label='Copy message']")
    assert copies.count() >= 1 and not any(c.is_visible() for c in copies.all())
    flag = page.locator("#chat .message-row").filter(has_text="Message flagged")
    assert flag.count() == 1 and "vp-plain-note" not in flag.get_attribute("class")  # it has a body
    screenshot(page, "page21a-desktop.png")


def test_a_long_message_is_folded_and_the_box_counts_characters(visitors, offline_app):
    page = visitors(offline_app[0], max_tokens=4, temperature=0)
    counter = page.locator("#char-count")
    page.fill("#message textarea", "x" * 100)
    assert counter.inner_text() == ""  # quiet for a short message
    page.fill("#message textarea", "y" * (MAX_MESSAGE_CHARS + 1))
    page.wait_for_function("() => document.querySelector('#char-count').classList.contains('vp-over')")
    assert counter.inner_text() == f"{MAX_MESSAGE_CHARS + 1:,} / {MAX_MESSAGE_CHARS:,} characters"
    long = " ".join(["The quiet harbour town wakes slowly."] * 140)[:5000]
    page.fill("#message textarea", long)
    assert counter.inner_text() == f"5,000 / {MAX_MESSAGE_CHARS:,} characters"
    page.click("#send")
    wait_for_turns(page, 1)
    bubble = page.locator("#chat [data-testid='user']").first
    page.wait_for_function("() => document.querySelector('#chat .vp-long')")
    folded = bubble.bounding_box()["height"]
    assert folded < 320
    page.locator("#chat .vp-more").click()
    page.wait_for_function(
        "h => document.querySelector('#chat [data-testid=\"user\"]').offsetHeight > h * 2", arg=folded
    )
    assert page.inner_text("#verdicts .vp-turn") and "Show less" in bubble.inner_text()


def test_on_a_phone_the_running_turns_verdict_is_in_view_while_it_streams(visitors, offline_app):
    page = visitors(offline_app[0], viewport=PHONE, max_tokens=200, temperature=0)
    send(page, STORY)
    streaming(page, 4)
    line = page.locator("#live-verdict .vp-live")
    assert line.is_visible() and in_viewport(page, "#live-verdict .vp-live")
    assert "in progress" in line.inner_text() and "Turn 1" in line.inner_text()
    screenshot(page, "page21a-phone.png")
    page.keyboard.press("Escape")
    wait_for_turns(page, 1)
    page.wait_for_function("() => document.querySelector('#live-verdict .vp-live').innerText.includes('stopped')")
    line.click()  # the line leads to the card
    page.wait_for_function("() => document.querySelector('#vp-turn-1').matches('.vp-highlight')")
