"""Moderation: the moderated turn and what serves it.

The core (plain Python, no Gradio, no HTTP):

    turn        one moderated turn: judge the prompt, stream the reply while judging it
    policy      the operator's policy, and what a visitor may change of it (only tighten)
    schema      every setting declared once: type, default, range, variable, help
    settings    the command line and environment -> AppConfig
    models      the chat model and the guard in slots that load in the background
    sessions    one turn at a time per browser session, and a Stop for that session only
    admission   one bound on the moderated work of every entry point (--concurrency)
    access      who may call the API (keys, loopback, forwarded headers) and how often

Around it, each a subpackage: `web` (the Gradio page and its /chat and /moderate),
`api` (the OpenAI-compatible /v1) and `log` (the moderation log, its review page and
/metrics). `app.py` builds the server from them.
"""
