"""The page's two public API endpoints, `/moderate` and `/chat`, as the API page shows them.

Gradio documents a `gr.api` endpoint from its type hints (so the returned fields are
TypedDicts here) and shows the docstring's text before "Parameters:" as its description,
so that text says what goes in and what each returned field means. Everything else on the
page is registered with `api_visibility="private"` and does not appear. The work itself is `moderation.web.actions.ChatPage`'s. `/chat` gets the
caller's Gradio session (an injected `gr.Request`, not an API parameter), so a browser
session runs one turn at a time whether it starts it from the page or from /chat.
"""

# No `from __future__ import annotations`: Gradio reads these type hints as real types.
from typing import TypedDict

import gradio as gr

from moderation.web.actions import ChatPage, RequestError


class Message(TypedDict):
    role: str  # "user" or "assistant"
    content: str


class Category(TypedDict):
    code: str
    name: str


class Verdict(TypedDict):
    safe: bool
    categories: list[Category]
    score: float | None
    threshold: float | None
    role: str
    parsed: bool
    raw: str
    latency_ms: float
    error: str
    note: str
    guard: str


class StageVerdict(Verdict):
    stage: str


class ChatUpdate(TypedDict):
    reply: str
    outcome: str | None
    notice: str
    verdicts: list[StageVerdict]


def endpoints(page: ChatPage, gpu, **limit) -> None:
    """Register /moderate and /chat on the Blocks being built; `gpu` wraps them (ZeroGPU on
    a Space, moderation.web.space); `limit` (concurrency_id) puts them in the page's group
    of moderated work."""

    def moderate(text: str, conversation: list[Message] | None = None) -> Verdict:
        """Judge one message with the guard, under the operator's policy and threshold.
        Input: text (at most 16,000 characters) and optionally conversation, the earlier messages
        [{"role": "user"|"assistant", "content": ...}] alternating from "user" (text is then judged in
        that context, as the reply when the conversation ends with a user message).
        Returns a verdict: safe (false when flagged or when the guard failed), categories [{code, name}],
        score (the unsafe probability; null when the guard gives none), threshold, role (User or Agent),
        parsed (false: the guard's answer was unreadable), raw (its answer), latency_ms, error, note, guard.

        Parameters:
            text: the message to judge (at most 16,000 characters).
            conversation: optional earlier messages, [{"role": "user"|"assistant", "content": str}, ...], alternating from "user"; `text` is then judged in that context, as the reply when the conversation ends with a user message.
        """
        try:
            return page.moderate(text, conversation)
        except RequestError as exc:
            raise gr.Error(str(exc)) from None

    # Gradio documents a generator endpoint by the type of what it yields, hence ChatUpdate.
    def chat(message: str, system_prompt: str = "", request: gr.Request | None = None) -> ChatUpdate:
        """One moderated turn (prompt check, streaming checks, response check), streamed.
        Input: message, and system_prompt (accepted only when the operator opened visitor settings).
        Each update has reply (the text a person may see so far), outcome (null while running, then
        answered, refused, retracted or error), notice (the refusal, retraction or error text) and
        verdicts (every check so far: a /moderate verdict plus stage: prompt, partial or response).
        Stream it: job = client.submit("Hi!", api_name="/chat"); for update in job: print(update["reply"]);
        job.result() is the final update (client.predict returns only that one).

        Parameters:
            message: the user's message.
            system_prompt: accepted only when the operator opened visitor settings; otherwise the operator's is used and a different one is refused.
        """
        try:
            yield from page.chat_turn(message, system_prompt, getattr(request, "session_hash", None))
        except RequestError as exc:
            raise gr.Error(str(exc)) from None

    gr.api(gpu(moderate), api_name="moderate", **limit)
    gr.api(gpu(chat), api_name="chat", **limit)
