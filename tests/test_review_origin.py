"""The review log is the operator's alone: no other origin reads it with the operator's login.

Gradio's CORS middleware answers any Origin with `Access-Control-Allow-Origin: <it>` and
`Access-Control-Allow-Credentials: true` whenever the Host is not localhost (and a
localhost Origin when it is). Under /review, nothing answers another origin: no CORS
headers, preflights refused, requests a browser marks as from another site refused, and the
login cookie is SameSite=Strict, HttpOnly and scoped to /review. Checked on the headers
(Starlette's TestClient, whose Host is not localhost, and a launched server), and in
headless Chromium with a real attacker page on another origin."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gradio as gr
import pytest
import requests
from fastapi import FastAPI
from fastapi.testclient import TestClient
from gradio.routes import App

from moderation.log import TurnLog, TurnMeta
from moderation.log.mount import attach_review
from moderation.log.routes import REVIEW_PATH
from moderation.log.schema import open_engine
from moderation.turn import TurnSettings, run_turn

OPERATOR = ("operator", "op-secret")
EVIL = "http://evil.example"
SECRET = "bomb please"  # the logged prompt another origin must never read
PREFLIGHT = {"Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
# every kind of /review request, as another origin's page would send it
REVIEW_REQUESTS = [
    ("GET", "/review/export.csv"),
    ("GET", "/review/export.jsonl"),
    ("GET", "/review/"),
    ("GET", "/review/config"),
    ("GET", "/review/gradio_api/info"),
    ("POST", "/review/login"),
    ("POST", "/review/gradio_api/queue/join"),
    ("POST", "/review/labels"),
]
CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-credentials")


def chat_app() -> FastAPI:
    """A chat page's own Gradio app, as `Blocks.launch` builds it (before it starts)."""
    with gr.Blocks() as chat_page:
        gr.Markdown("the chat page")
    return App.create_app(chat_page)


@pytest.fixture
def engine(tmp_path):
    """A log holding one turn with `SECRET` as its prompt."""
    from log_fakes import PacedChat
    from test_turn import FakeGuard

    engine = open_engine(str(tmp_path / "l.sqlite3"))
    log = TurnLog(engine)
    settings, guard, chat = TurnSettings(), FakeGuard(), PacedChat(words=3)
    list(log.record(run_turn(guard, chat, [], SECRET, settings), TurnMeta.of(settings, guard, chat, "s")))
    log.close()
    yield engine
    engine.dispose()


@pytest.fixture
def client(engine):
    """The operator's browser (logged in to the review page) on the chat app with the review page."""
    api = chat_app()
    attach_review(api, engine, OPERATOR)
    with TestClient(api) as c:  # Host "testserver": not localhost, so Gradio answers any Origin
        assert c.post("/review/login", data=dict(zip(("username", "password"), OPERATOR))).json() == {"success": True}
        yield c


def cors_of(response) -> dict:
    return {k: v for k, v in response.headers.items() if k.lower() in CORS_HEADERS}


def test_review_routes_never_answer_another_origin(client):
    assert SECRET in client.get("/review/export.csv").text  # the operator's own requests are answered
    for method, path in REVIEW_REQUESTS:
        got = client.request(
            method,
            path,
            headers={"Origin": EVIL},
            data={"username": "x", "password": "y"} if path.endswith("login") else None,
        )
        assert cors_of(got) == {}, (method, path, got.headers)
        basic = client.request(method, path, headers={"Origin": EVIL}, auth=OPERATOR)
        assert cors_of(basic) == {}, (method, path, "basic")
        preflight = client.options(path, headers=PREFLIGHT)
        assert cors_of(preflight) == {} and preflight.status_code == 403, (path, preflight.headers)


def test_the_chat_pages_own_cors_is_unchanged(engine):
    """Outside /review the answers are Gradio's own, as on a server without the review page."""
    with_review = chat_app()
    attach_review(with_review, engine, OPERATOR)
    with TestClient(with_review) as ours, TestClient(chat_app()) as plain:
        for path in ("/config", "/gradio_api/info"):
            theirs = cors_of(plain.get(path, headers={"Origin": EVIL}))
            assert theirs and cors_of(ours.get(path, headers={"Origin": EVIL})) == theirs, path
            assert cors_of(ours.options(path, headers=PREFLIGHT)) == cors_of(plain.options(path, headers=PREFLIGHT))


