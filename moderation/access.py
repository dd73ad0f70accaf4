"""Who may call the OpenAI-compatible API, and how often.

- With API keys (`--api-key`), every request needs `Authorization: Bearer KEY`.
- Without keys, the API answers only on loopback: it is switched off when the app
  listens on another address, runs on a Space, or opens a `--share` link (the share
  tunnel connects from 127.0.0.1, so a per-request address check could not tell).
  When on, it answers only a loopback peer that names a loopback Host and sent no
  forwarding header (`keyless_refusal`): a proxy on this machine would otherwise make
  every client of the network look like 127.0.0.1. A forwarder that adds no header
  (socat, `ssh -L`) cannot be told apart, so behind any forwarder set `--api-key`.
- Uvicorn believes X-Forwarded-For only from `--trusted-proxies` (`uvicorn_trusting`);
  by default from nobody, so a client cannot pick the address its rate limit counts.
- A token bucket per key (or per client address without keys) answers 429 with the
  seconds to wait:

>>> limiter = RateLimiter(parse_rate("2/minute"))
>>> limiter.take("k", now=0.0), limiter.take("k", now=0.0), limiter.take("k", now=0.0)
(0.0, 0.0, 30.0)
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import ipaddress
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

# Headers by which a proxy says whom it forwards for (standard, de facto and CDN ones).
FORWARDING_HEADERS = (
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-original-forwarded-for",
    "forwarded-for",
    "via",
)
_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
MAX_TRACKED = 10_000  # identities whose buckets are kept (oldest forgotten first)


@dataclass(frozen=True)
class Rate:
    """`count` requests per `seconds`, e.g. Rate(60, 60.0) for "60/minute"."""

    count: int
    seconds: float

    def __str__(self) -> str:
        unit = next((u for u, s in _UNITS.items() if s == self.seconds), None)
        return f"{self.count}/{unit}" if unit else f"{self.count}/{self.seconds:g}s"


def parse_rate(text: str) -> Rate | None:
    """ "60/minute" -> Rate(60, 60.0); "off" or "0" -> None (no limit).

    Raises argparse.ArgumentTypeError with the accepted forms, so a bad flag or variable
    is a usage error and not a traceback."""
    value = (text or "").strip().lower()
    if value in {"", "0", "off", "none"}:
        return None
    count, sep, unit = value.partition("/")
    unit = unit.strip().removesuffix("s") if unit.strip() != "s" else "second"
    if not sep or not count.strip().isdigit() or int(count) < 1 or unit not in _UNITS:
        raise argparse.ArgumentTypeError(
            f"rate limit {text!r}: use N/second, N/minute, N/hour or N/day (e.g. 60/minute), or off"
        )
    return Rate(int(count), _UNITS[unit])


def check_api_key(value: str) -> str:
    """argparse type for --api-key: a key is one printable token without spaces."""
    key = value.strip()
    if len(key) < 8 or any(ch.isspace() or not ch.isprintable() for ch in key):
        raise argparse.ArgumentTypeError("an API key needs at least 8 printable characters and no spaces")
    return key


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def effective_host(host: str | None) -> str:
    """The address Gradio will listen on: `host` (the settings fill it from the flag, else
    GRADIO_SERVER_NAME, set on Spaces), else 127.0.0.1."""
    return host or "127.0.0.1"


def api_exposure(config) -> tuple[bool, str]:
    """(enabled, why) for the API under this config; `why` is logged either way."""
    if config.api_keys:
        return True, f"the API needs one of {len(config.api_keys)} key(s) as a Bearer token"
    host = effective_host(config.host)
    if config.share:
        return False, "the API is off: --share opens a public link and no --api-key is set"
    if config.space:
        return False, "the API is off: this is a public Space and no API_KEY secret is set"
    if not is_loopback(host):
        return False, f"the API is off: the app listens on {host}, not loopback, and no --api-key is set"
    return True, f"the API answers without a key, on loopback only ({host})"


def keyless_refusal(peer: str | None, headers) -> str | None:
    """Why a request without keys is refused, or None when it comes straight from this
    machine: a loopback peer, a loopback Host (a DNS-rebinding page names its own) and no
    forwarding header. `headers` is a case-insensitive mapping (Starlette's)."""
    if not is_loopback(peer):
        return f"without --api-key the API answers only on loopback; this request came from {peer or 'nowhere'}"
    forwarded = next((h for h in FORWARDING_HEADERS if h in headers), None)
    if forwarded:
        return (
            f"without --api-key the API answers only clients on this machine, and this request came "
            f"through a proxy (it carries {forwarded}); the operator must set --api-key"
        )
    host = headers.get("host", "")
    if not is_loopback(_host_name(host)):
        return f"without --api-key the API answers only requests for localhost, not for Host {host!r}"
    return None


def _host_name(host: str) -> str:
    """A Host header without its port: '[::1]:7860' -> '::1', 'localhost:7860' -> 'localhost'."""
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check_trusted_proxies(value: str) -> str:
    """argparse type for --trusted-proxies: '10.0.0.1, 10.1.0.0/16' -> '10.0.0.1,10.1.0.0/16';
    '*' trusts any peer; '' trusts none."""
    items = [item.strip() for item in (value or "").split(",") if item.strip()]
    if items == ["*"]:
        return "*"
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False) if "/" in item else ipaddress.ip_address(item)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{item!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8), or * for any"
            ) from None
    return ",".join(items)


