"""Every ECS exception as a ``ComputeError``, and the ECS settings of the shared retries.

    as_compute_error(exc)   botocore / aiobotocore exception -> ComputeError (the normalizers)
    retrying(...)           ``hooks.retry`` controllers for sync calls, ECS's normalizer and settings
    async_retrying(...)     the same for coroutines

Only reads and stops go through these: DescribeTasks, ListTasks, DescribeTaskDefinition and
StopTask are safe to repeat. RunTask is not retried here; its failures are the launch's data,
and the lifecycle's retry policy decides what to do with them. botocore retries on its own as
well (``retries`` in the botocore config); the two multiply.
"""

from __future__ import annotations

import logging

import tenacity
from botocore.exceptions import ClientError

from airflow_compute_provider.errors import ComputeError
from airflow_compute_provider.hooks import retry
from airflow_compute_provider.hooks.retry import RetrySettings
from airflow_compute_provider.normalize import ecs as normalize_ecs
from airflow_compute_provider.normalize import from_exception

log = logging.getLogger(__name__)

STATUS_RETRY = RetrySettings(attempts=5, initial_wait=0.2, max_wait=10.0)


def as_compute_error(exc: BaseException) -> ComputeError:
    """The normalized form of any exception an ECS call raised (never raises itself)."""
    if isinstance(exc, ClientError):
        try:
            return normalize_ecs.from_client_error(exc)
        except Exception:
            log.debug("ECS normalizer failed; falling back to the dispatcher", exc_info=True)
    return from_exception(exc)


def retrying(settings: RetrySettings = STATUS_RETRY) -> tenacity.Retrying:
    return retry.retrying(settings, as_compute_error, "ECS")


def async_retrying(settings: RetrySettings = STATUS_RETRY) -> tenacity.AsyncRetrying:
    return retry.async_retrying(settings, as_compute_error, "ECS")
