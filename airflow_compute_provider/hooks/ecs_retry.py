"""Every ECS exception as a ``ComputeError``, and bounded retries of the transient ones.

    as_compute_error(exc)   botocore / aiobotocore exception -> ComputeError (the normalizers)
    retrying(...)           tenacity controller for sync calls
    async_retrying(...)     the same for coroutines (tenacity's AsyncRetrying)

Only reads and stops go through these: DescribeTasks, ListTasks, DescribeTaskDefinition and
StopTask are safe to repeat. RunTask is not retried here; its failures are the launch's data,
and the lifecycle's retry policy decides what to do with them.

Which failure is transient is the normalizers' call: throttling, temporary unavailability and
an unreachable endpoint are retried, honouring the error's ``retry_after_seconds`` when it has
one (capped), else waiting exponentially longer with jitter. After the last attempt the
original exception propagates; the hook turns it into a ``ComputeOperationError``.

botocore retries on its own as well (``retries`` in the botocore config); the two multiply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import tenacity
from botocore.exceptions import ClientError

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.normalize import ecs as normalize_ecs
from airflow_compute_provider.normalize import from_exception

log = logging.getLogger(__name__)

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


STATUS_RETRY = RetrySettings()


def as_compute_error(exc: BaseException) -> ComputeError:
    """The normalized form of any exception an ECS call raised (never raises itself)."""
    if isinstance(exc, ClientError):
        try:
            return normalize_ecs.from_client_error(exc)
        except Exception:
            log.debug("ECS normalizer failed; falling back to the dispatcher", exc_info=True)
    return from_exception(exc)


def is_transient(exc: BaseException) -> bool:
    # Cancellation and interrupts are never retried, whatever a normalizer would make of them.
    return isinstance(exc, Exception) and as_compute_error(exc).code in TRANSIENT_CODES


class _RetryAfterOrBackoff(tenacity.wait.wait_base):
    """The provider's hint when it gave one, else exponential backoff with jitter."""

    def __init__(self, settings: RetrySettings) -> None:
        self._max = settings.max_wait
        self._backoff = tenacity.wait_random_exponential(
            multiplier=settings.initial_wait, max=settings.max_wait
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        hint = as_compute_error(exc).retry_after_seconds if exc is not None else None
        if hint is not None:
            return min(float(hint), self._max)
        return float(self._backoff(retry_state))


def _log_retry(retry_state: tenacity.RetryCallState) -> None:
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None else None
    wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
    log.warning(
        "ECS call failed transiently (attempt %d, %s); retrying in %.2fs",
        retry_state.attempt_number,
        as_compute_error(exc).code.value if exc is not None else "?",
        wait,
    )


def retrying(settings: RetrySettings = STATUS_RETRY) -> tenacity.Retrying:
    """Sync: ``retrying()(client.describe_tasks, cluster=..., tasks=...)``."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(settings.attempts),
        wait=_RetryAfterOrBackoff(settings),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=_log_retry,
        reraise=True,
    )


def async_retrying(settings: RetrySettings = STATUS_RETRY) -> tenacity.AsyncRetrying:
    """Async: ``await async_retrying()(client.describe_tasks, cluster=..., tasks=...)``."""
    return tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(settings.attempts),
        wait=_RetryAfterOrBackoff(settings),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=_log_retry,
        reraise=True,
    )
