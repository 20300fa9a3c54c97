"""The distributed stack for the tests marked ``distributed``: one per session, in a temp home.

celery_stack   ``CeleryStack`` (tests/harness/celery_stack.py) started with docker-compose's
               settings plus test pacing: fast heartbeats, a triggerer takes over a silent
               one's triggers after 10 s, a task whose worker died is failed by the scheduler
               after 30 s (then retried as its policy says), four task slots per worker.
               No clouds: each test brings its own moto and Kubernetes namespace and writes
               connections of its own names through the REST API (compose's AIRFLOW_CONN_*
               variables would shadow ``aws_default`` written there).
stack_client   the REST client, logged in as compose's admin
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.airflow_stack import AirflowRestClient
from tests.harness.celery_stack import ADMIN_PASSWORD, ADMIN_USER, CeleryStack

__all__ = ["celery_stack", "stack_client"]

TEST_PACING = {
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    # a scheduler restarted after the PostgreSQL restart adopts its dead predecessor's task
    # instances (only then does it fail the ones whose worker died) after this long
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "20",
    # task messages the killed worker had prefetched stay unacknowledged in Redis (redelivered
    # only after the broker's visibility timeout, a day): the scheduler queues them again
    # after this long in "queued" (default 600 s)
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
    "AIRFLOW__CORE__PARALLELISM": "32",
    "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "32",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
    "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__API__WORKERS": "1",
    "AIRFLOW__API__MAXIMUM_PAGE_LIMIT": "1000",  # the full soak's DAGs have 100 tasks each
    # the provider's own loggers at DEBUG in every process, so the canary scan sees the most
    "AIRFLOW__LOGGING__NAMESPACE_LEVELS": "airflow_compute_provider=DEBUG",
}


@pytest.fixture(scope="session")
def celery_stack() -> Iterator[CeleryStack]:
    home = Path(tempfile.mkdtemp(prefix="compute-celery-stack-"))
    dags = home / "dags"
    dags.mkdir()
    stack = CeleryStack(home, dags_folder=dags, extra_env=TEST_PACING)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_client(celery_stack: CeleryStack) -> AirflowRestClient:
    return AirflowRestClient(celery_stack.base_url, ADMIN_USER, ADMIN_PASSWORD)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.distributed.test_soak import SUMMARY

    if SUMMARY:
        terminalreporter.section("distributed")
        for line in SUMMARY:
            terminalreporter.write_line(line)
