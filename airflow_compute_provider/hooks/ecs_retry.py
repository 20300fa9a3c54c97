"""Every ECS exception as a ``ComputeError``, and the one retry layer of every ECS call.

    as_compute_error(exc)     botocore / aiobotocore exception -> ComputeError (the normalizers)
    retrying(...)             ``hooks.retry`` controllers for sync calls, ECS's normalizer and settings
    async_retrying(...)       the same for coroutines
    request_budget(...)       the process-wide budget (``hooks.budget``) of an ECS operation group
    without_botocore_retries  a botocore ``Config`` dict with botocore's own retries off

One retry layer: botocore's retries are turned off for every client the hook builds
(``total_max_attempts=1``) and tenacity retries here, each attempt paced by the process-wide
budget of its operation group (RunTask, StopTask, the reads), shared by every ECS hook and
client of the process. Why not botocore's ``adaptive`` mode, which keeps a client-side token
bucket too: its bucket lives in one client, and every hook (every try) builds its own, so fifty
tries launching together are fifty uncoordinated buckets; it also retries RunTask on any
transient error, where only a throttle is known not to have started anything. Measured in
``bench/launch.py`` (bench/README.md, "Launches under rate limits").

What is retried: reads (DescribeTasks, ListTasks, DescribeTaskDefinition) and StopTask on any
transient failure, as they are safe to repeat; RunTask on any transient failure too (a
throttle, a 5xx, a dropped connection), since the unit's ``clientToken`` makes a repeat
idempotent: a RunTask that did start its task before its answer was lost gets that same task
back. Any other RunTask failure (capacity, quota, configuration) is the launch's data, and the
lifecycle's retry policy decides.
"""

from __future__ import annotations

import logging

import tenacity
from botocore.config import Config
from botocore.exceptions import ClientError

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.hooks import budget, retry
from airflow_compute_provider.hooks.budget import AdaptiveBudget, BudgetSettings
from airflow_compute_provider.hooks.retry import RetrySettings
from airflow_compute_provider.normalize import ecs as normalize_ecs
from airflow_compute_provider.normalize import from_exception

log = logging.getLogger(__name__)

STATUS_RETRY = RetrySettings(attempts=5, initial_wait=0.2, max_wait=10.0, throttle_wait=0.5)
#: RunTask: any transient failure (the clientToken makes a repeat idempotent), patiently: the
#: budget paces each attempt, and a launch burst of many tries may wait its turn several times
LAUNCH_RETRY = RetrySettings(attempts=10, initial_wait=0.2, max_wait=10.0, throttle_wait=0.5)
#: StopTask: any transient failure, throttles paced by the budget
STOP_RETRY = RetrySettings(attempts=8, initial_wait=0.2, max_wait=10.0, throttle_wait=0.5)

#: Where each operation group's budget starts. ECS refills RunTask's bucket more slowly than the
#: reads' (request-throttling page above); the budget learns the real rate from throttles.
BUDGETS: dict[str, BudgetSettings] = {
    "RunTask": BudgetSettings(initial_rate=10.0, max_in_flight=64),
    "StopTask": BudgetSettings(initial_rate=10.0, max_in_flight=64),
    "read": BudgetSettings(initial_rate=20.0, max_in_flight=64),
}


def as_compute_error(exc: BaseException) -> ComputeError:
    """The normalized form of any exception an ECS call raised (never raises itself)."""
    if isinstance(exc, ClientError):
        try:
            return normalize_ecs.from_client_error(exc)
        except Exception:
            log.debug("ECS normalizer failed; falling back to the dispatcher", exc_info=True)
    return from_exception(exc)


def is_throttle(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and as_compute_error(exc).code is ErrorCode.PROVIDER_THROTTLED


def request_budget(aws_conn_id: str | None, region: str | None, group: str) -> AdaptiveBudget:
    """The process's budget for ``group`` ("RunTask", "StopTask" or "read") in one account
    (connection) and region: ECS throttles per account and Region."""
    return budget.budget(("ecs", aws_conn_id, region, group), BUDGETS[group], is_throttle)


def without_botocore_retries(config: Config | None) -> Config:
    """A botocore ``Config`` with botocore's own retries off (ours are the only layer); every
    other option of ``config`` (the hook's, or the connection's ``config_kwargs``) is kept."""
    return (config or Config()).merge(Config(retries={"mode": "standard", "total_max_attempts": 1}))


def retrying(settings: RetrySettings = STATUS_RETRY) -> tenacity.Retrying:
    return retry.retrying(settings, as_compute_error, "ECS")


def async_retrying(settings: RetrySettings = STATUS_RETRY) -> tenacity.AsyncRetrying:
    return retry.async_retrying(settings, as_compute_error, "ECS")
