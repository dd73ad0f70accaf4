"""The page's widget groups, as plain records the wiring functions share (page.py lays
them out, conversations.py and the event wiring read them)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr


@dataclass
class ConversationWidgets:
    store: gr.BrowserState  # the saved conversations, in the browser (Shelf.value)
    current: gr.State  # the id of the conversation on the page
    picker: gr.Dropdown
    new: gr.Button


@dataclass
class ChatWidgets:
    """The page's widgets outside the Settings accordion."""

    header: gr.Markdown
    status: gr.Markdown
    timer: gr.Timer
    turns: gr.State  # the session's TurnStates: the model's context
    chatbot: gr.Chatbot
    box: gr.Textbox
    send: gr.Button
    stop: gr.Button
    retry: gr.Button
    undo: gr.Button
    clear: gr.Button
    panel: gr.HTML
    saved: ConversationWidgets  # the list of saved conversations and "New chat"

    @property
    def updated(self) -> dict:
        """PageUpdate's field names -> the widgets they fill."""
        return {"chat": self.chatbot, "panel": self.panel, "turns": self.turns, "box": self.box}
