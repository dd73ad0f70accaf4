"""The operator's review page: the moderation log, filtered, with every verdict of a turn,
counts over time, guard latency percentiles, and CSV / JSONL downloads.

It is its own Gradio app, mounted at /review on the same server behind the operator
login (a separate login from the page's `--auth`, with its own cookie), so visitors of the
chat page never reach it. Downloads are plain routes, /review/export.csv and
/review/export.jsonl (same filters as query parameters), that answer only the operator:
the page's login cookie or HTTP Basic (`curl -u operator:secret .../review/export.csv`).
Nothing of the log is ever put in Gradio's shared file cache.

No other origin reads it with the operator's login (`ReviewBoundary`, outermost on the
server): responses under /review carry no CORS headers (Gradio's own middleware would allow
any origin, with credentials, on a Host that is not localhost), CORS preflights and requests
that the browser marks as another site's (`Sec-Fetch-Site`; a followed link excepted) get a
403, and the login cookie is `SameSite=Strict; HttpOnly; Path=/review`.

    attach_review(demo.app, engine, ("admin", "secret"))    # after the chat app exists

Handlers are plain functions of (engine, filter values); `create_review` only wires them.
The page may be mounted before the server starts (its startup runs with the server's) or
on a server already running: then its queue starts with the first request to it.
"""

from __future__ import annotations

import base64
import html
import logging
import secrets
from dataclasses import dataclass, replace
from typing import Callable
from urllib.parse import urlencode

import gradio as gr
import pandas as pd
from fastapi import Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.routing import APIRoute
from sqlalchemy.engine import Engine
from starlette.datastructures import Headers

from moderation.log.export import FORMATS, parse_time, serialize
from moderation.log.metrics import attach_metrics
from moderation.log.query import (UNFINISHED, TurnFilter, count_turns, counts_over_time, iter_records,
                                  latency_percentiles, summary)
from moderation.log.writer import ABANDONED, CRASHED
from moderation.turn import ANSWERED, ERROR, REFUSED, RETRACTED

logger = logging.getLogger(__name__)
REVIEW_PATH = "/review"
OUTCOMES = ["any", ANSWERED, REFUSED, RETRACTED, ERROR, ABANDONED, CRASHED, UNFINISHED]
TABLE_ROWS = 500  # newest matching turns in the table
STATS_TURNS = 20_000  # newest matching turns in the counts and percentiles (the downloads have all)
TABLE_COLUMNS = ["started_at", "outcome", "unscanned", "categories", "verdicts", "guard_ms", "tokens", "user_text", "id"]
LATENCY_COLUMNS = ["stage", "checks", "p50_ms", "p90_ms", "p99_ms", "max_ms"]


def turn_filter(outcome: str, category: str, since: str, until: str, text: str) -> TurnFilter:
    """The filter from the page's fields; ValueError with a readable message on a bad date.

    >>> turn_filter("refused", "s8", "2026-11-01", "", "").category
    'S8'
    """
    def when(value: str, what: str):
        if not (value or "").strip():
            return None
        try:
            return parse_time(value)
        except ValueError:
            raise ValueError(f"{what}: {value!r} is not a date (e.g. 2026-11-27) or ISO time") from None

    code = (category or "").strip().upper()
    if code and not (code.isascii() and code.isalnum()):
        raise ValueError(f"Category: {category!r} is not a category code (e.g. S8, or C1 for a custom one)")
    return TurnFilter(outcome="" if outcome in ("", "any", None) else outcome,
                      category=code, since=when(since, "From"),
                      until=when(until, "Until"), text=(text or "").strip())


@dataclass(frozen=True)
class Review:
    """What the page shows for one filter."""

    table: pd.DataFrame
    by_outcome: pd.DataFrame
    by_category: pd.DataFrame
    latency: pd.DataFrame
    total: int  # all matching turns
    counted: int  # the newest ones that the table, counts and percentiles use


def review(engine: Engine, f: TurnFilter) -> Review:
    """Table, counts and percentiles for the newest `STATS_TURNS` matching turns."""
    records = list(iter_records(engine, replace(f, limit=STATS_TURNS)))  # newest first
    table = [summary(r) for r in records[:TABLE_ROWS]]
    return Review(table=pd.DataFrame(table, columns=TABLE_COLUMNS),
                  by_outcome=pd.DataFrame(counts_over_time(records, "outcome"), columns=["period", "outcome", "count"]),
                  by_category=pd.DataFrame(counts_over_time(records, "category"),
                                           columns=["period", "category", "count"]),
                  latency=pd.DataFrame(latency_percentiles(records), columns=LATENCY_COLUMNS),
                  total=count_turns(engine, f), counted=len(records))


def turn_detail(engine: Engine, turn_id: str) -> dict:
    """A turn's full record (with every verdict), or {"error": ...} when there is none."""
    turn_id = (turn_id or "").strip()
    if not turn_id:
        return {}
    found = list(iter_records(engine, TurnFilter(turn_id=turn_id)))
    return found[0] if found else {"error": f"no turn {turn_id!r}"}


