"""Moderated Llama 3 chat: `python app.py --help` lists the flags.

Read settings, then start everything on one server (moderation.server.start): the models
load in the background, the page comes up at once, with the /v1 API, the operator's
review page and /metrics beside it as the flags ask.
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

    from moderation.log import LogUnavailable
    from moderation.server import start

    try:
        start(config)
    except LogUnavailable as exc:
        sys.exit(f"python app.py: error: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
