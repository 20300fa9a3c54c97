"""Tries across clears, what only ECS shows here: real Airflow (``dag.test()``), the moto ECS
endpoint, the tenant state store on SQLite. Counted on the provider (moto's tasks, by their
tags). What both providers show is ``test_tries.py``.

``dag.test()`` reruns a logical date under the same run id with Airflow's try number back at 1:
that is how these tests clear a task (it never bumps the try number; the store numbers tries
itself, so it does not need to). The real scheduler's clear is in ``tests/slow``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_compute_provider.hooks.ecs_tags import GENERATION_TAG, UNIT_INDEX_TAG
from airflow_compute_provider.state.config import open_state_store
from tests.harness.ecs_script import SPOT_INTERRUPTED, TaskScript
from tests.integration.ecs_dags import ecs_dag
from tests.integration.test_ecs_operator import _tag, _tasks_of

pytestmark = pytest.mark.airflow

DAY_1 = datetime(2026, 3, 1, tzinfo=UTC)
DAY_2 = datetime(2026, 3, 2, tzinfo=UTC)


def _run(airflow_env: Any, ecs_env: Any, dag_id: str, when: datetime, **kwargs: Any) -> Any:
    source = ecs_dag(dag_id, network_configuration=ecs_env.network_configuration, **kwargs)
    return airflow_env.run_dag(source, dag_id, logical_date=when)


def _generations(ecs_env: Any, tenant: str) -> list[tuple[int, int, str]]:
    return sorted(
        (int(_tag(t, UNIT_INDEX_TAG)), int(_tag(t, GENERATION_TAG)), t["lastStatus"])
        for t in _tasks_of(ecs_env, tenant)
    )


def test_after_a_clear_a_retry_relaunches_only_the_failed_unit(airflow_env, ecs_env) -> None:
    """Success; clear -> try 2: unit 0 succeeds again, unit 1 is interrupted (retry_failed, a
    retry follows); try 3 relaunches only unit 1, since the newest earlier try (2) did not
    succeed. Looking at any earlier try instead (try 1 succeeded) runs unit 0 a third time."""
    tenant = "tries-partial"
    args = {"tenant_id": tenant, "count": 2, "on_partial_failure": "retry_failed", "retries": 1}
    assert _run(airflow_env, ecs_env, "ecs_tries_partial", DAY_1, **args).state() == "success"

    ecs_env.script_tasks(
        TaskScript(outcome=SPOT_INTERRUPTED), where=lambda info: info.tags.get(UNIT_INDEX_TAG) == "1"
    )
    cleared = _run(airflow_env, ecs_env, "ecs_tries_partial", DAY_1, **args)

    assert cleared.state() == "success", cleared.xcom("provision", key="compute_error")
    assert cleared.try_numbers()["provision"] == 2
    assert [(u, g) for u, g, _ in _generations(ecs_env, tenant)] == [(0, 1), (0, 2), (1, 1), (1, 2), (1, 3)]
    ops = open_state_store().operations(tenant)
    assert [(o.attempt, o.airflow_try_number, o.status.value) for o in ops] == [
        (3, 2, "succeeded"),
        (2, 1, "failed"),
        (1, 1, "succeeded"),
    ]