def download_links(*values) -> str:
    """Links to this filter's downloads, relative to the page (so they work under any mount path)."""
    names = ("outcome", "category", "since", "until", "text")
    query = urlencode({k: v for k, v in zip(names, values) if v and v != "any"})
    return " · ".join(f'<a href="export.{fmt}?{html.escape(query)}" download="moderation-log.{fmt}" '
                      f'id="download-{fmt}">Download {fmt.upper()}</a>' for fmt in FORMATS)


def create_review(engine: Engine) -> gr.Blocks:
    """Build the page; nothing runs until it is mounted."""
    def filtered(*values) -> TurnFilter:
        try:
            return turn_filter(*values)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None

    def show(*values):
        r = review(engine, filtered(*values))
        note = f"**{r.total:,} turns** match"
        if r.total > len(r.table):
            note += f"; the table shows the newest {len(r.table):,}"
        if r.total > r.counted:
            note += f", the plots and percentiles the newest {r.counted:,} (narrow the dates for older ones)"
        return note + ".", r.table, r.by_outcome, r.by_category, r.latency, download_links(*values)

    def pick(evt: gr.SelectData):
        row = evt.row_value or []
        turn_id = row[TABLE_COLUMNS.index("id")] if len(row) == len(TABLE_COLUMNS) else ""
        return turn_id, turn_detail(engine, turn_id)

    with gr.Blocks(title="Moderation log: review") as page:
        gr.Markdown("## 🛡️ Moderation log\nEvery turn and every guard verdict, newest first. Times are UTC.")
        with gr.Row():
            outcome = gr.Dropdown(OUTCOMES, value="any", label="Outcome", elem_id="f-outcome")
            category = gr.Textbox(label="Category code", placeholder="e.g. S8", elem_id="f-category")
            since = gr.Textbox(label="From (date or ISO time)", placeholder="2026-11-01", elem_id="f-since")
            until = gr.Textbox(label="Until (exclusive)", placeholder="2026-12-01", elem_id="f-until")
            text = gr.Textbox(label="Text contains", elem_id="f-text")
        search = gr.Button("Search", variant="primary", elem_id="search")
        total = gr.Markdown(elem_id="total")
        table = gr.Dataframe(headers=TABLE_COLUMNS, interactive=False, wrap=True, elem_id="turns",
                             label="Turns (select a row for its record)")
        with gr.Row():
            turn_id = gr.Textbox(label="Turn id", elem_id="turn-id", scale=1)
            detail = gr.JSON(label="The turn's record, with every verdict", elem_id="turn-detail", scale=3, open=True)
        with gr.Row():
            by_outcome = gr.BarPlot(x="period", y="count", color="outcome", label="Turns per outcome per day")
            by_category = gr.BarPlot(x="period", y="count", color="category",
                                     label="Flagged turns per category per day")
        latency = gr.Dataframe(headers=LATENCY_COLUMNS, interactive=False, elem_id="latency",
                               label="Guard latency per stage (ms)")
        downloads = gr.HTML(elem_id="downloads")

        filters = [outcome, category, since, until, text]
        shown = [total, table, by_outcome, by_category, latency, downloads]
        for trigger in (search.click, page.load):
            trigger(show, filters, shown, api_name="search" if trigger == search.click else False)
        table.select(pick, None, [turn_id, detail], api_visibility="private")
        turn_id.submit(lambda i: turn_detail(engine, i), turn_id, detail, api_name="turn")
    return page


def server_extras(config, log, metrics=None) -> list[Callable]:
    """Hooks `hook(app)` that add the review page and /metrics to the server's FastAPI app,
    as `config` asks: the review page needs the log and an operator login, /metrics `--metrics`."""
    hooks: list[Callable] = []
    if metrics is not None:
        hooks.append(lambda app: attach_metrics(app, metrics))
    if log.engine is not None and config.operator:
        hooks.append(lambda app: attach_review(app, log.engine, config.operator))
    elif log.engine is not None:
        logger.info("review page off: give --operator USER:PASSWORD (or --auth) to open %s", REVIEW_PATH)
    return hooks


def attach_review(app, engine: Engine, operator: tuple[str, str], path: str = REVIEW_PATH) -> gr.Blocks:
    """Mount the review page at `path` of a FastAPI app (e.g. the chat's `demo.app`), behind
    the operator login. The mount goes first among the app's routes, before any catch-all."""
    if not operator:
        raise ValueError("the review page needs an operator login")
    page = create_review(engine)
    gr.mount_gradio_app(app, page, path=path, auth=operator,
                        auth_message="Operator login: the moderation log.", footer_links=[],
                        ssr_mode=False)
    routes = app.router.routes
    mount = routes.pop()  # mount_gradio_app appended it: put it first, started on first use
    is_operator = _operator_check(mount.app, operator)
    mount.app = _StartedOnFirstRequest(mount.app, page)
    routes.insert(0, mount)
    for fmt in FORMATS:  # before the mount, which would take every path under it
        routes.insert(0, APIRoute(f"{path}/export.{fmt}", _export_endpoint(engine, fmt, is_operator),
                                  methods=["GET"], include_in_schema=False))
    _add_outermost(app, ReviewBoundary, prefix=path)
    return page


