"""Bounded work per request (issue 18, finding 3) and one limit for every entry point at
the handlers' level (finding 4): the /v1 caps, the moderation budget, the shared
admission, and work that ends when its client leaves. Fakes stand in for the models
(a guard and a chat model that wait at a gate the test opens); the server is a real
uvicorn on loopback where a client must really disconnect."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from serve import free_port
from test_api_flow import AUTH, KEY, api_client
from test_turn import FakeChat, FakeGuard

from moderation.admission import Admission
from moderation.api.routes import MAX_JUDGED_CHARS, openai_api
from moderation.api.schema import MAX_MESSAGES
from moderation.models import Models, ModelSlot
from moderation.policy import OperatorPolicy, VisitorChoices
from moderation.settings import parse_config
from moderation.web.actions import BUSY, SESSION_BUSY, ChatPage, RequestError

DEADLINE_S = 30


def wait_until(condition, what: str, seconds: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.02)


class Gate:
    """Holds whoever works until the test opens it; counts who works at once."""

    def __init__(self):
        self.opened, self.lock = threading.Event(), threading.Lock()
        self.active = self.most = self.entered = 0

    @contextlib.contextmanager
    def working(self):
        with self.lock:
            self.active += 1
            self.entered += 1
            self.most = max(self.most, self.active)
        try:
            if not self.opened.wait(DEADLINE_S):
                raise RuntimeError("the test never opened the gate")
            yield
        finally:
            with self.lock:
                self.active -= 1


class GatedGuard(FakeGuard):
    def __init__(self, gate: Gate, **kw):
        super().__init__(**kw)
        self.gate = gate

    def check(self, conversation, policy=None, threshold=0.5):
        with self.gate.working():
            return super().check(conversation, policy, threshold)


class GatedChat(FakeChat):
    def __init__(self, gate: Gate, chunks=("fine",)):
        super().__init__(list(chunks))
        self.gate = gate

    def stream(self, messages, settings, stop=None):
        with self.gate.working():
            yield from super().stream(messages, settings, stop)


def models_of(guard, chat) -> Models:
    models = Models(ModelSlot("Chat model", "offline", lambda: chat), ModelSlot("Guard", "offline", lambda: guard))
    models.start().wait()
    return models


def config_of(*flags):
    return parse_config(
        [
            "--chat-model",
            "offline",
            "--guard-model",
            "offline",
            "--api-key",
            KEY,
            "--rate-limit",
            "off",
            "--check-every",
            "0",
            "--prompt-check",
            "first",
            *flags,
        ]
    )


@contextlib.contextmanager
def served(guard, chat, admission: Admission, *flags):
    """The /v1 API on a real uvicorn server on loopback; yields its /v1 URL."""
    app = FastAPI()
    openai_api(models_of(guard, chat), config_of(*flags), admission=admission)(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "the server started")
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(DEADLINE_S)


def turns(count: int) -> list[dict]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(count)]


# ---- caps and budgets -------------------------------------------------------------------


def test_more_messages_than_the_cap_is_a_422_and_nothing_runs():
    guard, chat = FakeGuard(), FakeChat(["ok"])
    client = api_client(guard, chat)
    over = client.post("/v1/chat/completions", json={"messages": turns(MAX_MESSAGES + 1)}, headers=AUTH)
    assert over.status_code == 422, over.text
    error = over.json()["error"]
    assert error["code"] == "too_many_messages" and error["param"] == "messages"
    assert f"{MAX_MESSAGES + 1:,} messages" in error["message"] and str(MAX_MESSAGES) in error["message"]
    assert chat.calls == [] and guard.seen == []
    at_cap = [{"role": "system", "content": "Be brief."}] + turns(MAX_MESSAGES - 1)
    assert client.post("/v1/chat/completions", json={"messages": at_cap}, headers=AUTH).status_code == 200
    conversation = client.post(
        "/v1/moderations", json={"input": "x", "conversation": turns(MAX_MESSAGES + 1)}, headers=AUTH
    )
    assert conversation.status_code == 422 and conversation.json()["error"]["code"] == "too_many_messages"
    assert conversation.json()["error"]["param"] == "conversation"


def test_a_moderation_request_over_the_budget_is_refused_before_the_guard_reads_it():
    guard = FakeGuard()
    client = api_client(guard, FakeChat(["x"]))
    r = client.post("/v1/moderations", json={"input": ["y" * 16_000] * 32}, headers=AUTH)
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "too_much_to_judge" and "512,000 characters" in error["message"]
    assert f"{MAX_JUDGED_CHARS:,}" in error["message"] and guard.seen == []
    # each input is read after the whole conversation: that counts too
    context = [{"role": "user", "content": "c" * 10_000}]
    r = client.post("/v1/moderations", json={"input": ["y"] * 7, "conversation": context}, headers=AUTH)
    assert r.status_code == 413 and guard.seen == []
    fits = client.post("/v1/moderations", json={"input": ["y" * 16_000] * 4}, headers=AUTH)
    assert fits.status_code == 200 and len(guard.seen) == 4


# ---- one limit: /v1/moderations waits for the same place as turns ------------------------


def test_moderations_and_turns_share_one_place():
    gate = Gate()
    guard, chat = GatedGuard(gate), GatedChat(gate)
    admission = Admission(1, 8)
    with served(guard, chat, admission) as url:
        with httpx.Client(timeout=DEADLINE_S, headers=AUTH) as http:
            results = {}
            turn = threading.Thread(
                target=lambda: results.update(
                    turn=http.post(url + "/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
                )
            )
            turn.start()
            wait_until(lambda: gate.active == 1, "the turn's prompt check runs")
            judge = threading.Thread(
                target=lambda: results.update(judge=http.post(url + "/moderations", json={"input": ["a", "b"]}))
            )
            judge.start()
            wait_until(lambda: admission.blocked == 1 or gate.most > 1, "the moderation waits for a place")
            assert gate.most == 1 and admission.running == 1
            gate.opened.set()
            turn.join(DEADLINE_S)
            judge.join(DEADLINE_S)
    assert results["turn"].status_code == 200 and results["judge"].status_code == 200
    assert gate.most == 1, "a moderation ran beside a turn under --concurrency 1"


# ---- work ends when the client leaves ------------------------------------------------------


@pytest.fixture
def client_gone_log(caplog):
    caplog.set_level(logging.INFO, logger="moderation.api.routes")
    return lambda: any("client left" in r.getMessage() for r in caplog.records)


def leave_after(url: str, path: str, body: dict, seconds: float = 0.5) -> None:
    """Send a request and give up on it (a read timeout closes the connection)."""
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + path, json=body, headers=AUTH, timeout=httpx.Timeout(DEADLINE_S, read=seconds))


def test_moderations_stop_judging_when_the_client_leaves(client_gone_log):
    gate = Gate()
    guard = GatedGuard(gate)
    admission = Admission(2, 8)
    with served(guard, FakeChat(["x"]), admission) as url:
        leave_after(url, "/moderations", {"input": [f"text {i}" for i in range(8)]})
        wait_until(client_gone_log, "the server saw the client leave")
        gate.opened.set()
        wait_until(lambda: admission.running == 0, "the request's work ended")
    assert gate.entered == 1 and len(guard.seen) == 1, "no input is judged after the client left"


def test_a_turn_whose_client_left_during_the_prompt_check_never_reaches_the_chat_model(client_gone_log):
    gate = Gate()
    guard, chat = GatedGuard(gate), FakeChat(["never"])
    admission = Admission(2, 8)
    with served(guard, chat, admission) as url:
        leave_after(url, "/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
        wait_until(client_gone_log, "the server saw the client leave")
        gate.opened.set()
        wait_until(lambda: admission.running == 0, "the turn ended")
    assert chat.calls == [] and len(guard.seen) == 1, "no generation and no response check"


def test_a_request_whose_client_left_while_waiting_for_a_place_never_runs(client_gone_log):
    gate = Gate()
    guard, chat = GatedGuard(gate), FakeChat(["fine"])
    admission = Admission(1, 8)
    with served(guard, chat, admission) as url:
        holder = threading.Thread(
            target=lambda: httpx.post(url + "/moderations", json={"input": "first"}, headers=AUTH, timeout=DEADLINE_S)
        )
        holder.start()
        wait_until(lambda: gate.active == 1, "the first request holds the place")
        leave_after(url, "/chat/completions", {"messages": [{"role": "user", "content": "second"}]})
        wait_until(client_gone_log, "the server saw the client leave")
        wait_until(lambda: admission.blocked == 0, "the second left the line")
        gate.opened.set()
        holder.join(DEADLINE_S)
        wait_until(lambda: admission.running == 0, "all work ended")
    assert [c[-1]["content"] for c in guard.seen] == ["first"] and chat.calls == []


# ---- the page and /chat: one turn per session, one limit -----------------------------------


def page_of(chat, admission: Admission) -> ChatPage:
    return ChatPage(models_of(FakeGuard(), chat), OperatorPolicy(check_every=0), admission=admission)


def drive(updates) -> dict:
    """Run a handler's updates to the end on a thread of their own; the result lands in
    the returned dict's "all" once done."""
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(all=list(updates)), daemon=True)
    thread.start()
    out["thread"] = thread
    return out


