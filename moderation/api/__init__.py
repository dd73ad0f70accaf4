"""The OpenAI-compatible API under /v1: `routes` (the FastAPI router), `schema` (checked
request values), `turn` (running a moderated turn for a request), `replies` (OpenAI-shaped
bodies and chunks)."""
