"""Launch the real app in-process on a free loopback port, for the API and browser tests."""

from __future__ import annotations

import contextlib
from typing import Iterator

from moderation.api import openai_api
from moderation.models import Models, model_slots
from moderation.server import launch
from moderation.settings import parse_config
from moderation.ui import create_app, launch_options
from serve import free_port


@contextlib.contextmanager
def running_app(*flags: str, load_timeout_s: float = 600) -> Iterator[tuple[str, Models]]:
    """Start the app with these command-line flags; yields (url, models) once models are ready."""
    config = parse_config(["--host", "127.0.0.1", "--port", str(free_port()), *flags])
    models = model_slots(config).start()
    if not models.wait(load_timeout_s):
        raise RuntimeError(f"models did not load: {models.not_ready_message()}")
    demo = create_app(models, config)
    demo.queue(default_concurrency_limit=config.concurrency, max_size=config.max_queue)
    launch(demo, dict(launch_options(config), quiet=True), extras=[openai_api(models, config)], block=False)
    try:
        yield f"http://127.0.0.1:{config.port}/", models
    finally:
        demo.close()