def test_the_review_login_cookie_is_strict_http_only_and_the_review_pages_alone(engine):
    api = chat_app()
    attach_review(api, engine, OPERATOR)
    with TestClient(api) as c:
        login = c.post("/review/login", data=dict(zip(("username", "password"), OPERATOR)))
        cookies = login.headers.get_list("set-cookie")
        assert cookies
        for cookie in cookies:
            attributes = {
                a.strip().partition("=")[0].lower(): a.strip().partition("=")[2] for a in cookie.split(";")[1:]
            }
            assert attributes.get("samesite", "").lower() == "strict", cookie
            assert "httponly" in attributes and attributes.get("path") == "/review", cookie
        assert c.get("/review/gradio_api/info").status_code == 200  # and the page takes it
        logout = c.get("/review/logout", follow_redirects=False)
        assert all("Path=/review" in cookie for cookie in logout.headers.get_list("set-cookie"))
        assert c.get("/review/gradio_api/info").status_code == 401


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_request_the_browser_marks_as_from_another_site_is_refused(client, site):
    """Fetch metadata: another site's (or a sibling origin's) fetch is refused before it runs;
    a link followed from elsewhere still opens the page (its login form, without the cookie)."""
    fetch = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
    for method, path in REVIEW_REQUESTS:
        got = client.request(method, path, headers=fetch, auth=OPERATOR)
        assert got.status_code == 403 and SECRET not in got.text and cors_of(got) == {}, (method, path)
    navigate = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    assert client.get("/review/", headers=navigate).status_code == 200
    own = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
    assert SECRET in client.get("/review/export.csv", headers=own).text


@contextlib.contextmanager
def another_site() -> Iterator[int]:
    """Another origin's web server on 127.0.0.1 (any free port): one empty page. Its port."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!doctype html><title>elsewhere</title><p>a page of another origin</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app launched as `python app.py` launches it, with the log (one unsafe prompt in it)
    and the review page; and another origin's server."""
    from test_review import UNSAFE, logged_app

    db = str(tmp_path_factory.mktemp("origin") / "log.sqlite3")
    with logged_app("--log-db", db, "--operator", ":".join(OPERATOR)) as started, another_site() as port:
        started.turn(UNSAFE)
        yield started, port


FETCH = """async ([url, init]) => {
    try {
        const r = await fetch(url, Object.assign({credentials: "include"}, init));
        return {status: r.status, text: await r.text()};
    } catch (e) {
        return {blocked: String(e)};
    }
}"""


@pytest.mark.slow
def test_on_the_launched_server_review_routes_answer_no_other_origin(served):
    """The server's middleware stack was built before the review page was added: the
    boundary wraps it, Gradio's CORS middleware included."""
    started, _ = served
    port = started.url.rsplit(":", 1)[1].strip("/")
    headers = {"Host": f"app.example:{port}", "Origin": EVIL}  # a Host that is not localhost
    operator = requests.Session()
    assert operator.post(started.url + "review/login", data=dict(zip(("username", "password"), OPERATOR))).ok
    for path in ("review/export.csv", "review/config", "review/gradio_api/info"):
        got = requests.get(started.url + path, headers=headers, cookies=operator.cookies.get_dict())
        assert got.status_code == 200 and cors_of(got) == {}, (path, got.headers)
        preflight = requests.options(started.url + path, headers={**headers, **PREFLIGHT})
        assert preflight.status_code == 403 and cors_of(preflight) == {}, path
    assert cors_of(requests.get(started.url + "config", headers=headers))  # the chat page: Gradio's own


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("elsewhere", ["127.0.0.1", "localhost"], ids=["another-site", "sibling-origin"])
def test_in_chromium_another_origins_page_reads_nothing_of_the_log(served, browser, elsewhere):
    """The operator logs in to http://localhost:PORT/review/ (a secure context, as behind
    HTTPS: its Secure cookies count), then opens a page of another origin in the same
    browser, which fetches the log with credentials: the browser hands it nothing."""
    from test_review import UNSAFE, fill_login

    started, port = served
    review = started.url.replace("127.0.0.1", "localhost") + REVIEW_PATH.strip("/") + "/"
    context = browser.new_context()
    try:
        operator = context.new_page()
        operator.set_default_timeout(60_000)
        operator.goto(review)
        fill_login(operator, OPERATOR)
        operator.locator("#turns").get_by_text(UNSAFE).last.wait_for()
        own = operator.evaluate(FETCH, [review + "export.csv", {}])
        assert own.get("status") == 200 and UNSAFE in own["text"]  # the operator's own page reads it
        attacker = context.new_page()
        attacker.goto(f"http://{elsewhere}:{port}/")
        search = {
            "method": "POST",
            "headers": {"Content-Type": "application/json"},
            "body": '{"data": ["any", "", "", "", "", "", "", "", "", ""]}',
        }
        for path, init in (
            ("export.csv", {}),
            ("export.jsonl?outcome=refused", {}),
            ("config", {}),
            ("gradio_api/call/search", search),
        ):
            got = attacker.evaluate(FETCH, [review + path, init])
            assert set(got) == {"blocked"}, (path, got)
    finally:
        context.close()
