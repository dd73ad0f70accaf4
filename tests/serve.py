"""Start a real `transformers serve` (OpenAI-compatible) on 127.0.0.1 for a test."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("transformers")
    return [str(exe)] if exe.exists() else [shutil.which("transformers") or "transformers"]


@contextlib.contextmanager
def serve_model(model: str | Path, *extra_args: str, startup_timeout_s: float = 180) -> Iterator[str]:
    """Serve `model` and yield its base URL, e.g. http://127.0.0.1:PORT/v1.

    `model` is a local folder (or a cached hub id; HF_HUB_OFFLINE=1 is set): `transformers
    serve` is pinned to it: /v1/models lists it alone, and a request naming another model fails.
    `extra_args` go to `transformers serve` (e.g. "--dtype", "float32")."""
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    log = tempfile.TemporaryFile("w+")  # the server's output, shown if it fails to start
    proc = subprocess.Popen(
        _cli() + ["serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", *extra_args, str(model)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"transformers serve exited early:\n{log.read()[-3000:]}")
            try:
                with urllib.request.urlopen(base + "/v1/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"transformers serve did not start in {startup_timeout_s} s")
            time.sleep(0.5)
        yield base + "/v1"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