def _add_outermost(app, middleware, **options) -> None:
    """Put an ASGI middleware around everything of `app`, Gradio's CORS middleware included:
    as a user middleware before the app's first request, around its built stack after it."""
    if app.middleware_stack is None:
        app.add_middleware(middleware, **options)  # the first added of these ends up outermost
    else:
        app.middleware_stack = middleware(app.middleware_stack, **options)


class ReviewBoundary:
    """ASGI middleware: what goes out under `prefix` is for the operator's own pages only.

    - a CORS preflight, or a request the browser marks as another site's or a sibling
      origin's (`Sec-Fetch-Site: cross-site` or `same-site`) that is not a link followed
      (a GET navigation), gets a 403 and never reaches the page or the downloads;
    - every other response loses its `Access-Control-*` headers (the review page's own
      requests are same-origin and need none);
    - every cookie it sets is `Path=<prefix>; SameSite=Strict; HttpOnly`.
    """

    def __init__(self, app, prefix: str = REVIEW_PATH):
        self.app, self.prefix = app, prefix.rstrip("/")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not _is_under(scope, self.prefix):
            await self.app(scope, receive, send)
            return
        if _from_elsewhere(scope["method"], Headers(scope=scope)):
            await PlainTextResponse("The review page answers its own pages only.", status_code=403)(
                scope, receive, send)
            return

        async def send_own(message):
            if message["type"] == "http.response.start":
                message["headers"] = [(k, _strict_cookie(v.decode("latin-1"), self.prefix).encode("latin-1"))
                                      if k.lower() == b"set-cookie" else (k, v)
                                      for k, v in message.get("headers", [])
                                      if not k.lower().startswith(b"access-control-")]
            await send(message)
        await self.app(scope, receive, send_own)


def _is_under(scope, prefix: str) -> bool:
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        path = path[len(root):]
    return path == prefix or path.startswith(prefix + "/")


def _from_elsewhere(method: str, headers: Headers) -> bool:
    """A CORS preflight, or a browser's request from another site or origin that is not a
    followed link. Clients that send no fetch metadata (curl, scripts) are not refused here."""
    if method == "OPTIONS" and "access-control-request-method" in headers:
        return True
    site = headers.get("sec-fetch-site", "").lower()
    followed_link = method == "GET" and headers.get("sec-fetch-mode", "").lower() == "navigate"
    return site in ("cross-site", "same-site") and not followed_link


def _strict_cookie(set_cookie: str, path: str) -> str:
    """A Set-Cookie value scoped to `path`, SameSite=Strict and HttpOnly, other attributes kept.

    >>> _strict_cookie("t=abc; HttpOnly; Path=/; SameSite=none; Secure", "/review")
    't=abc; Secure; Path=/review; SameSite=Strict; HttpOnly'
    """
    pair, *attributes = (part.strip() for part in set_cookie.split(";"))
    kept = [a for a in attributes if a.partition("=")[0].strip().lower() not in ("path", "samesite", "httponly")]
    return "; ".join([pair, *kept, f"Path={path}", "SameSite=Strict", "HttpOnly"])


def _operator_check(gradio_app, operator: tuple[str, str]) -> Callable[[Request], bool]:
    """True for a request from the operator: the review page's own login cookie (a browser),
    or HTTP Basic with the operator's user and password (curl, scripts)."""
    def check(request: Request) -> bool:
        token = (request.cookies.get(f"access-token-{gradio_app.cookie_id}")
                 or request.cookies.get(f"access-token-unsecure-{gradio_app.cookie_id}"))
        if token and gradio_app.tokens.get(token) == operator[0]:
            return True
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(user.encode(), operator[0].encode()) & secrets.compare_digest(
            password.encode(), operator[1].encode())
    return check


def _export_endpoint(engine: Engine, fmt: str, is_operator: Callable[[Request], bool]):
    def export(request: Request, outcome: str = "", category: str = "", since: str = "", until: str = "",
               text: str = "") -> Response:
        if not is_operator(request):
            return Response("Operator login required.", status_code=401,
                            headers={"WWW-Authenticate": 'Basic realm="moderation log"'})
        try:
            f = turn_filter(outcome, category, since, until, text)
        except ValueError as exc:
            return Response(str(exc), status_code=400)
        media = "text/csv" if fmt == "csv" else "application/x-ndjson"
        return StreamingResponse(serialize(iter_records(engine, f), fmt), media_type=f"{media}; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="moderation-log.{fmt}"',
                                          "Cache-Control": "no-store"})
    return export


class _StartedOnFirstRequest:
    """ASGI wrapper: runs the page's startup events (its queue) in the server's event loop
    on the first request, when the server had started before the page was mounted."""

    def __init__(self, app, page: gr.Blocks):
        self.app, self.page = app, page
        self.routes = getattr(app, "routes", [])

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and not self.page.is_running:
            self.page.run_startup_events()
            await self.page.run_extra_startup_events()
        await self.app(scope, receive, send)