@contextlib.contextmanager
def uvicorn_trusting(proxies: str):
    """Within it, a uvicorn server that is configured believes X-Forwarded-For only from
    `proxies` ('' for none). Gradio builds uvicorn's Config without forwarded_allow_ips,
    and uvicorn then reads FORWARDED_ALLOW_IPS, defaulting to 127.0.0.1; so the variable is
    set while the server is launched, and put back after. (The one variable touched outside
    moderation.settings, on purpose: it is a third party's, written, not read for a setting.)"""
    before = os.environ.get("FORWARDED_ALLOW_IPS")
    os.environ["FORWARDED_ALLOW_IPS"] = proxies
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("FORWARDED_ALLOW_IPS", None)
        else:
            os.environ["FORWARDED_ALLOW_IPS"] = before


def bearer_matches(header: str | None, keys: tuple[str, ...]) -> bool:
    """True when `Authorization: Bearer <token>` carries one of the keys (constant time)."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    token_bytes = token.strip().encode("utf-8", "surrogatepass")
    return any(hmac.compare_digest(token_bytes, k.encode("utf-8")) for k in keys)  # no early exit


def refill(bucket: tuple[float, float] | None, now: float, rate: Rate) -> tuple[float, float]:
    """One request against a bucket of (tokens, at) (None: a new, full bucket):
    (the tokens it keeps, the seconds to wait; 0.0 when the request may go ahead).

    The bucket holds at most `rate.count` tokens, refilled evenly over `rate.seconds`; a
    request that goes ahead takes one. A clock that steps back refills nothing. (The
    shared limiter's PostgreSQL statement, moderation.shared_limits, does the same
    operations in the same order.)

    >>> refill(None, 0.0, Rate(2, 60.0)), refill((1.0, 0.0), 0.0, Rate(2, 60.0))
    ((1.0, 0.0), (0.0, 0.0))
    >>> refill((0.0, 0.0), 15.0, Rate(2, 60.0))  # half a token back: 15 s more to wait
    (0.5, 15.0)
    """
    per_second = rate.count / rate.seconds
    tokens, at = bucket if bucket is not None else (float(rate.count), now)
    tokens = min(float(rate.count), tokens + max(0.0, now - at) * per_second)
    if tokens >= 1.0:
        return tokens - 1.0, 0.0
    return tokens, (1.0 - tokens) / per_second


class RateLimiter:
    """A token bucket per identity in this process's memory (`refill`): `count` requests
    at once, refilled evenly over `seconds`."""

    def __init__(self, rate: Rate | None):
        self.rate = rate
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # identity -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, identity: str, now: float) -> float:
        """0.0 when the request may go ahead, else the seconds until it may."""
        if self.rate is None:
            return 0.0
        with self._lock:
            tokens, wait = refill(self._buckets.pop(identity, None), now, self.rate)
            self._buckets[identity] = (tokens, now)
            while len(self._buckets) > MAX_TRACKED:
                self._buckets.popitem(last=False)
            return wait
