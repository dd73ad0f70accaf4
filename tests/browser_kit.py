"""What the browser tests share: Debian's Chromium under Playwright, opening the page as a
visitor (one Playwright context = one browser session), and reading what the page shows.

Needs /usr/bin/chromium (`make test` installs it).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

from moderation.web.welcome import SEEN_KEY

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
DOCS = ROOT / "docs"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 1000}
PHONE = {"width": 390, "height": 844}
STORY = "Write a very long story about a dragon who learns to cook, with many chapters."
READY = "#header :text('not Llama Guard')"  # the offline guard's label: the models are loaded
# Gradio loads each component's script when the page first needs it, so the header can be on
# the page before the chat: a visitor's page is usable once these are mounted too
MOUNTED = ("#chat", "#message textarea", "#send", "#verdicts")


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Debian's chromium is required for the browser tests: run `make test` (it installs it)"
    return path


def launch(playwright):
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)


def open_page(browser, url: str, viewport: dict = DESKTOP, ready: str = READY, first_visit: bool = False, **options):
    """A new visitor: a fresh context (its own Gradio session) on the page. (context, page)
    Unless `first_visit`, the visitor has already dismissed the first visit's explanation
    (moderation.web.welcome), as a returning visitor has."""
    context = browser.new_context(viewport=viewport, **options)
    if not first_visit:
        context.add_init_script(f"localStorage.setItem('{SEEN_KEY}', '1')")
    page = context.new_page()
    page.set_default_timeout(180_000)
    page.goto(url)
    wait_until_ready(page, ready)
    return context, page


def wait_until_ready(page, ready: str = READY) -> None:
    """Until `ready` is shown and the chat, its box, Send and the verdict panel are mounted."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_selector(ready)
    for part in MOUNTED:
        try:
            page.wait_for_selector(part, state="attached")
        except PlaywrightTimeout:  # say what the page held instead, for a failure read in CI's log
            ids = page.evaluate("() => [...document.querySelectorAll('[id]')].map(e => e.id).slice(0, 80)")
            text = page.evaluate("() => document.body.innerText.slice(0, 2000)")
            raise AssertionError(f"{part} never mounted; ids on the page: {ids}; its text: {text!r}") from None


def send(page, text: str) -> None:
    page.fill("#message textarea", text)
    page.click("#send")


def bot_texts(page) -> list[str]:
    return page.locator("#chat [data-testid='bot']").all_inner_texts()


def user_texts(page) -> list[str]:
    return [t.strip() for t in page.locator("#chat [data-testid='user']").all_inner_texts()]


def wait_for_turns(page, n: int) -> None:
    """Until the panel shows `n` turns (or more) and none is still running."""
    page.wait_for_function(
        "n => document.querySelectorAll('#verdicts .vp-turn').length >= n"
        " && !document.querySelector('#verdicts').innerText.includes('in progress')",
        arg=n,
    )


def streaming(page, words: int = 6, after: int = 0) -> None:
    """Until the newest reply, one of the bot messages after the first `after`, has streamed
    more than `words` words."""
    page.wait_for_function(
        "([w, n]) => { const b = document.querySelectorAll(\"#chat [data-testid='bot']\");"
        " return b.length > n && b[b.length - 1].innerText.trim().split(/\\s+/).length > w; }",
        arg=[words, after],
    )


def warned(page, text: str) -> None:
    """Until a warning toast that contains `text` is shown."""
    page.locator(".toast-body.warning").filter(has_text=text).first.wait_for(state="visible", timeout=30_000)


def gradio_errors(page) -> list[str]:
    """What the page shows of a Gradio error: error toasts, and a failed event's error box
    in the chat (its status tracker says "Error" over the messages)."""
    toasts = page.locator(".toast-body.error").all_inner_texts()
    boxes = page.locator("#chat .error").all_inner_texts()
    chat = page.inner_text("#chat")
    return toasts + boxes + ([chat] if "Error" in chat or "output values" in chat else [])


