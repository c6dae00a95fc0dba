"""Failed authentication attempts, counted per client address in the shared cache, and the 429 that follows.

Token guessing and password guessing are slowed to AUTH_FAILURE_LIMIT attempts per
AUTH_FAILURE_WINDOW_SECONDS from one address (fixed windows). Successful attempts are not counted;
the address is the client's, or the one the trusted proxies (REST_FRAMEWORK NUM_PROXIES) report.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)


def client_address(request: Any) -> str:
    return BaseThrottle().get_ident(request)


def _key(kind: str, address: str) -> tuple[str, int]:
    window = settings.AUTH_FAILURE_WINDOW_SECONDS
    start = int(time.time()) // window * window
    return f"auth-failures:{kind}:{address}:{start}", start + window


def seconds_blocked(request: Any, kind: str) -> int:
    """0 when the address may try again, else the seconds until its window ends.

    If the cache is down, sign-ins and tokens keep working (they are checked against the database) and
    the counting pauses, with a warning: the service stays available while its cache restarts.
    """
    key, ends = _key(kind, client_address(request))
    try:
        failures = cache.get(key) or 0
    except Exception as exc:
        logger.warning("%s: failed attempts not counted, the cache is unavailable (%s)", kind, type(exc).__name__)
        return 0
    if failures >= settings.AUTH_FAILURE_LIMIT:
        return max(1, ends - int(time.time()))
    return 0


def failure_record(request: Any, kind: str) -> None:
    address = client_address(request)
    key, ends = _key(kind, address)
    try:
        cache.add(key, 0, timeout=ends - int(time.time()) + 1)
        try:
            failures = cache.incr(key)
        except ValueError:  # the window ended between add and incr
            cache.add(key, 1, timeout=settings.AUTH_FAILURE_WINDOW_SECONDS)
            failures = 1
    except Exception as exc:
        logger.warning("%s: a failed attempt was not counted, the cache is unavailable (%s)", kind, type(exc).__name__)
        return
    if failures == settings.AUTH_FAILURE_LIMIT:
        logger.warning("%s: %s failed attempts from %s; blocked until the window ends", kind, failures, address)
