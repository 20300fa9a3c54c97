"""Bounded retries of transient Kubernetes API failures, for the sync and the async client.

Which failure is transient, and how long the server asked us to wait, is the normalizers'
call: a failure whose normalized code is throttling, temporary unavailability or an
unreachable server is retried; its ``retry_after_seconds`` (a 429's ``Retry-After``) is
honoured, capped; otherwise the wait grows exponentially with jitter. After the last attempt
the original exception propagates, for the caller to normalize once more and report.

Every call we retry is safe to repeat: reads and lists, deletes (a second one is a 404) and
creates (a second one is a 409 for our own name, which the hook adopts).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import tenacity

from airflow_compute_provider.errors import ErrorCode
from airflow_compute_provider.normalize import from_exception

log = logging.getLogger(__name__)

PROVIDER = "kubernetes"

TRANSIENT_CODES = frozenset(
    {
        ErrorCode.PROVIDER_THROTTLED,
        ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE,
        ErrorCode.PROVIDER_UNREACHABLE,
    }
)


@dataclass(frozen=True)
class RetrySettings:
    """How hard to try: ``attempts`` in all, waits between ``initial_wait`` and ``max_wait``."""

    attempts: int = 5
    initial_wait: float = 0.5
    max_wait: float = 20.0


def is_transient(exc: BaseException) -> bool:
    return from_exception(exc, PROVIDER).code in TRANSIENT_CODES


class _RetryAfterOrBackoff(tenacity.wait.wait_base):
    """The server's ``Retry-After`` when it gave one, else exponential backoff with jitter."""

    def __init__(self, settings: RetrySettings) -> None:
        self._settings = settings
        self._backoff = tenacity.wait_random_exponential(
            multiplier=settings.initial_wait, max=settings.max_wait
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        hint = from_exception(exc, PROVIDER).retry_after_seconds if exc is not None else None
        if hint is not None:
            return min(float(hint), self._settings.max_wait)
        return float(self._backoff(retry_state))


def _log_retry(retry_state: tenacity.RetryCallState) -> None:
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None else None
    wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
    log.warning(
        "Kubernetes API call failed transiently (attempt %d): %s; retrying in %.1fs",
        retry_state.attempt_number,
        from_exception(exc, PROVIDER).code.value if exc is not None else "?",
        wait,
    )


def retrying(settings: RetrySettings) -> tenacity.Retrying:
    """A tenacity controller for sync calls: ``retrying(s)(fn, *args, **kwargs)``."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(settings.attempts),
        wait=_RetryAfterOrBackoff(settings),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=_log_retry,
        reraise=True,
    )


def async_retrying(settings: RetrySettings) -> tenacity.AsyncRetrying:
    """The same for coroutines: ``await async_retrying(s)(coro_fn, *args, **kwargs)``."""
    return tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(settings.attempts),
        wait=_RetryAfterOrBackoff(settings),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=_log_retry,
        reraise=True,
    )
