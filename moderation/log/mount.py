"""Mounting the review page on the server: `server_extras(config, log, metrics)` gives the
hooks that `app.start` hands to the server (moderation.web.server.launch), one for /metrics
and one for the review page with its HTTP routes (downloads, labels) and its origin rules."""

from __future__ import annotations

import logging
from collections.abc import Callable

import gradio as gr
from fastapi.routing import APIRoute
from sqlalchemy.engine import Engine

from moderation.log.export import FORMATS
from moderation.log.metrics import attach_metrics
from moderation.log.review_page import PAGE_CSS, PAGE_HEAD, create_review
from moderation.log.routes import (
    REVIEW_PATH,
    ReviewBoundary,
    StartedOnFirstRequest,
    add_outermost,
    export_endpoint,
    labels_endpoint,
    operator_check,
)

logger = logging.getLogger(__name__)


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
    page = create_review(engine, author=operator[0])
    gr.mount_gradio_app(
        app,
        page,
        path=path,
        auth=operator,
        auth_message="Operator login: the moderation log.",
        footer_links=[],
        ssr_mode=False,
        theme=gr.themes.Soft(),
        css=PAGE_CSS,
        head=PAGE_HEAD,
    )
    routes = app.router.routes
    mount = routes.pop()  # mount_gradio_app appended it: put it first, started on first use
    is_operator = operator_check(mount.app, operator)
    mount.app = StartedOnFirstRequest(mount.app, page)
    routes.insert(0, mount)
    for fmt in FORMATS:  # before the mount, which would take every path under it
        routes.insert(
            0,
            APIRoute(
                f"{path}/export.{fmt}",
                export_endpoint(engine, fmt, is_operator),
                methods=["GET"],
                include_in_schema=False,
            ),
        )
    routes.insert(
        0,
        APIRoute(
            f"{path}/labels",
            labels_endpoint(engine, is_operator, operator[0]),
            methods=["POST"],
            include_in_schema=False,
        ),
    )
    add_outermost(app, ReviewBoundary, prefix=path)
    return page
