"""Labels on the review page and through `POST /review/labels`, on real SQLite and PostgreSQL:
the operator's login is required exactly as for the downloads, an unknown turn is a 404, a
malformed label a 422 with a message (never a traceback), another origin a 403; a stored
label shows in the export. In Chromium: a turn opens as its session's conversation with its
verdict chips, the operator labels from the keyboard, and the turn leaves the Unreviewed queue.

The log is filled through `TurnLog.record` around `run_turn` with the test fakes (a guard that
flags "bomb", a paced chat): control flow only; the page, the routes and the database are real."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import gradio as gr
import pytest
import uvicorn
from browser_kit import ARTIFACTS
from fastapi import FastAPI
from fastapi.testclient import TestClient
from gradio.routes import App
from serve import free_port
from test_log import play

from moderation.log import TurnLog
from moderation.log.export import read_records
from moderation.log.labels import NOTE_MAX
from moderation.log.mount import attach_review
from moderation.log.query import iter_records
from moderation.log.schema import open_engine

OPERATOR = ("operator", "op-secret")
UNSAFE = "bomb recipe please"


def fill_log(engine) -> list[str]:
    """Session "a": a safe turn, then a refused one; session "b": another refused one.
    Their ids, oldest first."""
    log = TurnLog(engine)
    play(log, "What is green tea?", session="a")
    play(log, UNSAFE, session="a")
    play(log, "another bomb question", session="b")
    log.close()
    return [r["id"] for r in reversed(list(iter_records(engine)))]


@pytest.fixture
def logged(log_db):
    engine = open_engine(log_db)
    ids = fill_log(engine)
    yield engine, ids
    engine.dispose()


def review_app(engine) -> FastAPI:
    with gr.Blocks() as chat_page:
        gr.Markdown("the chat page")
    api = App.create_app(chat_page)
    attach_review(api, engine, OPERATOR)
    return api


@pytest.fixture
def client(logged):
    with TestClient(review_app(logged[0])) as c:
        yield c


def test_the_operator_labels_a_verdict_over_http_and_the_export_has_it(client, logged):
    engine, ids = logged
    body = {"turn": ids[1], "stage": "prompt", "label": "false_positive", "categories": [], "note": "chemistry"}
    got = client.post("/review/labels", json=body, auth=OPERATOR)
    assert got.status_code == 201, got.text
    assert got.json()["label"] == "false_positive" and got.json()["author"] == "operator"
    exported = read_records(client.get("/review/export.jsonl", auth=OPERATOR).text, "jsonl")
    assert [r["id"] for r in exported] == ids[::-1]  # newest first, as the table
    assert exported[1]["labels"][0]["note"] == "chemistry" and exported[0]["labels"] == []
    csv = read_records(client.get("/review/export.csv?labelled=yes", auth=OPERATOR).text, "csv")
    assert [r["id"] for r in csv] == [ids[1]] and csv[0]["labels"] == exported[1]["labels"]
    queue = read_records(client.get("/review/export.jsonl?queue=unreviewed", auth=OPERATOR).text, "jsonl")
    assert [r["id"] for r in queue] == [ids[2]]  # the labelled flagged turn left the queue
    scored = read_records(client.get("/review/export.jsonl?score_min=0.8", auth=OPERATOR).text, "jsonl")
    assert [r["id"] for r in scored] == [ids[2], ids[1]]


def test_the_login_cookie_works_as_for_the_downloads(client, logged):
    assert client.post("/review/login", data=dict(zip(("username", "password"), OPERATOR))).json() == {"success": True}
    got = client.post("/review/labels", json={"turn": logged[1][0], "stage": 0, "label": "correct"})
    assert got.status_code == 201, got.text


@pytest.mark.parametrize("auth", [None, ("operator", "guess"), ("visitor", "op-secret")])
def test_without_the_operators_login_nothing_is_stored_or_read(client, logged, auth):
    got = client.post("/review/labels", json={"turn": logged[1][1], "stage": "prompt", "label": "correct"}, auth=auth)
    assert got.status_code == 401 and "bomb" not in got.text and got.headers["www-authenticate"]
    assert all(r["labels"] == [] for r in iter_records(logged[0]))


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"turn": "f" * 32, "stage": "prompt", "label": "correct"}, 404, "no turn"),
        ({"stage": "prompt", "label": "maybe"}, 422, "label must be one of"),
        ({"stage": "response", "label": "correct"}, 422, "no response verdict"),
        ({"stage": "prompt", "label": "false_negative", "categories": ["S8", "X"]}, 422, "not a category code"),
        ({"stage": "prompt", "label": "false_negative", "categories": ["S42"]}, 422, "not a category of this turn"),
        ({"stage": "prompt", "label": "correct", "note": "n" * (NOTE_MAX + 1)}, 422, "note is longer"),
        ({"stage": "prompt", "label": "correct", "note": 5}, 422, "note must be a string"),
        ({"stage": [0], "label": "correct"}, 422, "stage must be"),
        ({"turn": 12, "stage": "prompt", "label": "correct"}, 422, "turn must be"),
        (["not", "an", "object"], 422, "a JSON object"),
        ("{not json", 422, "not JSON"),
    ],
)
def test_a_bad_label_is_a_clear_refusal_never_a_traceback(client, logged, body, status, message):
    if isinstance(body, dict):
        body = {"turn": logged[1][1], **body}
    kwargs = {"content": body} if isinstance(body, str) else {"json": body}
    got = client.post("/review/labels", auth=OPERATOR, headers={"Content-Type": "application/json"}, **kwargs)
    assert got.status_code == status and message in got.json()["error"], got.text
    assert "Traceback" not in got.text
    assert all(r["labels"] == [] for r in iter_records(logged[0]))


def test_another_origin_cannot_post_a_label(client, logged):
    body = {"turn": logged[1][1], "stage": "prompt", "label": "correct"}
    for site in ("cross-site", "same-site"):
        got = client.post(
            "/review/labels", json=body, auth=OPERATOR, headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "cors"}
        )
        assert got.status_code == 403
    assert (
        client.options(
            "/review/labels", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
        ).status_code
        == 403
    )
    assert all(r["labels"] == [] for r in iter_records(logged[0]))


@contextlib.contextmanager
def serving(api: FastAPI) -> Iterator[str]:
    """`api` on a loopback port until the block ends: its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.mark.slow
