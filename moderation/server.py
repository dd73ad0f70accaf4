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
from typing import Callable, Iterable

from fastapi import FastAPI

from moderation.api_access import uvicorn_trusting

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


def start(config, *, block: bool = True, quiet: bool = False, models=None):
    """Everything `python app.py` runs, on one server: the models loading in the background,
    the moderation log, the page, and beside it the /v1 API, the review page and /metrics.
    One `Admission` of --concurrency places bounds the moderated work of the page and the API.
    Returns (demo, models, log); with `block`, only once the server has stopped. Raises
    moderation.log.LogUnavailable when the log database cannot be opened."""
    from moderation.admission import Admission
    from moderation.api import openai_api
    from moderation.log import open_log
    from moderation.log.metrics import Metrics
    from moderation.models import model_slots
    from moderation.review import server_extras
    from moderation.ui import create_app, launch_options

    metrics = Metrics() if config.metrics else None
    turn_log = open_log(config, metrics)
    models = models or model_slots(config).start()
    admission = Admission(config.concurrency, config.max_queue)  # --concurrency, for every entry point
    demo = create_app(models, config, turn_log, admission)
    demo.queue(default_concurrency_limit=config.concurrency, max_size=config.max_queue)
    demo.admission = admission  # for tests that watch it
    extras = [openai_api(models, config, turn_log, admission), *server_extras(config, turn_log, metrics)]
    try:
        launch(demo, dict(launch_options(config), quiet=quiet), extras, block=block,
               trusted_proxies=config.trusted_proxies)
    finally:
        if block:
            turn_log.close()
    return demo, models, turn_log
