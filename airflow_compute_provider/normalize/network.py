"""Exceptions raised before any provider answered -> ``ComputeError``.

    from_exception(exc, provider=None)   connection, DNS, TLS and timeout errors of botocore,
                                         urllib3, aiohttp, requests, httpx, asyncio, socket,
                                         ssl; credential and client-configuration errors
    causes(exc)                          the exception and everything it wraps, outermost first

The whole cause chain is read: ``__cause__`` / ``__context__``, and the places libraries keep
the original (urllib3 ``MaxRetryError.reason``, botocore ``kwargs["error"]``, aiohttp
``os_error``, exceptions passed as ``args``, exception groups). The rules are in
``network_rules``. The provider is kept when known (given, or guessed from a botocore or
Kubernetes client class in the chain); otherwise ``root_cause.provider`` is "network".
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from typing import Any

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.normalize import _read
from airflow_compute_provider.normalize._result import Cause, build, log_raw, unknown
from airflow_compute_provider.normalize.network_rules import EXCEPTION_RULES
from airflow_compute_provider.normalize.rules import Facts, best_match

_MAX_CHAIN = 32
_PROVIDER_BY_MODULE = (
    (re.compile(r"^(?:botocore|aiobotocore|boto3|s3transfer)\b"), "ecs"),
    (re.compile(r"^(?:kubernetes|kubernetes_asyncio|websocket)\b"), "kubernetes"),
)


def from_exception(exc: Any, provider: str | None = None) -> ComputeError:
    """Normalize a transport, credential or client-side exception (or anything else)."""
    try:
        return _from_exception(exc, provider)
    except Exception as error:
        return unknown(provider, "exception", exc, error)


def causes(exc: Any) -> Iterator[BaseException]:
    """``exc`` and the exceptions it wraps, breadth first, each once."""
    if not isinstance(exc, BaseException):
        return
    queue: list[BaseException] = [exc]
    seen: set[int] = set()
    while queue and len(seen) < _MAX_CHAIN:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        queue.extend(_wrapped(current))


def _wrapped(exc: BaseException) -> Iterator[BaseException]:
    candidates: list[Any] = [exc.__cause__, exc.__context__]
    for attribute in ("reason", "os_error", "original_error", "last_attempt_exception"):
        try:
            candidates.append(getattr(exc, attribute, None))
        except Exception:
            continue
    kwargs = getattr(exc, "kwargs", None)
    if isinstance(kwargs, dict):
        candidates.append(kwargs.get("error"))
    candidates.extend(getattr(exc, "args", ()) or ())
    grouped = getattr(exc, "exceptions", None)
    if isinstance(grouped, list | tuple):
        candidates.extend(grouped)
    yield from (c for c in candidates if isinstance(c, BaseException))


def provider_of(exc: BaseException) -> str | None:
    """ "ecs" or "kubernetes" when a class in ``exc``'s chain comes from that provider's SDK."""
    for link in causes(exc):
        for name in _read.qualified_names(link):
            for pattern, provider in _PROVIDER_BY_MODULE:
                if pattern.match(name):
                    return provider
    return None


def _from_exception(exc: Any, provider: str | None) -> ComputeError:
    if not isinstance(exc, BaseException):
        return unknown(provider, "exception", exc)
    provider = provider or provider_of(exc)
    chain = list(causes(exc))
    facts = [_facts(link) for link in chain]
    match = best_match(EXCEPTION_RULES, facts)
    top = facts[0]
    rule, chosen = match if match is not None else (None, top)
    if rule is None or rule.code is None:
        log_raw("exception", repr(exc))
        return build(ErrorCode.UNKNOWN_PROVIDER_ERROR, _cause(top, top, provider), provider=provider)
    return build(rule.code, _cause(chosen, top, provider), provider=provider)


def _facts(exc: BaseException) -> Facts:
    code = type(exc).__name__
    number = getattr(exc, "errno", None)
    if isinstance(exc, OSError) and isinstance(number, int) and number in errno.errorcode:
        code = errno.errorcode[number]  # an OSError is told apart by its errno, not its class
    return Facts(
        provider_code=code,
        http_status=_status(exc),
        message=_read.text(exc),
        types=_read.qualified_names(exc),
    )


def _status(exc: BaseException) -> int | None:
    """The HTTP status an HTTP client error carries (aiohttp, requests, httpx), if any."""
    status = _read.integer(getattr(exc, "status", None))
    if status is None:
        status = _read.integer(getattr(getattr(exc, "response", None), "status_code", None))
    return status if status is not None and 100 <= status <= 599 else None


def _cause(chosen: Facts, top: Facts, provider: str | None) -> Cause:
    outer = top.types[0] if top.types else None
    return Cause(
        provider=provider or "network",
        provider_code=chosen.provider_code,
        provider_message=chosen.message,
        http_status=chosen.http_status,
        # What the caller caught, when the rule matched something it wraps.
        reason=f"raised as {outer}: {top.message or ''}".rstrip(": ") if chosen is not top else None,
    )
