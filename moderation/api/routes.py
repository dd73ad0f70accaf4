"""An OpenAI-compatible API under /v1, moderated exactly like a page turn.

    POST /v1/moderations        judge texts with the guard (OpenAI's shape + `llama_guard`)
    POST /v1/chat/completions   one moderated turn, streamed or not (+ `moderation`)
    GET  /v1/models             the chat model, with the guard named

`openai_api(models, config)` returns the hook that `moderation.web.server.launch` calls with
the server's FastAPI app. Every refusal is an OpenAI-style error object
(`{"error": {"message", "type", "param", "code"}}`), never a traceback:

    client = OpenAI(base_url="http://127.0.0.1:7860/v1", api_key="KEY")
    client.chat.completions.create(model="offline", messages=[{"role": "user", "content": "Hi"}])
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from guard.verdict import AGENT, USER
from moderation.access import api_exposure, bearer_matches, keyless_refusal
from moderation.admission import Admission
from moderation.api.replies import (
    chunk_body,
    completion_body,
    finish_reason,
    models_body,
    moderation_body,
    moderation_field,
    new_id,
)
from moderation.api.schema import (
    MAX_BODY_BYTES,
    ApiError,
    ChatRequest,
    ModerationRequest,
    parse_chat_request,
    parse_json_body,
    parse_moderation_request,
)
from moderation.api.turn import api_turn_settings, cut_at_stop, history_records, limit_error, turn_states, usage
from moderation.judge import GuardPool, Judge
from moderation.limits import LimitsFull, LimitsUnavailable, ReplicaLimits
from moderation.log import TurnLog, TurnMeta
from moderation.turn import ERROR, TurnState, history_messages, run_turn
from weights.spec import ENDPOINT, model_spec

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable]
MAX_JUDGED_CHARS = 64_000  # what one /v1/moderations request may ask the guard to read: four full messages


def openai_api(
    models,
    config,
    turn_log: TurnLog | None = None,
    admission: Admission | None = None,
    guard_pool: GuardPool | None = None,
    limits=None,
) -> Callable[[FastAPI], None]:
    """The hook that adds /v1 to the server, or logs why the API stays off. API turns are
    kept in `turn_log` like the page's, and run under `admission`, the server's one limit
    on moderated work (without one: a limit of the API's own, of --concurrency), their
    guard checks on `guard_pool` (the server's; none: each turn makes its own). `limits`:
    the rate limit and --api-concurrency (moderation.shared_limits.open_limits; none: this
    replica's own)."""

    def attach(app: FastAPI) -> None:
        enabled, why = api_exposure(config)
        (log.info if enabled else log.warning)("OpenAI-compatible API at /v1: %s", why)
        if enabled:
            app.include_router(api_router(models, config, turn_log, admission, guard_pool, limits))

    return attach


def served_model_id(config, models) -> str:
    """The id callers send as `model`: the chat model as given on the command line, or the
    endpoint's own model name for a remote chat model."""
    chat = models.chat.value
    if model_spec(config.chat_model).kind == ENDPOINT:
        return (chat.served_model if chat is not None else None) or config.chat_model
    return config.chat_model


def api_router(
    models,
    config,
    turn_log: TurnLog | None = None,
    admission: Admission | None = None,
    guard_pool: GuardPool | None = None,
    limits=None,
) -> APIRouter:
    """The /v1 router: each route behind the key check, the rate limit and OpenAI-style errors."""
    api = OpenAIApi(models, config, turn_log, admission, guard_pool, limits)
    router = APIRouter(prefix="/v1")
    router.add_api_route("/models", api.endpoint(api.list_models), methods=["GET"])
    router.add_api_route("/moderations", api.endpoint(api.moderations), methods=["POST"])
    router.add_api_route("/chat/completions", api.endpoint(api.chat_completions), methods=["POST"])
    return router


class OpenAIApi:
    """The three /v1 handlers over one pair of models, with the server's limits: API turns
    are kept in `turn_log`, run under `admission` (none: a limit of the API's own, of
    --concurrency) and `limits` (the rate limit and --api-concurrency; none: this
    replica's own) and check on `guard_pool` (none: each turn makes its own)."""

    def __init__(
        self,
        models,
        config,
        turn_log: TurnLog | None = None,
        admission: Admission | None = None,
        guard_pool: GuardPool | None = None,
        limits=None,
    ):
        self.models, self.config, self.guard_pool = models, config, guard_pool
        self.limits = limits or ReplicaLimits(config.rate_limit, config.api_concurrency)
        self.admission = admission or Admission(config.concurrency, config.max_queue)
        self.turn_log = turn_log or TurnLog(None)

    def endpoint(self, handler: Handler) -> Handler:
        """Key check, rate limit and OpenAI-style errors around one handler. The handler
        reads its body itself (read_body, then the request models of moderation.api.schema,
        whose validation errors arrive here as one ApiError): a FastAPI body parameter would
        be read whole and parsed before the key check and the rate limit run."""
        config = self.config

        async def run(request: Request):
            try:
                identity = admit(request, config.api_keys)
                wait = await asyncio.to_thread(self.limits.take, identity)  # a database's, maybe
                if wait:
                    raise ApiError(
                        429,
                        f"rate limit of {config.rate_limit} reached: retry in {math.ceil(wait)} s",
                        type="rate_limit_error",
                        code="rate_limit_exceeded",
                        retry_after=wait,
                    )
                return await handler(request)
            except ApiError as exc:
                return error_response(exc)
            except (LimitsFull, LimitsUnavailable) as exc:
                return error_response(limit_error(exc))
            except Exception:  # a bug of ours, not bad input: logged, and still an OpenAI-style error
                log.exception("%s %s failed", request.method, request.url.path)
                return error_response(ApiError(500, "internal error; see the server log", type="server_error"))

        return run

    def ready(self):
        if not self.models.ready:
            raise ApiError(
                503,
                self.models.not_ready_message() or "the models are loading",
                type="server_error",
                code="model_not_ready",
                retry_after=10,
            )
        return self.models.guard.value, self.models.chat.value

    async def list_models(self, request: Request):
        chat, guard = self.models.statuses()
        return JSONResponse(
            models_body(served_model_id(self.config, self.models), guard.label or guard.spec, chat.label or chat.spec)
        )

    async def moderations(self, request: Request):
        body = parse_moderation_request(parse_json_body(await read_body(request)))
        refuse_over_budget(body)
        guard, _ = self.ready()
        settings = api_turn_settings(self.config, guard)
        role = "assistant" if len(body.conversation) % 2 else "user"  # the turn after the conversation
        judged_as = AGENT if role == "assistant" else USER

        def judge_each(stop: threading.Event):
            judge = Judge(guard, settings, self.guard_pool)  # the checks' deadline; a failed check fails closed
            try:
                for text in body.inputs:
                    if stop.is_set():
                        return
                    yield judge(list(body.conversation) + [{"role": role, "content": text}], judged_as)
            finally:
                judge.close()

        async with client_watch(request) as (stop, gone):
            verdicts = [v async for v in turn_states(judge_each, self.admission, stop, gone, self.limits.slot)]
        if len(verdicts) < len(body.inputs):  # the client left: nobody reads the answer
            raise ApiError(499, "the client closed the request", code="client_closed")
        return JSONResponse(moderation_body(verdicts, guard.label, settings.policy))

    async def chat_completions(self, request: Request):
        req = parse_chat_request(parse_json_body(await read_body(request)))
        guard, chat = self.ready()
        model = served_model_id(self.config, self.models)
        if req.model not in (None, model):
            raise ApiError(
                404,
                f"model {req.model!r} is not served here; use {model!r} (see /v1/models)",
                code="model_not_found",
                param="model",
            )
        settings = api_turn_settings(self.config, guard, req)
        records = history_records(req)
        meta = TurnMeta.of(settings, guard, chat, f"api:{request.client.host if request.client else ''}")
        turn = ApiTurn(req, settings, chat, records, model)

        def run(event: threading.Event):
            return self.turn_log.record(
                run_turn(guard, chat, records, req.user, settings, event, self.guard_pool), meta
            )

        async with client_watch(request) as (stop, gone):  # from the wait for a place on
            states = turn_states(run, self.admission, stop, gone, self.limits.slot)
            first = await anext(states, None)
            if first is None:
                raise ApiError(499, "the client closed the request", code="client_closed")
            if first.outcome == ERROR and not first.checks:  # the conversation does not fit the context
                await states.aclose()
                raise ApiError(400, first.notice, code="context_length_exceeded", param="messages")
            if req.stream:  # the response watches its client itself from here
                return StreamingResponse(
                    turn.events(first, states, stop),
                    media_type="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                )
            try:
                last = first
                async for last in states:
                    if cut_at_stop(last.shown, req.stop, final=False)[1]:
                        stop.set()  # a stop string: end generation; the turn still judges the reply
            finally:
                await states.aclose()
        if not last.done:  # the client left: the turn was closed, and nobody reads an answer
            raise ApiError(499, "the client closed the request", code="client_closed")
        return JSONResponse(await asyncio.to_thread(turn.completion, last))  # usage tokenizes: not on the loop


class ApiTurn:
    """Renders one moderated turn's states as a completion or as server-sent chunks."""

    def __init__(self, request: ChatRequest, settings, chat, records: list[TurnState], model: str):
        self.request, self.settings, self.chat, self.model = request, settings, chat, model
        self.id = new_id("chatcmpl")
        system = [{"role": "system", "content": settings.system_prompt}] if settings.system_prompt.strip() else []
        self.messages = system + history_messages(records) + [{"role": "user", "content": request.user}]

    def final(self, state: TurnState) -> tuple[str, str, dict | None]:
        """(the text a caller gets, finish_reason, usage) of a finished turn."""
        text, cut = cut_at_stop(state.shown, self.request.stop, final=True)
        counted = usage(self.chat, self.settings, self.messages, state.reply)
        length = bool(counted) and counted["completion_tokens"] >= self.settings.generation.max_new_tokens
        return text, finish_reason(state, cut, length), counted

    def completion(self, state: TurnState) -> dict:
        if state.outcome == ERROR:
            raise ApiError(502, state.notice, type="server_error", code="chat_model_failed")
        text, reason, counted = self.final(state)
        return completion_body(self.id, self.model, text, reason, state, counted, self.settings.policy)

    def chunk(self, delta: dict | None, reason: str | None = None, **extra) -> str:
        return f"data: {json.dumps(chunk_body(self.id, self.model, delta, reason, **extra))}\n\n"

    async def events(self, first: TurnState, states: AsyncIterator[TurnState], stop: threading.Event):
        """Chunks as the reply grows; the last says `stop`, `length` or `content_filter`
        (refused, withdrawn, or the guard failed) and carries the `moderation` field."""
        sent, state = "", first
        try:
            yield self.chunk({"role": "assistant", "content": ""})
            async for state in _chain(first, states):
                visible, hit = cut_at_stop(state.shown, self.request.stop, final=state.done)
                if hit:
                    stop.set()
                if state.done:
                    break
                if len(visible) > len(sent) and visible.startswith(sent):
                    yield self.chunk({"content": visible[len(sent) :]})
                    sent = visible
            if state.outcome == ERROR:
                failed = ApiError(502, state.notice, type="server_error", code="chat_model_failed")
                yield f"data: {json.dumps(failed.body())}\n\n"
                return
            text, reason, counted = await asyncio.to_thread(self.final, state)
            if reason != "content_filter" and len(text) > len(sent) and text.startswith(sent):
                yield self.chunk({"content": text[len(sent) :]})
            yield self.chunk({}, reason, moderation=moderation_field(state, self.settings.policy))
            if self.request.include_usage:
                yield self.chunk(None, usage=counted)
            yield "data: [DONE]\n\n"
        finally:
            await states.aclose()


async def _chain(first: TurnState, rest: AsyncIterator[TurnState]) -> AsyncIterator[TurnState]:
    yield first
    async for state in rest:
        yield state


def admit(request: Request, keys: tuple[str, ...]) -> str:
    """The caller's identity for the rate limit: its key, or its address without keys."""
    address = request.client.host if request.client else ""
    if keys:
        header = request.headers.get("authorization")
        if not bearer_matches(header, keys):
            raise ApiError(
                401,
                "a valid API key is required: send 'Authorization: Bearer KEY'",
                type="invalid_request_error",
                code="invalid_api_key",
            )
        return "key:" + header.split(" ", 1)[1].strip()
    refused = keyless_refusal(address, request.headers)
    if refused:
        raise ApiError(403, refused, code="forbidden")
    return "address:" + address


async def read_body(request: Request) -> bytes:
    """The body, refused with 413 past MAX_BODY_BYTES (before reading it when the length is sent)."""
    declared = request.headers.get("content-length", "")
    too_big = ApiError(413, f"the request body is over {MAX_BODY_BYTES:,} bytes", code="request_too_large")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


@contextlib.asynccontextmanager
async def client_watch(request: Request) -> AsyncIterator[tuple[threading.Event, threading.Event]]:
    """(stop, gone) events for one request's work: both are set when its client disconnects
    while the block runs, which ends the wait for a place, generation, and checks."""
    stop, gone = threading.Event(), threading.Event()
    watcher = asyncio.create_task(_watch(request, stop, gone))
    try:
        yield stop, gone
    finally:
        watcher.cancel()


async def _watch(request: Request, stop: threading.Event, gone: threading.Event) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        while not gone.is_set():
            if await request.is_disconnected():
                log.info("%s %s: the client left; its work stops", request.method, request.url.path)
                gone.set()
                stop.set()
                return
            await asyncio.sleep(0.25)


def refuse_over_budget(body: ModerationRequest) -> None:
    """A 413 for a /v1/moderations request that asks to judge more than MAX_JUDGED_CHARS
    characters in all: every input is judged after the whole conversation."""
    context = sum(len(m["content"]) for m in body.conversation)
    total = sum(context + len(text) for text in body.inputs)
    if total > MAX_JUDGED_CHARS:
        raise ApiError(
            413,
            f"this request asks the guard to read {total:,} characters (each input with the "
            f"conversation before it); the limit is {MAX_JUDGED_CHARS:,} a request: "
            "send fewer or shorter inputs, or split them over several requests",
            code="too_much_to_judge",
            param="input",
        )


def error_response(exc: ApiError) -> JSONResponse:
    headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))} if exc.retry_after else None
    if exc.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