@pytest.mark.browser
def test_in_chromium_a_turn_opens_as_its_conversation_and_the_keyboard_labels_it(browser, tmp_path):
    from test_review import fill_login

    engine = open_engine(str(tmp_path / "log.sqlite3"))
    ids = fill_log(engine)
    with serving(review_app(engine)) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(url + "review/")
            fill_login(page, OPERATOR)
            page.locator("#turns").get_by_text("What is green tea?").wait_for()
            for header in ("Started (UTC)", "Turn id", "Outcome", "Top score", "Label", "Message"):
                page.locator("#turns").get_by_text(header, exact=True).first.wait_for()
            page.locator("#queue").get_by_text("Unreviewed flagged").click()  # the queue: two refused turns
            page.locator("#turns").get_by_text("What is green tea?").wait_for(state="detached")
            page.locator("#turns").get_by_text(UNSAFE).click()
            transcript = page.locator("#transcript")
            turn = transcript.locator(f'section.turn.selected[data-turn="{ids[1]}"]')
            turn.wait_for()
            assert transcript.locator("section.turn").count() == 2  # session "a": both its turns, in order
            assert transcript.locator("section.turn").first.get_by_text("What is green tea?").count() == 1
            chip = turn.locator(".chip-unsafe").first
            assert "prompt" in chip.inner_text() and "0.90 ≥ 0.50" in chip.inner_text() and "S8" in chip.inner_text()
            assert turn.get_by_text("withheld: the prompt was refused").count() == 1
            assert turn.locator("details.policy").get_attribute("open") is None  # the policy is folded
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "review-transcript.png"), full_page=True)
            page.locator("#transcript").click()  # focus outside a text field
            page.keyboard.press("2")  # false positive, then the next turn opens
            page.locator("#label-status").get_by_text("false positive").wait_for()
            page.locator("#turns").get_by_text(UNSAFE).wait_for(state="detached")  # it left the queue
            transcript.locator(f'section.turn.selected[data-turn="{ids[2]}"]').wait_for()
            page.keyboard.press("k")  # previous: still the only one left in the queue
            transcript.locator(f'section.turn.selected[data-turn="{ids[2]}"]').wait_for()
        finally:
            context.close()
    [labelled] = [r for r in iter_records(engine) if r["labels"]]
    assert labelled["id"] == ids[1] and labelled["labels"][0]["label"] == "false_positive"
    assert labelled["labels"][0]["stage"] == "prompt" and labelled["labels"][0]["author"] == "operator"
    engine.dispose()
