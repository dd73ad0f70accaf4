"""Moderated Llama 3 chat: `python app.py --help` lists the flags.

Read settings, start loading the models in the background, build the page, launch it
with the OpenAI-compatible API beside it on the same server.
"""

from __future__ import annotations

import logging
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def main(argv: list[str] | None = None) -> None:
    from moderation.settings import parse_config

    config = parse_config(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from moderation.api import openai_api
    from moderation.models import model_slots
    from moderation.server import launch
    from moderation.ui import create_app, launch_options

    models = model_slots(config).start()
    demo = create_app(models, config)
    demo.queue(default_concurrency_limit=config.concurrency, max_size=config.max_queue)
    launch(demo, launch_options(config), extras=[openai_api(models, config)])


if __name__ == "__main__":
    main(sys.argv[1:])
