"""Launch the real app in-process on a free loopback port, for the API and browser tests."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from serve import free_port

from app import start
from moderation.models import Models, ModelSlot, model_slots
from moderation.settings import parse_config


@contextlib.contextmanager
def running_server(*flags: str, load_timeout_s: float = 600) -> Iterator[tuple[str, Models, object]]:
    """Start the app as `python app.py` does, with these flags (and no moderation log
    unless they give --log-db); yields (url, models, demo) once the models are ready."""
    log_db = () if any(f.startswith("--log-db") for f in flags) else ("--log-db", "none")
    config = parse_config(["--host", "127.0.0.1", "--port", str(free_port()), *log_db, *flags])
    models = model_slots(config).start()
    if not models.wait(load_timeout_s):
        raise RuntimeError(f"models did not load: {models.not_ready_message()}")
    served = start(config, block=False, quiet=True, models=models)
    try:
        yield f"http://127.0.0.1:{config.port}/", models, served.demo
    finally:
        served.close()  # the server, the log and the guard pool
        models.close()  # ours: the chat model's generation threads


@contextlib.contextmanager
def running_app(*flags: str, load_timeout_s: float = 600) -> Iterator[tuple[str, Models]]:
    """As `running_server`, yielding (url, models)."""
    with running_server(*flags, load_timeout_s=load_timeout_s) as (url, models, _):
        yield url, models


@contextlib.contextmanager
def loading_app(*flags: str) -> Iterator[tuple[str, threading.Event]]:
    """The app served while its guard is still loading: the guard slot's real loader (the
    model the flags name) starts only once the yielded event is set, so the page stays in
    its "loading" state for as long as a test needs. Yields (url, release)."""
    config = parse_config(["--host", "127.0.0.1", "--port", str(free_port()), "--log-db", "none", *flags])
    slots, release = model_slots(config), threading.Event()
    real_load = slots.guard._load

    def held_load():
        release.wait(600)  # a test that never releases still ends the thread in bounded time
        return real_load()

    models = Models(slots.chat, ModelSlot(slots.guard.what, slots.guard.spec, held_load)).start()
    served = start(config, block=False, quiet=True, models=models)
    try:
        yield f"http://127.0.0.1:{config.port}/", release
    finally:
        release.set()
        served.close()
        models.close()  # closes the chat model when it has loaded, or once it does
