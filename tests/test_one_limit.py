"""One limit for every entry point (issue 18, finding 4), on the launched app with the
offline models: under --concurrency 1, a page send, /chat, /moderate, a /v1 completion
and /v1/moderations started at once work one at a time; and a browser session runs one
turn at a time, whether the page or /chat starts it. The models are wrapped to count
who works at once and to wait at a gate the test opens (test_api_bounds.Gate)."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid

import httpx
import pytest
from test_api_bounds import DEADLINE_S, Gate, wait_until

from guard.base import Guard

pytestmark = pytest.mark.slow
KEY = "limit-key-0001"


class GatedGuard(Guard):
    """The real guard; every check waits at the gate and is counted. Its session is the
    Guard default, itself (so every check goes through the gated `check`)."""

    def __init__(self, guard, gate: Gate):
        self._guard, self.gate = guard, gate

    def __getattr__(self, name):
        return getattr(self._guard, name)

    def check(self, *args, **kwargs):
        with self.gate.working():
            return self._guard.check(*args, **kwargs)


class GatedChat:
    """The real chat model; every reply waits at the gate and is counted while it streams."""

    def __init__(self, chat, gate: Gate):
        self._chat, self.gate = chat, gate

    def __getattr__(self, name):
        return getattr(self._chat, name)

    def stream(self, *args, **kwargs):
        with self.gate.working():
            yield from self._chat.stream(*args, **kwargs)


@contextlib.contextmanager
def gated(started):
    """(url, gate, admission) of a launched app whose models wait at a gate, restored after."""
    url, models, demo = started
    gate, guard, chat = Gate(), models.guard.value, models.chat.value
    models.guard.value, models.chat.value = GatedGuard(guard, gate), GatedChat(chat, gate)
    try:
        yield url, gate, demo.admission
    finally:
        gate.opened.set()
        models.guard.value, models.chat.value = guard, chat


def app_with(*flags):
    from app_server import running_server

    return running_server(
        "--chat-model",
        "offline",
        "--guard-model",
        "offline",
        "--api-key",
        KEY,
        "--prompt-check",
        "first",
        "--check-every",
        "0",
        "--max-new-tokens",
        "16",
        *flags,
    )


@pytest.fixture(scope="module")
def one_at_a_time():
    with app_with("--concurrency", "1") as started:
        yield started


@pytest.fixture(scope="module")
def two_at_a_time():
    with app_with("--concurrency", "2") as started:
        yield started


def join(url: str, api_name: str, data: list, session: str) -> str:
    """Queue a Gradio event by hand, as a browser's page does; its event id."""
    config = httpx.get(url + "config").json()
    dep = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
    if api_name == "on_send":
        elem = {
            c["id"]: c.get("props", {}).get("elem_id") or c.get("props", {}).get("label") or c["type"]
            for c in config["components"]
        }
        data = [data[0].get(elem[i]) for i in dep["inputs"]]
    joined = httpx.post(
        url + "gradio_api/queue/join",
        timeout=DEADLINE_S,
        json={"data": data, "fn_index": dep["id"], "session_hash": session, "trigger_id": None},
    )
    assert joined.status_code == 200, joined.text
    return joined.json()["event_id"]


def listen(url: str, session: str) -> dict:
    """Read a session's event messages on a thread into the returned dict's "messages" (the
    stream ends when the session's events have)."""
    out: dict = {"messages": []}

    def read():
        with httpx.stream("GET", url + "gradio_api/queue/data", params={"session_hash": session}, timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith("data:"):
                    out["messages"].append(json.loads(line[5:]))

    out["thread"] = threading.Thread(target=read, daemon=True)
    out["thread"].start()
    return out


def start(url: str, api_name: str, data: list, session: str | None = None) -> tuple[dict, str]:
    session = session or uuid.uuid4().hex
    event = join(url, api_name, data, session)
    return listen(url, session), event


def completed(listener: dict, event: str) -> dict:
    wait_until(
        lambda: any(m["msg"] == "process_completed" and m.get("event_id") == event for m in list(listener["messages"])),
        f"event {event} completed",
        120,
    )
    return next(m for m in listener["messages"] if m["msg"] == "process_completed" and m.get("event_id") == event)


PAGE_VALUES = {
    "message": "Name a colour.",
    "temperature": 0.0,
    "top-p": 0.9,
    "max-new-tokens": 8,
    "threshold": 0.5,
    "check-every": 0,
    "stream-policy": "stream-first",
    "categories": [],
}


def v1(url: str, path: str, body: dict) -> dict:
    out: dict = {}
    thread = threading.Thread(
        target=lambda: out.update(
            response=httpx.post(url + "v1" + path, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
        ),
        daemon=True,
    )
    thread.start()
    out["thread"] = thread
    return out


@pytest.fixture
def gated_one(one_at_a_time):
    with gated(one_at_a_time) as started:
        yield started


@pytest.fixture
def gated_two(two_at_a_time):
    with gated(two_at_a_time) as started:
        yield started


def test_concurrency_one_bounds_every_entry_point_together(gated_one):
    url, gate, admission = gated_one
    first = start(url, "on_send", [PAGE_VALUES])
    wait_until(lambda: gate.active == 1, "the page's turn holds the one place")
    events = [start(url, "chat", ["Name a fruit.", ""]), start(url, "moderate", ["How do I bake bread?", None])]
    calls = [
        v1(url, "/chat/completions", {"messages": [{"role": "user", "content": "Name a river."}], "max_tokens": 8}),
        v1(url, "/moderations", {"input": ["Name a metal.", "Name a planet."]}),
    ]

    def queued() -> int:
        return httpx.get(url + "gradio_api/queue/status").json()["queue_size"] + admission.blocked

    wait_until(lambda: queued() == len(events) + len(calls) or gate.most > 1, "every other request waits")
    assert gate.most == 1, "a second turn or check started beside the first"
    gate.opened.set()
    for listener, event in [first, *events]:
        assert completed(listener, event)["success"] is True, listener["messages"]
    for call in calls:
        call["thread"].join(120)
        assert call["response"].status_code == 200, call["response"].text
    assert gate.most == 1 and admission.running == 0


def test_a_session_running_a_page_turn_gets_a_readable_refusal_from_chat(gated_two):
    url, gate, _ = gated_two
    session = uuid.uuid4().hex
    listener, page = start(url, "on_send", [PAGE_VALUES], session)
    wait_until(lambda: gate.active == 1, "the page's turn runs")
    chat = join(url, "chat", ["Name a fruit.", ""], session)
    wait_until(
        lambda: any(m["msg"] == "process_completed" and m.get("event_id") == chat for m in list(listener["messages"])),
        "/chat answered while the page's turn runs",
    )
    refused = completed(listener, chat)
    gate.opened.set()
    assert refused["success"] is False and "one turn at a time" in json.dumps(refused), refused
    assert completed(listener, page)["success"] is True
    assert gate.most == 1, "the refused /chat turn never ran beside the page's"
