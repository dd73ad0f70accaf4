"""The page's saved conversations: a list of them and "New chat" under the chat, kept in the
visitor's browser (a `gr.BrowserState`) by `moderation.web.history.Shelf`.

- on load, the list comes back from the browser and the conversation that was on the page
  is restored: its chat and its verdict cards (what could not be taken back is dropped,
  with one warning that says why);
- whenever the session's turns change (a turn ends, Undo, Clear, a report), the
  conversation on the page is saved, first in the list if it is new;
- choosing one in the list restores it; "New chat" starts an empty one (stopping a
  running turn, as Clear does), the old one stays in the list.

None of it calls a model or waits on a turn (queued, under no concurrency limit).
"""

from __future__ import annotations

import secrets

import gradio as gr

from moderation.web.actions import CLEARED, ChatPage
from moderation.web.history import STORAGE_KEY, Shelf, new_id
from moderation.web.panel import chat_messages, guard_caption, panel_html
from moderation.web.widgets import ChatWidgets, ConversationWidgets

BUSY_PICK = "A reply is still being written in this window: choose a conversation once it ends (or press Stop)."


def conversation_widgets() -> ConversationWidgets:
    """The list and "New chat", in one row where this is called (beside the chat's buttons)."""
    store = gr.BrowserState({}, storage_key=STORAGE_KEY, secret=secrets.token_urlsafe(24))
    current = gr.State("")
    with gr.Row(elem_id="conversations", equal_height=True):
        picker = gr.Dropdown(
            choices=[],
            value=None,
            label="Saved conversations",
            show_label=False,  # no room for it: the page's script gives the list a placeholder
            container=False,
            scale=5,
            min_width=120,
            elem_id="conversation-list",
            allow_custom_value=False,
        )
        new = gr.Button("+ New chat", size="sm", scale=1, min_width=90, elem_id="new-chat")
    return ConversationWidgets(store, current, picker, new)


def _picker(shelf: Shelf, value: str | None) -> gr.Dropdown:
    return gr.Dropdown(choices=shelf.choices(), value=value if shelf.get(value) else None)


def _guard_label(page: ChatPage) -> str:
    return guard_caption(page.models.guard.value)


def wire_conversations(
    demo: gr.Blocks, page: ChatPage, w: ChatWidgets, c: ConversationWidgets, key: bytes | None = None
) -> None:
    """Load, save, choose and start conversations (see the module's docstring). `key` signs
    what the browser keeps (none: a random one for this server process)."""
    empty = Shelf(key or secrets.token_bytes(32))
    # queued (a warning reaches the page only through the queue), under no concurrency limit
    private = dict(api_visibility="private", show_progress="hidden", concurrency_limit=None)

    def read(value) -> Shelf:
        shelf = empty.read(value)
        if shelf.problem:
            gr.Warning(shelf.problem)
        return shelf

    def on_load(value):
        shelf = read(value)
        restored = shelf.get(shelf.current)
        turns = list(restored.turns) if restored else []
        current = restored.id if restored else new_id()
        return {
            c.store: shelf.value(),  # what could not be taken back is gone from the browser too
            c.current: current,
            c.picker: _picker(shelf, current),
            w.chatbot: chat_messages(turns),
            w.panel: panel_html(turns, _guard_label(page)),
            w.turns: turns,
        }

    def on_turns(turns, current, value):
        shelf = read(value).put(current or new_id(), turns or [])
        return {c.store: shelf.value(), c.current: shelf.current, c.picker: _picker(shelf, shelf.current)}

    def on_pick(chosen, current, value, request: gr.Request):
        shelf = read(value)
        conversation = shelf.get(chosen)
        if page.sessions.running(getattr(request, "session_hash", None)) or conversation is None:
            if conversation is not None:
                gr.Warning(BUSY_PICK)
            return {c.picker: _picker(shelf, current)}
        turns = list(conversation.turns)
        return {
            c.store: shelf.put(conversation.id, turns).value(),  # a reload now brings this one back
            c.current: conversation.id,
            w.chatbot: chat_messages(turns),
            w.panel: panel_html(turns, _guard_label(page)),
            w.turns: turns,  # a draft in the box stays
        }

    def on_new(value, request: gr.Request):
        page.clear(getattr(request, "session_hash", None))
        shelf = read(value).put(new_id(), [])  # current, not listed until a turn ends: a reload shows it empty
        return {
            c.store: shelf.value(),
            c.current: shelf.current,
            c.picker: _picker(shelf, None),
            w.chatbot: CLEARED.chat,
            w.panel: CLEARED.panel,
            w.turns: [],
            w.send: gr.Button(visible=True),
            w.stop: gr.Button(visible=False),
        }

    shown = {w.chatbot, w.panel, w.turns}
    demo.load(on_load, c.store, {c.store, c.current, c.picker} | shown, **private)
    w.turns.change(on_turns, [w.turns, c.current, c.store], {c.store, c.current, c.picker}, **private)
    c.picker.input(on_pick, [c.picker, c.current, c.store], {c.store, c.current, c.picker} | shown, **private)
    c.new.click(on_new, c.store, {c.store, c.current, c.picker, w.send, w.stop} | shown, **private)
