"""Shared fixtures: tiny random Llama-architecture models with the real Llama 3 tokenizer.

Each package's own fixtures live in its test modules; only cross-package ones live here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import reference_templates  # noqa: E402
import tiny_models  # noqa: E402
from hypothesis import HealthCheck, Phase, settings  # noqa: E402

# The fuzz suite's budgets (tests/test_fuzz_*.py): "ci" by default, the same examples on
# every run; `pytest --hypothesis-profile=long` for a longer, random local run.
settings.register_profile(
    "ci",
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    settings.get_profile("ci"),
    max_examples=300,
    derandomize=False,
    database=settings.get_profile("default").database,
    phases=list(Phase),
    print_blob=True,
)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def llama3_tokenizer():
    """The real Llama 3 tokenizer (no chat template)."""
    return tiny_models.llama3_tokenizer()


@pytest.fixture(scope="session")
def tiny_guard_path(tmp_path_factory) -> Path:
    """A random 2-layer Llama with the Llama 3 tokenizer and the Llama Guard 2 template.

    Its config names it "meta-llama/Meta-Llama-Guard-2-8B" so version detection sees Guard 2.
    """
    return tiny_models.build_tiny_llama(
        tmp_path_factory.mktemp("tiny-guard"),
        reference_templates.LLAMA_GUARD_2,
        name_or_path="meta-llama/Meta-Llama-Guard-2-8B",
    )


@pytest.fixture(scope="session")
def tiny_chat_path(tmp_path_factory) -> Path:
    """A random 2-layer Llama with the Llama 3 tokenizer and the Llama 3 Instruct template."""
    return tiny_models.build_tiny_llama(
        tmp_path_factory.mktemp("tiny-chat"),
        reference_templates.LLAMA3_INSTRUCT,
        name_or_path="meta-llama/Meta-Llama-3-8B-Instruct",
        seed=1,
    )


@pytest.fixture(scope="session")
def offline_app():
    """The real app on a loopback port with the bundled offline models: (url, models)."""
    from app_server import running_app

    with running_app("--chat-model", "offline", "--guard-model", "offline", "--check-every", "4") as started:
        yield started


@pytest.fixture(scope="session")
def postgres_admin():
    """A throw-away PostgreSQL cluster for the whole session: its admin URL."""
    from postgres import postgres_cluster

    with postgres_cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def log_db(request, tmp_path):
    """A fresh, empty log database: a SQLite file, or a new database in the test cluster."""
    if request.param == "sqlite":
        yield str(tmp_path / "log.sqlite3")
        return
    from postgres import fresh_database

    with fresh_database(request.getfixturevalue("postgres_admin")) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, one per test module (see tests/browser_kit.py)."""
    from browser_kit import launch
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def visitors(browser):
    """Open pages as new visitors, each its own Playwright context (its own Gradio session):
    visitors(url, max_tokens=None, temperature=None, **open_page options) -> page. Every
    context is closed after the test."""
    from browser_kit import open_page, set_max_tokens

    contexts = []

    def open_(url: str, max_tokens: int | None = None, temperature: float | None = None, **options):
        context, page = open_page(browser, url, **options)
        contexts.append(context)
        if max_tokens:
            set_max_tokens(page, max_tokens, temperature)
        return page

    yield open_
    for context in contexts:
        context.close()
