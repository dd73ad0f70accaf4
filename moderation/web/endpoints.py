"""The page's two public API endpoints, `/moderate` and `/chat`, as the API page shows them.

Gradio documents a `gr.api` endpoint from its type hints (so the returned fields are
TypedDicts here) and shows the docstring's text before "Parameters:" as its description,
so that text says what goes in and what each returned field means. The "Parameters:"
section is Gradio's own docstring format (gradio.utils.get_function_description), but
Gradio 6 reads it only for MCP: `documented_api` hands each parameter's line to the API
page too, and `streamed_snippets` makes the page's /chat sample stream (`submit`), where
Gradio writes `predict` for every endpoint. Everything else on the
page is registered with `api_visibility="private"` and does not appear. The work itself is `moderation.web.actions.ChatPage`'s. `/chat` gets the
caller's Gradio session (an injected `gr.Request`, not an API parameter), so a browser
session runs one turn at a time whether it starts it from the page or from /chat.
"""

# No `from __future__ import annotations`: Gradio reads these type hints as real types.
from typing import TypedDict

import gradio as gr
import gradio.routes
from gradio.context import get_blocks_context
from gradio.utils import get_function_description, get_function_params

from moderation.web.actions import ChatPage, RequestError

STREAMED = frozenset({"/chat"})  # endpoints whose API-page sample streams with `submit`


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
    category_scores: dict[str, float]  # p(unsafe and that category), summing to score


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
        parsed (false: the guard's answer was unreadable), raw (its answer), latency_ms, error, note, guard,
        category_scores (per category code, p(unsafe and that category); they sum to score).

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
        The server also speaks the OpenAI API under /v1 (/v1/models, /v1/chat/completions, /v1/moderations):
        see docs/api.md, section /v1.

        Parameters:
            message: the user's message.
            system_prompt: accepted only when the operator opened visitor settings; otherwise the operator's is used and a different one is refused.
        """
        try:
            yield from page.chat_turn(message, system_prompt, getattr(request, "session_hash", None))
        except RequestError as exc:
            raise gr.Error(str(exc)) from None

    documented_api(moderate, gpu(moderate), api_name="moderate", **limit)
    documented_api(chat, gpu(chat), api_name="chat", **limit)
    if not getattr(gradio.routes.generate_code_snippets, "streams", False):
        gradio.routes.generate_code_snippets = streamed_snippets(gradio.routes.generate_code_snippets)


def documented_api(fn, served, **options) -> None:
    """gr.api(served), with each parameter's description on the API page taken from `fn`'s
    docstring ("Parameters:"): Gradio 6 shows a parameter's `additional_description`, which
    the components gr.api makes for the parameters leave empty (the page then says
    "⚠︎ No description")."""
    dependency = gr.api(served, **options)
    _, descriptions, _ = get_function_description(fn)
    names = [name for name, *_ in get_function_params(fn)]
    blocks = get_blocks_context().blocks
    for name, block_id in zip(names, dependency["inputs"], strict=True):
        component = blocks[block_id]  # a gradio.components.Api, whose schema the API page reads
        component._api_info = {**component._api_info, "additional_description": descriptions.get(name, "")}


def streamed_snippets(generate):
    """Gradio's code-sample generator (gradio.routes.generate_code_snippets), with the
    Python and JavaScript samples of the STREAMED endpoints rewritten to stream each update
    with `submit`; every other endpoint's samples are Gradio's."""

    def snippets(api_name: str, *args, **kwargs) -> dict[str, str]:
        samples = generate(api_name, *args, **kwargs)
        if api_name in STREAMED:
            samples["python"] = (
                samples["python"]
                .replace("result = client.predict(", "job = client.submit(")
                .replace(
                    "print(result)",
                    'for update in job:  # each update as the turn runs\n\tprint(update["reply"])\n'
                    "print(job.result())  # the final update, with every verdict",
                )
            )
            samples["javascript"] = (
                samples["javascript"]
                .replace("const result = await client.predict(", "const job = client.submit(")
                .replace(
                    "console.log(result.data);",
                    "for await (const message of job) {  // each update as the turn runs\n"
                    '\tif (message.type === "data") console.log(message.data[0].reply);\n}',
                )
            )
        return samples

    snippets.streams = True
    return snippets
