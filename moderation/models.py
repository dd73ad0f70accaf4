"""Loading the chat model and the guard in the background, with a status a page can show.

The page comes up at once; `ModelSlot.status()` says what is loading, for how long, or
what failed and how to fix it (the loaders' own messages say that: accept the license,
set HF_TOKEN, ...).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chat import load_chat
from guard import load_guard
from weights import LoadOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlotStatus:
    what: str  # "Chat model" / "Guard"
    spec: str
    state: str  # "waiting" | "loading" | "ready" | "failed"
    seconds: float = 0.0
    label: str = ""  # what was actually loaded, from the backend
    error: str = ""
    stage: str = ""  # what a loading model does now, when its loader says (compiling the decoding step)


class ModelSlot:
    """One model that loads in a thread; `.value` is the backend once ready."""

    def __init__(self, what: str, spec: str, load: Callable[[], Any]):
        self.what, self.spec, self._load = what, spec, load
        self.value: Any = None
        self._state, self._error, self._started, self._took, self._stage = "waiting", "", 0.0, 0.0, ""
        self._lock = threading.Lock()

    def say(self, stage: str) -> None:
        """What the loader does now, for `status` to show while it loads."""
        with self._lock:
            self._stage = stage
        log.info("%s: %s", self.what, stage)

    def load(self) -> None:
        with self._lock:
            self._state, self._started, self._stage = "loading", time.monotonic(), ""
        try:
            value = self._load()
        except Exception as exc:  # the message is shown on the page, with the fix
            log.exception("loading %s %s failed", self.what, self.spec)
            with self._lock:
                self._state, self._error = "failed", str(exc) or type(exc).__name__
                self._took = time.monotonic() - self._started
            return
        with self._lock:
            self.value, self._state = value, "ready"
            self._took = time.monotonic() - self._started
        log.info("%s ready: %s (%.1f s)", self.what, getattr(value, "label", self.spec), self._took)

    def status(self) -> SlotStatus:
        with self._lock:
            running = self._state == "loading"
            seconds = time.monotonic() - self._started if running else self._took
            label = getattr(self.value, "label", "") if self.value is not None else ""
            stage = self._stage if running else ""
            return SlotStatus(self.what, self.spec, self._state, seconds, label, self._error, stage)


class Models:
    """The chat and guard slots, loaded one after the other in one background thread
    (two 8B loads at once would only fight over disk and memory)."""

    def __init__(self, chat: ModelSlot, guard: ModelSlot):
        self.chat, self.guard = chat, guard
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def start(self) -> Models:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-loader", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        self.guard.load()
        self.chat.load()
        if self._closed.is_set():  # closed while the chat model loaded
            self.close()

    def close(self) -> None:
        """Release what the chat backend holds (a local model's generation threads): now if
        it has loaded, else as soon as it does. The models are not used after this."""
        self._closed.set()
        if self.chat.value is not None:
            self.chat.value.close()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread:
            self._thread.join(timeout)
        return self.ready

    @property
    def ready(self) -> bool:
        return self.chat.value is not None and self.guard.value is not None

    @property
    def settled(self) -> bool:
        """Nothing is loading any more (ready or failed)."""
        return all(s.status().state in {"ready", "failed"} for s in (self.chat, self.guard))

    def statuses(self) -> tuple[SlotStatus, SlotStatus]:
        return self.chat.status(), self.guard.status()

    def not_ready_message(self) -> str:
        """Why a turn cannot run yet, for a person: the same words as the page's status line
        (`slot_line`), as plain text (a toast shows no Markdown)."""
        return " ".join(slot_line(s) for s in self.statuses() if s.state != "ready")


BUNDLED = {"Chat model": "the bundled SmolLM2-135M", "Guard": "the bundled offline classifier"}


def model_name(s: SlotStatus) -> str:
    """What a person should read for a slot's model: the loaded label, or its spec
    ('offline' said as what it is)."""
    if s.label:
        return s.label
    return BUNDLED.get(s.what, "the bundled model") if s.spec == "offline" else s.spec


def slot_line(s: SlotStatus) -> str:
    """'The guard (the bundled offline classifier) is loading: 12 s so far.' (plain text);
    with a stage: 'The chat model (X) is loading: compiling the decoding step; 40 s so far.'"""
    what = f"The {s.what.lower()} ({model_name(s)})"
    if s.state == "loading":
        return f"{what} is loading: " + (f"{s.stage}; " if s.stage else "") + f"{s.seconds:.0f} s so far."
    if s.state == "waiting":
        return f"{what} loads next."
    if s.state == "failed":
        return f"{what} failed to load: {s.error}"
    return f"{what} is ready."


def decoding(config) -> str:
    """The chat model's --compile, except on ZeroGPU hardware: there a GPU is lent for each
    call only, so nothing compiled while loading would survive to be used: off."""
    return "off" if config.zero_gpu_seconds is not None else config.compile


def model_slots(config) -> Models:
    """Slots for the models an AppConfig names, with its loading settings (quantization, hub
    token, cache folder; an endpoint's key, model name and window; compiled decoding, whose
    warm-up the chat slot's status names); nothing loads until `start()`."""
    options = LoadOptions(
        load_in_4bit=config.load_in_4bit,
        load_in_8bit=config.load_in_8bit,
        token=config.hf_token,
        cache_dir=config.model_cache_dir,
    )

    def chat():
        return load_chat(
            config.chat_model,
            options,
            api_key=config.endpoint_key,
            model_name=config.chat_model_name,
            context_window=config.chat_context_window,
            compile=decoding(config),
            progress=chat_slot.say,
        )

    def guard():
        return load_guard(
            config.guard_model,
            version=config.guard_version,
            load_in_4bit=config.load_in_4bit,
            load_in_8bit=config.load_in_8bit,
            token=config.hf_token,
            api_key=config.endpoint_key,
            model_name=config.guard_model_name,
            batch=config.guard_batch,
            compile=config.compile == "on",  # auto: measured for the chat model only, so the guard stays eager
            batch_wait_s=config.guard_batch_wait_ms / 1000,
            cache_dir=config.model_cache_dir,
        )

    chat_slot = ModelSlot("Chat model", config.chat_model, chat)
    return Models(chat_slot, ModelSlot("Guard", config.guard_model, guard))
