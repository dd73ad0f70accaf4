"""Models behind an OpenAI-compatible endpoint: the URL and key rules that the chat and
guard sides share.

    api_base("http://127.0.0.1:8080")  ->  "http://127.0.0.1:8080/v1"

The key is a parameter: `moderation.settings` (and `python -m chat` / `python -m guard`)
read it from OPENAI_API_KEY, else HF_TOKEN (Inference Endpoints).
"""

from __future__ import annotations


def api_base(url: str) -> str:
    """OpenAI clients want the /v1 root; TGI, vLLM and Inference Endpoints serve it there."""
    url = url.rstrip("/")
    return url if "/v1" in url else url + "/v1"


def openai_client(url: str, key: str | None = None, timeout_s: float = 60.0):
    """A client for the endpoint; without a key it sends a placeholder (the client wants
    one, and a server without keys ignores it)."""
    import openai

    return openai.OpenAI(base_url=api_base(url), api_key=key or "not-needed", timeout=timeout_s, max_retries=0)


def served_model(client) -> str:
    """The first model the endpoint lists (TGI and vLLM serve one); 'tgi' if none."""
    models = client.models.list().data
    return models[0].id if models else "tgi"
