"""The review page's plain routes and its boundary: CSV / JSONL downloads, `POST
/review/labels` for scripts, the operator check they share with the page's login, and
`ReviewBoundary`, which keeps every other origin out of /review.

Downloads and labels answer only the operator: the review page's login cookie, or HTTP Basic
(`curl -u operator:secret .../review/export.csv`). A label is the JSON body
`{"turn", "stage", "label", "categories", "note"}` (see `moderation.log.labels`): 201 with
the stored label, 404 for an unknown turn, 422 with a message for a malformed one, 401
without the login.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from sqlalchemy.engine import Engine
from starlette.datastructures import Headers

from moderation.log.export import serialize
from moderation.log.labels import LabelError, UnknownTurn, add_label
from moderation.log.query import iter_records
from moderation.log.review import FILTERS, turn_filter

if TYPE_CHECKING:
    import gradio as gr

REVIEW_PATH = "/review"
LABEL_BODY_MAX = 64 * 1024  # bytes of a label's JSON body


def add_outermost(app, middleware, **options) -> None:
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
                scope, receive, send
            )
            return

        async def send_own(message):
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, _strict_cookie(v.decode("latin-1"), self.prefix).encode("latin-1"))
                    if k.lower() == b"set-cookie"
                    else (k, v)
                    for k, v in message.get("headers", [])
                    if not k.lower().startswith(b"access-control-")
                ]
            await send(message)

        await self.app(scope, receive, send_own)


def _is_under(scope, prefix: str) -> bool:
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        path = path[len(root) :]
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


def operator_check(gradio_app, operator: tuple[str, str]) -> Callable[[Request], bool]:
    """True for a request from the operator: the review page's own login cookie (a browser),
    or HTTP Basic with the operator's user and password (curl, scripts)."""

    def check(request: Request) -> bool:
        token = request.cookies.get(f"access-token-{gradio_app.cookie_id}") or request.cookies.get(
            f"access-token-unsecure-{gradio_app.cookie_id}"
        )
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
            password.encode(), operator[1].encode()
        )

    return check


def _login_required() -> Response:
    return Response(
        "Operator login required.", status_code=401, headers={"WWW-Authenticate": 'Basic realm="moderation log"'}
    )


def export_endpoint(engine: Engine, fmt: str, is_operator: Callable[[Request], bool]):
    """GET /review/export.<fmt>: the turns that the page's filters (FILTERS, as query
    parameters) select, newest first."""

    def export(request: Request) -> Response:
        if not is_operator(request):
            return _login_required()
        try:
            f = turn_filter(**{name: request.query_params.get(name, "") for name in FILTERS})
        except ValueError as exc:
            return Response(str(exc), status_code=400)
        media = "text/csv" if fmt == "csv" else "application/x-ndjson"
        return StreamingResponse(
            serialize(iter_records(engine, f), fmt),
            media_type=f"{media}; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="moderation-log.{fmt}"',
                "Cache-Control": "no-store",
            },
        )

    return export


def labels_endpoint(engine: Engine, is_operator: Callable[[Request], bool], author: str):
    """POST /review/labels: store one label from a JSON body, as `author` (the operator)."""

    async def post_label(request: Request) -> Response:
        if not is_operator(request):
            return _login_required()
        raw = await request.body()
        if len(raw) > LABEL_BODY_MAX:
            return _refused(413, f"a label's body is at most {LABEL_BODY_MAX} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return _refused(422, 'the body is not JSON: send {"turn", "stage", "label", "categories", "note"}')
        try:
            stored = add_label(engine, body, author=author, source="operator")
        except UnknownTurn as exc:
            return _refused(404, str(exc))
        except LabelError as exc:
            return _refused(422, str(exc))
        return JSONResponse(stored, status_code=201, headers={"Cache-Control": "no-store"})

    return post_label


def _refused(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store"})


class StartedOnFirstRequest:
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
