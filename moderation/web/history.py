"""Conversations kept in the visitor's browser, and the server's checks of what comes back.

The page keeps a visitor's finished conversations in their browser's localStorage (Gradio's
`gr.BrowserState`); the server keeps nothing more than it did. What the browser holds:

    {"version": 1, "current": "<id>", "conversations": [{"id": "<id>", "turns": [...], "sig": "<hex>"}]}

newest first, each turn as `SavedTurn` (what the chat and its card show: the message, the
reply as shown, the outcome and notes, every verdict). Text the guard withheld from the
visitor (`TurnState.reply` beyond what was shown) is never written there.

Whatever comes back from a browser is untrusted: a visitor can read and edit localStorage,
and Gradio's own encryption of it uses a key that is sent to the page. So `Shelf.read`
takes back only what passes two checks, and says in one sentence what it dropped:

- shape and size: every field typed and bounded (`SavedTurn`: the schema's
  MAX_MESSAGE_CHARS and MAX_SYSTEM_CHARS, MAX_SAVED_TURNS turns, MAX_SAVED_CONVERSATIONS
  conversations, MAX_STORE_CHARS in all), nothing extra;
- a signature: each conversation carries an HMAC of its turns under a key that never
  leaves the server (`Shelf.key`: random per server process). The restored turns become
  the chat model's context for the next message, and the guard reads only the last
  turns of it with a prompt, so only turns this server wrote itself, after judging them,
  are taken back; an edited one is refused as a whole. (A restart makes a new key, and a
  new Gradio secret: the page then cannot even decrypt what an earlier run saved, and
  starts a new list.)

Restored turns are never reported again (no log id: the log ties a report to the page
session that ran the turn).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from guard.taxonomy import Category
from guard.verdict import Verdict
from moderation.schema import MAX_MESSAGE_CHARS, MAX_SYSTEM_CHARS
from moderation.turn import ANSWERED, ERROR, REFUSED, RETRACTED, Check, TurnState

STORAGE_KEY = "moderated-chat-conversations"  # the localStorage key (fixed: a reload finds it)
VERSION = 1
MAX_SAVED_CONVERSATIONS = 20  # the oldest go first
MAX_SAVED_TURNS = 32  # per conversation: the newest are kept (64 messages, as /moderate's context)
MAX_REPLY_CHARS = 4 * MAX_MESSAGE_CHARS  # a reply as shown (4,096 tokens at most)
MAX_NOTE_CHARS = 2_000  # a notice, a guard's raw answer, an error, a category name
MAX_CHECKS = 4_100  # verdicts per turn (a check every token of the longest reply, 4,096 tokens)
MAX_STORE_CHARS = 1_000_000  # the whole value, as JSON: encrypted, 4 MB at most (localStorage holds 5 MB a site)
TITLE_CHARS = 48
_ID = re.compile(r"[0-9a-f]{16}")
UNREADABLE = "Some saved conversations could not be restored: {why}. They were removed from this browser."

Note = Annotated[str, Field(max_length=MAX_NOTE_CHARS)]
Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=MAX_REPLY_CHARS)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class SavedVerdict(_Strict):
    """What a card shows of a verdict (guard.verdict.Verdict without the category texts)."""

    safe: bool
    parsed: bool = True
    categories: list[Annotated[list[Note], Field(min_length=2, max_length=2)]] = Field(default=[], max_length=64)
    score: Unit | None = None
    threshold: Unit | None = None
    role: Literal["User", "Agent"] = "User"
    raw: Note = ""
    error: Note | None = None
    note: Note = ""
    guard: Note = ""
    latency_s: Annotated[float, Field(ge=0.0, le=86_400.0, allow_inf_nan=False)] = 0.0
    category_scores: dict[Annotated[str, Field(max_length=16)], Unit] = Field(default={}, max_length=64)

    @model_validator(mode="after")
    def _judged(self):
        if self.safe and not self.parsed:
            raise ValueError("a verdict that was not read from the guard cannot be safe")
        return self


class SavedCheck(_Strict):
    stage: Literal["prompt", "partial", "response"]
    verdict: SavedVerdict
    covered: Count | None = None
    shown: Count | None = None


class SavedTurn(_Strict):
    """A finished turn as the browser keeps it."""

    user: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]
    system_prompt: Annotated[str, Field(max_length=MAX_SYSTEM_CHARS)] = ""
    shown: Annotated[str, Field(max_length=MAX_REPLY_CHARS)] = ""
    outcome: Literal["answered", "refused", "retracted", "error"]
    notice: Note = ""
    dropped: Annotated[int, Field(ge=0, le=10_000)] = 0
    stopped: bool = False
    cut: bool = False
    reported: Note = ""
    checks: list[SavedCheck] = Field(default=[], max_length=MAX_CHECKS)


assert {ANSWERED, REFUSED, RETRACTED, ERROR} == set(SavedTurn.model_fields["outcome"].annotation.__args__)


def saved_turn(turn: TurnState) -> dict:
    """A finished turn as the browser keeps it (JSON-ready); `reply` (possibly withheld) is left out."""
    checks = [
        {
            "stage": c.stage,
            "covered": c.covered,
            "shown": c.shown,
            "verdict": {
                "safe": c.verdict.safe,
                "parsed": c.verdict.parsed,
                "categories": [[cat.code, cat.name] for cat in c.verdict.categories],
                "score": c.verdict.score,
                "threshold": c.verdict.threshold,
                "role": c.verdict.role,
                "raw": c.verdict.raw,
                "error": c.verdict.error,
                "note": c.verdict.note,
                "guard": c.verdict.guard,
                "latency_s": c.verdict.latency_s,
                "category_scores": dict(c.verdict.category_scores),
            },
        }
        for c in turn.checks
    ]
    fields = ("user", "system_prompt", "shown", "outcome", "notice", "dropped", "stopped", "cut", "reported")
    return SavedTurn.model_validate({**{f: getattr(turn, f) for f in fields}, "checks": checks}).model_dump()


def restored_turn(saved: SavedTurn) -> TurnState:
    """The TurnState a saved turn stands for: what was shown is all there is of its reply."""
    checks = tuple(
        Check(
            c.stage,
            Verdict(
                **c.verdict.model_dump(exclude={"categories"}),
                categories=tuple(Category(code, name) for code, name in c.verdict.categories),
            ),
            c.covered,
            c.shown,
        )
        for c in saved.checks
    )
    return TurnState(**saved.model_dump(exclude={"checks"}), reply=saved.shown, checks=checks)


@dataclass(frozen=True)
class Conversation:
    id: str
    turns: tuple[TurnState, ...]

    @property
    def title(self) -> str:
        """Its first message, on one line, shortened."""
        first = " ".join(self.turns[0].user.split()) if self.turns else ""
        return first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1] + "…"


def new_id() -> str:
    return secrets.token_hex(8)


def _canonical(turns: list[dict]) -> bytes:
    return json.dumps(turns, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Shelf:
    """A visitor's saved conversations, newest first, and the one on the page (`current`)."""

    key: bytes = field(repr=False)
    conversations: tuple[Conversation, ...] = ()
    current: str = ""
    problem: str = ""  # why some of what the browser sent was not taken back ('' when all of it was)

    def _sign(self, turns: list[dict]) -> str:
        return hmac.new(self.key, _canonical(turns), hashlib.sha256).hexdigest()

    def read(self, value: object) -> Shelf:
        """The shelf the browser sent back: only what is well formed, within the bounds and
        signed with this server's key (see the module's docstring); `problem` says what was not."""
        if value is None or value == {}:
            return Shelf(self.key)
        try:
            size = len(json.dumps(value, ensure_ascii=False))
        except (TypeError, ValueError, RecursionError):
            return Shelf(self.key, problem=UNREADABLE.format(why="they are not in the page's format"))
        if size > MAX_STORE_CHARS:
            return Shelf(self.key, problem=UNREADABLE.format(why=f"they take more than {MAX_STORE_CHARS:,} characters"))
        if (
            not isinstance(value, dict)
            or value.get("version") != VERSION
            or set(value)
            != {
                "version",
                "current",
                "conversations",
            }
        ):
            return Shelf(self.key, problem=UNREADABLE.format(why="they are not in the page's format"))
        raw = value["conversations"]
        if not isinstance(raw, list) or len(raw) > MAX_SAVED_CONVERSATIONS:
            why = f"there must be a list of at most {MAX_SAVED_CONVERSATIONS}"
            return Shelf(self.key, problem=UNREADABLE.format(why=why))
        kept, why = [], ""
        for item in raw:
            conversation, problem = self._conversation(item)
            if conversation is not None and all(c.id != conversation.id for c in kept):
                kept.append(conversation)
            why = why or problem
        current = value["current"] if any(c.id == value["current"] for c in kept) else ""
        return Shelf(self.key, tuple(kept), current, UNREADABLE.format(why=why) if why else "")

    def _conversation(self, item: object) -> tuple[Conversation | None, str]:
        if not isinstance(item, dict) or set(item) != {"id", "turns", "sig"}:
            return None, "one is not in the page's format"
        ident, turns, sig = item["id"], item["turns"], item["sig"]
        if not isinstance(ident, str) or not _ID.fullmatch(ident) or not isinstance(sig, str):
            return None, "one is not in the page's format"
        if not isinstance(turns, list) or not 1 <= len(turns) <= MAX_SAVED_TURNS:
            return None, f"one does not have 1 to {MAX_SAVED_TURNS} turns"
        try:
            saved = [SavedTurn.model_validate(t) for t in turns]
        except ValidationError:
            return None, "one is not in the page's format"
        if not hmac.compare_digest(sig, self._sign([s.model_dump() for s in saved])):
            return None, "one was changed outside this page"
        return Conversation(ident, tuple(restored_turn(s) for s in saved)), ""

    def value(self) -> dict:
        """What the browser keeps: every conversation signed, the whole within the bounds:
        the newest MAX_SAVED_TURNS turns of each, the newest conversations that fit in
        MAX_STORE_CHARS (the newest one is kept in any case, less its oldest turns if need be)."""
        out, room = [], MAX_STORE_CHARS - 100
        for conversation in self.conversations[:MAX_SAVED_CONVERSATIONS]:
            try:
                turns = [saved_turn(t) for t in conversation.turns[-MAX_SAVED_TURNS:]]
            except ValidationError:  # a turn beyond the bounds (never made by the page): not kept
                continue
            sizes = [len(json.dumps(t, ensure_ascii=False)) + 1 for t in turns]
            while not out and len(turns) > 1 and sum(sizes) + 150 > room:
                turns, sizes = turns[1:], sizes[1:]
            if sum(sizes) + 150 > room:
                break
            item = {"id": conversation.id, "turns": turns, "sig": self._sign(turns)}
            room -= len(json.dumps(item, ensure_ascii=False)) + 2
            out.append(item)
        return {"version": VERSION, "current": self.current, "conversations": out}

    def put(self, ident: str, turns: Sequence[TurnState]) -> Shelf:
        """With conversation `ident` holding `turns` (its finished ones; none: it is removed),
        and made the current one. A new conversation goes first; a known one keeps its place."""
        done = tuple(t for t in turns if t.done)
        known = any(c.id == ident for c in self.conversations)
        if known:
            items = [Conversation(ident, done) if c.id == ident else c for c in self.conversations]
        else:
            items = [Conversation(ident, done), *self.conversations]
        items = [c for c in items if c.turns]
        return Shelf(self.key, tuple(items), ident)

    def get(self, ident: object) -> Conversation | None:
        return next((c for c in self.conversations if c.id == ident), None)

    def choices(self) -> list[tuple[str, str]]:
        """The list's entries: (its first message, its id)."""
        return [(c.title, c.id) for c in self.conversations]
