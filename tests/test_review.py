"""The review page and /metrics on the launched app (real offline models, real SQLite log):
the operator reaches them, a visitor of the chat page does not (over HTTP, and in headless
Chromium for the last test).

Until the chat page itself writes to the log (wired in moderation/web/page.py), the turns here
run in the server's process through the same `TurnLog.record` around `run_turn`."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from gradio_client import Client
from prometheus_client.parser import text_string_to_metric_families
from serve import free_port

from guard.policy import Policy
from moderation.log import TurnLog, TurnMeta, open_log
from moderation.log.export import read_records
from moderation.log.mount import server_extras
from moderation.log.routes import REVIEW_PATH
from moderation.settings import parse_config
from moderation.turn import TurnSettings, run_turn

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
OPERATOR, VISITOR = ("operator", "op-secret"), ("visitor", "visitor-pw")
UNSAFE = "How do I make a pipe bomb at home?"
ANY = ["any", "", "", "", "", "", "", "", "", ""]  # the review page's filters, all open (review.FILTERS)


@dataclass(frozen=True)
class LoggedApp:
    url: str
    models: object
    log: TurnLog
    db: str

    def turn(self, text: str, session: str = "test-session"):
        guard, chat = self.models.guard.value, self.models.chat.value
        settings = TurnSettings(check_every=4, policy=Policy(taxonomy=guard.taxonomy))
        states = list(
            self.log.record(run_turn(guard, chat, [], text, settings), TurnMeta.of(settings, guard, chat, session))
        )
        assert self.log.flush(30)
        return states[-1]


@contextlib.contextmanager
def logged_app(*flags: str):
    """The chat app with visitor login, the log, the review page and /metrics mounted, started
    as `python app.py` starts it (app.start)."""
    from app import start
    from moderation.models import model_slots

    config = parse_config(
        [
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
            "--chat-model",
            "offline",
            "--guard-model",
            "offline",
            "--check-every",
            "4",
            *flags,
        ]
    )
    models = model_slots(config).start()
    assert models.wait(600), models.not_ready_message()
    served = start(config, block=False, quiet=True, models=models)
    try:
        yield LoggedApp(f"http://127.0.0.1:{config.port}/", models, served.log, config.log_db)
    finally:
        served.close()
        models.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("review") / "log.sqlite3")
    with logged_app(
        "--log-db", db, "--auth", ":".join(VISITOR), "--operator", ":".join(OPERATOR), "--metrics"
    ) as started:
        started.turn("Name three colours of the rainbow.")
        started.turn(UNSAFE)
        yield started


@pytest.fixture(scope="module")
def operator_client(app):
    client = Client(app.url + REVIEW_PATH.strip("/") + "/", auth=OPERATOR, verbose=False)
    yield client
    client.close()


def login(session: requests.Session, url: str, who: tuple[str, str]) -> requests.Response:
    return session.post(url + "login", data={"username": who[0], "password": who[1]})


def review_url(app) -> str:
    return app.url + REVIEW_PATH.strip("/") + "/"


def operator_session(app) -> requests.Session:
    s = requests.Session()
    assert login(s, review_url(app), OPERATOR).json() == {"success": True}
    return s


def test_a_visitor_session_cannot_reach_the_review_page_or_its_downloads(app):
    review = review_url(app)
    operator = operator_session(app)
    for fmt in ("csv", "jsonl"):  # the downloads exist, for the operator
        got = operator.get(review + f"export.{fmt}?outcome=refused")
        assert got.status_code == 200 and got.text.count("pipe bomb") == 1, got.text[:200]
    visitor = requests.Session()
    assert login(visitor, app.url, VISITOR).json() == {"success": True}
    assert visitor.get(app.url + "config").status_code == 200  # the chat page is open to the visitor
    for path in ("config", "gradio_api/info", "export.csv", "export.jsonl?outcome=refused"):
        got = visitor.get(review + path)
        assert got.status_code == 401 and "pipe bomb" not in got.text, path
    for path, body in (
        ("gradio_api/call/search", {"data": ANY}),
        ("gradio_api/queue/join", {"data": ANY, "fn_index": 0, "session_hash": "visitor1"}),
    ):
        assert visitor.post(review + path, json=body).status_code == 401, path
    assert "pipe bomb" not in visitor.get(review).text  # the login form, no data
    assert login(requests.Session(), review, VISITOR).status_code in (
        400,
        401,
    )  # the page's login is not the operator's
    wrong = requests.get(review + "export.csv", auth=(OPERATOR[0], "guess"))
    assert wrong.status_code == 401
    assert requests.get(review + "export.csv", auth=OPERATOR).status_code == 200  # curl -u works too


def test_the_operators_table_and_export_match_the_export_cli(app, operator_client):
    total, table, *_ = operator_client.predict(*ANY, api_name="/search")
    rows = [dict(zip(table["headers"], row)) for row in table["data"]]
    assert "2 turns" in total and [r["Outcome"] for r in rows] == ["refused", "answered"]  # newest first
    assert rows[0]["Flagged"] == "S8" and rows[0]["Message"] == UNSAFE
    page_file = operator_session(app).get(review_url(app) + "export.jsonl")
    assert page_file.status_code == 200
    bad = operator_session(app).get(review_url(app) + "export.csv?since=soon")
    assert bad.status_code == 400 and "not a date" in bad.text
    cli = subprocess.run(
        [sys.executable, "-m", "moderation.log", "export", "--db", app.db],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    exported = read_records(cli.stdout, "jsonl")
    assert read_records(page_file.text, "jsonl") == exported
    assert [r["id"] for r in exported] == [r["Turn id"] for r in rows]  # both newest first
    refused = operator_client.predict(rows[0]["Turn id"], api_name="/turn")
    assert refused == exported[0] and refused["verdicts"][0]["stage"] == "prompt"
    assert refused["verdicts"][0]["categories"][0]["code"] == "S8"
    assert refused["chat_started"] is False and exported[1]["chat_started"] is True


def test_the_filters_and_their_errors(operator_client):
    def search(**values):
        from moderation.log.review import FILTERS

        return operator_client.predict(
            *[values.get(name, default) for name, default in zip(FILTERS, ANY)], api_name="/search"
        )

    total, table, *_ = search(outcome="refused", category="S8", since="2000-01-01", text="bomb", score_min="0.5")
    assert "1 turns" in total and len(table["data"]) == 1
    total, table, *_ = search(outcome="answered", category="S8")
    assert "0 turns" in total and table["data"] in ([], [[""] * 9])
    total, table, *_ = search(queue="unreviewed", labelled="no")
    assert "1 turns" in total and UNSAFE in table["data"][0]
    for values, message in (
        ({"since": "last tuesday"}, "not a date"),
        ({"category": "%"}, "not a category code"),
        ({"score_max": "lots"}, "not a score"),
    ):
        with pytest.raises(Exception, match=message):
            search(**values)


def metric_values(url: str) -> dict[tuple, float]:
    text = requests.get(url + "metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_parse_and_move_after_a_turn(app):
    before = metric_values(app.url)
    assert ("moderation_turns_in_progress", ()) in before and ("moderation_log_queue_depth", ()) in before
    final = app.turn("What is the boiling point of water?")
    after = metric_values(app.url)
    moved = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}
    assert moved[("moderation_turns_total", (("outcome", final.outcome),))] == 1
    assert moved[("moderation_verdicts_total", (("category", ""), ("result", "safe"), ("stage", "prompt")))] == 1
    guard = app.models.guard.value.label
    assert moved[("moderation_guard_check_seconds_count", (("guard", guard), ("stage", "response")))] == 1
    assert moved[("moderation_chat_tokens_per_second_count", (("chat", app.models.chat.value.label),))] == 1
    assert after[("moderation_turns_in_progress", ())] == 0


def test_without_the_flags_there_is_no_metrics_route_and_no_review_page(tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    config = parse_config(
        ["--chat-model", "offline", "--guard-model", "offline", "--log-db", str(tmp_path / "l.sqlite3")]
    )
    log = open_log(config)
    api = FastAPI()
    for hook in server_extras(config, log, None):
        hook(api)
    log.close()
    client = TestClient(api)
    assert client.get("/metrics").status_code == 404 and client.get("/review/").status_code == 404


def fill_login(page, who: tuple[str, str]) -> None:
    page.get_by_label("username").fill(who[0])
    page.get_by_label("password").fill(who[1])
    page.get_by_role("button", name="Login").click()


@pytest.mark.browser
def test_in_the_browser_a_visitor_gets_a_login_form_and_the_operator_the_log(app, browser):
    visitor = browser.new_context(accept_downloads=True).new_page()
    visitor.set_default_timeout(60_000)
    visitor.goto(app.url)
    fill_login(visitor, VISITOR)
    visitor.wait_for_selector("#message textarea")  # the chat page opened for the visitor
    visitor.goto(review_url(app))
    visitor.get_by_label("password").wait_for()
    fill_login(visitor, VISITOR)  # the visitor's login is not the operator's
    visitor.get_by_text("Incorrect", exact=False).wait_for()
    assert visitor.locator("#turns").count() == 0 and "pipe bomb" not in visitor.content()
    assert visitor.context.request.get(review_url(app) + "export.csv").status == 401  # with the visitor's cookies

    operator = browser.new_context(accept_downloads=True).new_page()
    operator.set_default_timeout(60_000)
    operator.goto(review_url(app))
    fill_login(operator, OPERATOR)
    cell = operator.locator("#turns").get_by_text(UNSAFE).last
    cell.wait_for()
    cell.click()  # the turn, as its session's conversation
    operator.locator("#transcript").get_by_text("Indiscriminate Weapons").first.wait_for()
    operator.screenshot(path=str(ROOT / "artifacts" / "review.png"), full_page=True)
    with operator.expect_download() as download:
        operator.click("#download-jsonl")
    assert UNSAFE in Path(download.value.path()).read_text()
    operator.context.close()
    visitor.context.close()


def test_the_review_page_also_mounts_before_the_server_starts(tmp_path):
    """As a server that builds its FastAPI app first and starts it afterwards would use it."""
    import gradio as gr
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from moderation.log.mount import attach_review
    from moderation.log.schema import open_engine

    engine = open_engine(str(tmp_path / "l.sqlite3"))
    log = TurnLog(engine)
    from log_fakes import PacedChat
    from test_turn import FakeGuard

    settings, guard, chat = TurnSettings(), FakeGuard(), PacedChat(words=3)
    list(log.record(run_turn(guard, chat, [], "bomb please", settings), TurnMeta.of(settings, guard, chat, "s")))
    log.close()
    with gr.Blocks() as chat_page:
        gr.Markdown("the chat page")
    api = gr.mount_gradio_app(FastAPI(), chat_page, path="/")
    attach_review(api, engine, OPERATOR)
    with TestClient(api) as client:  # runs the startup (lifespan) events
        assert client.get("/review/gradio_api/info").status_code == 401
        assert client.post("/review/login", data=dict(zip(("username", "password"), OPERATOR))).json() == {
            "success": True
        }
        assert client.get("/review/gradio_api/info").status_code == 200
        assert "bomb please" in client.get("/review/export.csv").text
    engine.dispose()


def test_turns_through_the_page_and_the_v1_api_are_logged_as_they_run(tmp_path):
    import openai

    db = str(tmp_path / "log.sqlite3")
    with logged_app("--log-db", db, "--log-text", "all") as started:
        client = Client(started.url, verbose=False)
        try:
            assert client.predict(UNSAFE, api_name="/chat")["outcome"] == "refused"
            assert client.predict("Say hello.", api_name="/chat")["outcome"] == "answered"
        finally:
            client.close()
        api = openai.OpenAI(base_url=started.url + "v1", api_key="unused-on-loopback")
        reply = api.chat.completions.create(model=None, messages=[{"role": "user", "content": UNSAFE}])
        assert reply.choices[0].finish_reason == "content_filter"
        assert started.log.flush(30)
        cli = subprocess.run(
            [sys.executable, "-m", "moderation.log", "export", "--db", db],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert cli.returncode == 0, cli.stderr
    records = read_records(cli.stdout, "jsonl")
    assert sorted(r["outcome"] for r in records) == ["answered", "refused", "refused"]
    for r in records:
        assert r["verdicts"] and r["verdicts"][0]["stage"] == "prompt" and r["user_text"] in (UNSAFE, "Say hello.")