def record_reply_lengths(page) -> None:
    """From now on the page keeps, in `window.replyLengths`, each length the newest chat
    message has had as it changed (read them back with page.evaluate)."""
    page.evaluate("""() => {
      window.replyLengths = [];
      new MutationObserver(() => {
        const b = document.querySelectorAll("#chat [data-testid='bot']");
        const n = b.length ? b[b.length - 1].innerText.trim().length : 0;
        if (n && window.replyLengths[window.replyLengths.length - 1] !== n) window.replyLengths.push(n);
      }).observe(document.querySelector('#chat'), {childList: true, subtree: true, characterData: true});
    }""")


def send_ended(page):
    """Expect the end of a send's event: `with send_ended(page): ...` returns once the call
    that follows every send (`.then(buttons)`, which sets Send or Stop) has been answered,
    so all that the send's event streamed, its last output included, has reached the page.
    That call is the only one of the page's with exactly two outputs."""

    def is_follow_up(response) -> bool:
        if not response.url.endswith("/gradio_api/run/predict") or not response.ok:
            return False
        return len(response.json().get("data", [])) == 2

    return page.expect_response(is_follow_up)


def copied(page, button) -> str:
    """Click a copy button and read the clipboard back, once it holds something new."""
    page.evaluate("navigator.clipboard.writeText('(nothing copied yet)')")
    button.click()
    page.wait_for_function("async () => (await navigator.clipboard.readText()) !== '(nothing copied yet)'")
    return page.evaluate("navigator.clipboard.readText()")


def set_number(page, field: str, value: float, tries: int = 5) -> None:
    """Type `value` into a slider's number box until the slider itself holds it. An event sent
    before then carries the old value (seen in CI), and a box typed into while the page is
    still settling can drop the typing altogether (seen in CI too), so it is typed again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = page.locator(f"{field} input[type='number']")
    holds = "([f, v]) => Math.abs(parseFloat(document.querySelector(f + \" input[type='range']\").value) - v) < 1e-9"
    for _ in range(tries):
        box.fill(str(value))
        box.press("Enter")
        try:
            page.wait_for_function(holds, arg=[field, value], timeout=5_000)
            return
        except PlaywrightTimeout:
            continue
    shown = page.evaluate("f => document.querySelector(f + \" input[type='range']\").value", field)
    raise AssertionError(f"{field} still holds {shown} after typing {value} {tries} times")


def set_settings(page, fields: list[tuple[str, float]]) -> None:
    """Settings -> each (slider id, value) typed into its number box; the accordion is
    opened and closed again."""
    toggle = page.locator("#settings").get_by_text("Settings", exact=True)
    toggle.click()
    for field, value in fields:
        set_number(page, field, value)
    toggle.click()
    page.locator(fields[0][0]).wait_for(state="hidden")


def set_max_tokens(page, n: int, temperature: float | None = None) -> None:
    """Settings -> Max new tokens, and Temperature when given (0: greedy, the same reply
    every time)."""
    set_settings(page, [("#max-new-tokens", n)] + ([("#temperature", temperature)] if temperature is not None else []))


def luminance(rgb) -> float:
    """WCAG relative luminance of an (r, g, b) pixel."""

    def channel(c):
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a, b) -> float:
    """WCAG contrast ratio of two pixels: 1 (same) to 21 (black on white)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def screenshot(page, name: str, height: int | None = None) -> Path:
    """The page from its top (`height` pixels of it, else the viewport) as a small PNG in
    artifacts/, and in docs/ for the README with UPDATE_SCREENSHOTS=1: quantised to 128
    colours, which keeps text sharp and the file small."""
    from PIL import Image

    page.evaluate("window.scrollTo(0, 0)")
    image = Image.open(io.BytesIO(page.screenshot(full_page=height is not None))).convert("RGB")
    if height is not None:
        image = image.crop((0, 0, image.width, min(height, image.height)))
    image = image.quantize(colors=128)
    ARTIFACTS.mkdir(exist_ok=True)
    targets = [ARTIFACTS / name] + ([DOCS / name] if os.environ.get("UPDATE_SCREENSHOTS") == "1" else [])
    for path in targets:
        image.save(path, optimize=True)
    return targets[0]
