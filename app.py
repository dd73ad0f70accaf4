"""Moderated Llama 3 chat: `python app.py --help` lists the flags.

`start` builds the whole server from the packages, one hop each:

    moderation.settings   every flag and environment variable -> AppConfig
    moderation.models     the chat model and the guard, loading in the background
    moderation.log        the moderation log, its review page (/review) and /metrics
    moderation.web        the Gradio page, with its /chat and /moderate endpoints
    moderation.api        the OpenAI-compatible API under /v1
    moderation.limits     its rate limit and --api-concurrency, shared by the replicas on PostgreSQL
    moderation.admission  one bound (--concurrency) on the moderated work of all of them
    moderation.turn       the GuardPool their guard checks run on, sized from --concurrency

The moderated turn itself is plain Python in `moderation.turn`; the guards are in
`guard/`, the chat backends in `chat/`, model loading in `weights/`.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from moderation.admission import Admission  # noqa: E402  (after the variable above)
from moderation.api.routes import openai_api  # noqa: E402
from moderation.limits import LimitsUnavailable  # noqa: E402
from moderation.log import LogUnavailable, TurnLog, open_log  # noqa: E402
from moderation.log.metrics import Metrics  # noqa: E402
from moderation.log.mount import server_extras  # noqa: E402
from moderation.models import Models, model_slots  # noqa: E402
from moderation.settings import parse_config  # noqa: E402
from moderation.shared_limits import open_limits  # noqa: E402
from moderation.turn import GuardPool  # noqa: E402
from moderation.web.page import create_app, launch_options  # noqa: E402
from moderation.web.server import launch  # noqa: E402


@dataclass
class Served:
    """What `start` opened: the page's server (`demo`), the models, the moderation log,
    the guard checks' pool and the API's limits. `close()` stops the server and then shuts
    the rest down: the pool's threads end, and the chat model's generation threads if
    `start` loaded the models (models a caller passed in are the caller's to close)."""

    demo: Any
    models: Models
    log: TurnLog
    guard_pool: GuardPool
    owns_models: bool
    limits: Any

    def close(self) -> None:
        self.demo.close()  # no new turns from here on
        self.guard_pool.close()
        self.limits.close()
        if self.owns_models:
            self.models.close()
        self.log.close()  # last: the turns that just ended are written


def start(config, *, block: bool = True, quiet: bool = False, models: Models | None = None) -> Served:
    """Everything `python app.py` runs, on one server: the models loading in the background,
    the moderation log, the page, and beside it the /v1 API, the review page and /metrics.
    One `Admission` of --concurrency places bounds the moderated work of the page and the
    API, and one GuardPool sized from it runs their guard checks. With `block`, returns once
    the server has stopped, everything closed; without, the caller closes what it returns.
    Raises LogUnavailable when the log database cannot be opened (or, on PostgreSQL, the
    API's shared limits cannot be set up in it)."""
    metrics = Metrics() if config.metrics else None
    turn_log = open_log(config, metrics)
    try:
        limits = open_limits(config)
    except LimitsUnavailable as exc:
        turn_log.close()
        raise LogUnavailable(f"{exc}. Fix --log-db, or run without a log: --log-db none") from exc
    owns_models, models = models is None, models or model_slots(config).start()
    admission, guard_pool = Admission(config.concurrency, config.max_queue), GuardPool(config.concurrency)
    demo = create_app(models, config, turn_log, admission, guard_pool)
    demo.queue(default_concurrency_limit=config.concurrency, max_size=config.max_queue)
    demo.admission = admission  # for tests that watch it
    served = Served(demo, models, turn_log, guard_pool, owns_models, limits)
    extras = [
        openai_api(models, config, turn_log, admission, guard_pool, limits),
        *server_extras(config, turn_log, metrics),
    ]
    try:
        launch(
            demo, dict(launch_options(config), quiet=quiet), extras, block=block, trusted_proxies=config.trusted_proxies
        )
    except BaseException:
        served.close()
        raise
    if block:
        served.close()
    return served


def main(argv: list[str] | None = None) -> None:
    config = parse_config(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        start(config)
    except LogUnavailable as exc:
        sys.exit(f"python app.py: error: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
