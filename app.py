"""Moderated Llama 3 chat: `python app.py --help` lists the flags.

`start` builds the whole server from the packages, one hop each:

    moderation.settings   every flag and environment variable -> AppConfig
    moderation.models     the chat model and the guard, loading in the background
    moderation.log        the moderation log, its review page (/review) and /metrics
    moderation.web        the Gradio page, with its /chat and /moderate endpoints
    moderation.api        the OpenAI-compatible API under /v1
    moderation.admission  one bound (--concurrency) on the moderated work of all of them

The moderated turn itself is plain Python in `moderation.turn`; the guards are in
`guard/`, the chat backends in `chat/`, model loading in `weights/`.
"""

from __future__ import annotations

import logging
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from moderation.admission import Admission  # noqa: E402  (after the variable above)
from moderation.api.routes import openai_api  # noqa: E402
from moderation.log import LogUnavailable, open_log  # noqa: E402
from moderation.log.metrics import Metrics  # noqa: E402
from moderation.log.review import server_extras  # noqa: E402
from moderation.models import model_slots  # noqa: E402
from moderation.settings import parse_config  # noqa: E402
from moderation.web.page import create_app, launch_options  # noqa: E402
from moderation.web.server import launch  # noqa: E402


def start(config, *, block: bool = True, quiet: bool = False, models=None):
    """Everything `python app.py` runs, on one server: the models loading in the background,
    the moderation log, the page, and beside it the /v1 API, the review page and /metrics.
    One `Admission` of --concurrency places bounds the moderated work of the page and the API.
    Returns (demo, models, log); with `block`, only once the server has stopped. Raises
    LogUnavailable when the log database cannot be opened."""
    metrics = Metrics() if config.metrics else None
    turn_log = open_log(config, metrics)
    models = models or model_slots(config).start()
    admission = Admission(config.concurrency, config.max_queue)
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


def main(argv: list[str] | None = None) -> None:
    config = parse_config(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        start(config)
    except LogUnavailable as exc:
        sys.exit(f"python app.py: error: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
