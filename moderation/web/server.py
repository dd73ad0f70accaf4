"""One server for the page and everything beside it (the /v1 API, and whatever else).

Gradio builds and starts the FastAPI app itself (`Blocks.launch`), which is what keeps
`--share` links and Hugging Face Spaces working. So the page is launched without
blocking, each extra adds its routes to that running app (`demo.app`), and only then
does the main thread block:

    launch(demo, launch_options(config), extras=[openai_api(models, config)])

An extra is any `Callable[[FastAPI], None]`; it may add routes, routers and exception
handlers, not middleware (Starlette builds the middleware stack on the first request).
Its routes win over nothing of Gradio's: Gradio serves no catch-all path, so a prefix
such as /v1 or /metrics is free.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from fastapi import FastAPI

from moderation.access import uvicorn_trusting

log = logging.getLogger(__name__)
Extra = Callable[[FastAPI], None]


def attach(app: FastAPI, extras: Iterable[Extra]) -> None:
    """Add each extra's routes to the server's app."""
    for extra in extras:
        extra(app)


def launch(demo, options: dict, extras: Iterable[Extra] = (), block: bool = True, trusted_proxies: str = "") -> str:
    """Launch `demo` (a queued gr.Blocks) with `options`, attach the extras, and block until
    the server stops (unless `block` is False, as in tests). The server believes
    X-Forwarded-For only from `trusted_proxies` (none by default). Returns the local URL."""
    with uvicorn_trusting(trusted_proxies):
        demo.launch(prevent_thread_lock=True, **options)
    attach(demo.app, extras)
    if block:
        demo.block_thread()
    return demo.local_url
