"""Bounded retries of transient provider failures, shared by both hooks, sync and async.

    RetrySettings                     how hard to try: attempts, and the range of waits
    retrying(settings, normalize)     a tenacity controller for sync calls
    async_retrying(settings, ...)     the same for coroutines

Which failure is transient, and how long the provider asked us to wait, is the normalizers'
call (``normalize`` turns an exception into its ``ComputeError``): throttling, temporary
unavailability and an unreachable endpoint are retried; an error's ``retry_after_seconds``
(``Retry-After``) is honoured, capped at ``max_wait``; otherwise the wait grows exponentially
with jitter. After the last attempt the original exception propagates, for the hook to report.
Only calls that are safe to repeat go through here; each hook says which in its own module.

A call paced by a shared request budget (``hooks.budget``) sets ``throttle_wait``: the budget
already queues the retry behind everyone else's requests, so a throttled attempt waits only a
little jitter here instead of a growing backoff of its own (two pacers would multiply).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from airflow_compute_provider.errors import ComputeError, ErrorCode

log = logging.getLogger(__name__)

Normalize = Callable[[BaseException], ComputeError]

TRANSIENT_CODES = frozenset(
    {
        ErrorCode.PROVIDER_THROTTLED,
        ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE,
        ErrorCode.PROVIDER_UNREACHABLE,
    }
)


@dataclass(frozen=True)
class RetrySettings:
    """How hard to try: ``attempts`` in all, waits growing from ``initial_wait`` to ``max_wait``."""

    attempts: int = 5
    initial_wait: float = 0.2
    max_wait: float = 10.0
    #: which failures are retried (by their normalized code)
    codes: frozenset[ErrorCode] = TRANSIENT_CODES
    #: when set, a throttled attempt waits a random time up to this (a budget paces the retry)
    throttle_wait: float | None = None


def transient(
    normalize: Normalize, codes: frozenset[ErrorCode] = TRANSIENT_CODES
) -> Callable[[BaseException], bool]:
    def is_transient(exc: BaseException) -> bool:
        # Cancellation and interrupts are never retried, whatever a normalizer makes of them.
        return isinstance(exc, Exception) and normalize(exc).code in codes

    return is_transient


class _RetryAfterOrBackoff(tenacity.wait.wait_base):
    """The provider's hint when it gave one, else exponential backoff with jitter."""

    def __init__(self, settings: RetrySettings, normalize: Normalize) -> None:
        self._max = settings.max_wait
        self._throttle_wait = settings.throttle_wait
        self._normalize = normalize
        self._backoff = tenacity.wait_random_exponential(
            multiplier=settings.initial_wait, max=settings.max_wait
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        error = self._normalize(exc) if exc is not None else None
        if (
            self._throttle_wait is not None
            and error is not None
            and error.code is ErrorCode.PROVIDER_THROTTLED
        ):
            return random.uniform(0.0, self._throttle_wait)
        hint = error.retry_after_seconds if error is not None else None
        if hint is not None:
            return min(float(hint), self._max)
        return float(self._backoff(retry_state))


def _logger(normalize: Normalize, what: str) -> Callable[[tenacity.RetryCallState], None]:
    def log_retry(retry_state: tenacity.RetryCallState) -> None:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.warning(
            "%s call failed transiently (attempt %d, %s); retrying in %.2fs",
            what,
            retry_state.attempt_number,
            normalize(exc).code.value if exc is not None else "?",
            wait,
        )

    return log_retry


def retrying(settings: RetrySettings, normalize: Normalize, what: str) -> tenacity.Retrying:
    """Sync: ``retrying(settings, normalize, "ECS")(client.describe_tasks, cluster=..., tasks=...)``."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(settings.attempts),
        wait=_RetryAfterOrBackoff(settings, normalize),
        retry=tenacity.retry_if_exception(transient(normalize, settings.codes)),
        before_sleep=_logger(normalize, what),
        reraise=True,
    )


def async_retrying(settings: RetrySettings, normalize: Normalize, what: str) -> tenacity.AsyncRetrying:
    """Async: ``await async_retrying(settings, normalize, "ECS")(coroutine_function, ...)``."""
    return tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(settings.attempts),
        wait=_RetryAfterOrBackoff(settings, normalize),
        retry=tenacity.retry_if_exception(transient(normalize, settings.codes)),
        before_sleep=_logger(normalize, what),
        reraise=True,
    )