def test_one_session_runs_one_turn_whether_from_the_page_or_from_chat():
    page = page_of(FakeChat(["fine"]), Admission.unbounded())
    running = page.send("Hi", [], VisitorChoices(), "S")
    next(running)  # the page's turn has begun in session S
    with pytest.raises(RequestError, match="one turn at a time"):
        next(page.chat_turn("And hi again", session="S"))
    assert list(page.chat_turn("Hi from elsewhere", session="T"))[-1]["outcome"] == "answered"
    assert running and list(running)[-1].running is False
    # and the other way round: /chat runs in session S, the page's send there is refused
    api_turn = page.chat_turn("Hi", session="S")
    next(api_turn)
    refused = list(page.send("Me too", [], VisitorChoices(), "S"))
    assert [u.warning for u in refused] == [BUSY] and SESSION_BUSY.startswith("This session")
    assert list(api_turn)[-1]["outcome"] == "answered"


def test_a_page_turn_waits_for_the_one_place_and_stop_ends_the_wait():
    gate = Gate()
    admission = Admission(1, 8)
    page = page_of(GatedChat(gate), admission)
    first = drive(page.chat_turn("Hi", session="A"))
    wait_until(lambda: gate.active == 1, "the first turn holds the place")
    second = page.send("Me too", [], VisitorChoices(), "B")
    waiting = next(second)
    assert waiting.running is True and waiting.chat[0]["content"] == "Me too", "shown as waiting, Stop offered"

    def stop_once_blocked():
        wait_until(lambda: admission.blocked == 1, "the second turn waits for the place")
        page.stop("B")

    threading.Thread(target=stop_once_blocked, daemon=True).start()
    rest = list(second)
    assert rest[-1].running is False and rest[-1].turns[-1].stopped and rest[-1].turns[-1].reply == ""
    assert gate.entered == 1, "the stopped turn never ran"
    gate.opened.set()
    first["thread"].join(DEADLINE_S)
    assert first["all"][-1]["outcome"] == "answered" and gate.most == 1
