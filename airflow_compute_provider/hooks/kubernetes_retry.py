"""The Kubernetes settings of the shared retries (``hooks.retry``).

Every call retried through here is safe to repeat: reads and lists, deletes (a second one is a
404) and creates (a second one is a 409 for our own name, which the hook adopts).
"""

from __future__ import annotations

import tenacity

from airflow_compute_provider.errors import ComputeError
from airflow_compute_provider.hooks import retry
from airflow_compute_provider.hooks.retry import RetrySettings
from airflow_compute_provider.normalize import from_exception

PROVIDER = "kubernetes"

DEFAULT_RETRY = RetrySettings(attempts=5, initial_wait=0.5, max_wait=20.0)


def as_compute_error(exc: BaseException) -> ComputeError:
    return from_exception(exc, PROVIDER)


def retrying(settings: RetrySettings = DEFAULT_RETRY) -> tenacity.Retrying:
    return retry.retrying(settings, as_compute_error, "Kubernetes API")


def async_retrying(settings: RetrySettings = DEFAULT_RETRY) -> tenacity.AsyncRetrying:
    return retry.async_retrying(settings, as_compute_error, "Kubernetes API")


__all__ = ["DEFAULT_RETRY", "RetrySettings", "as_compute_error", "async_retrying", "retrying"]
