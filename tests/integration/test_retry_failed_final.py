"""``on_partial_failure="retry_failed"`` with no retry to follow acts as ``rollback``
(``rollback.roll_back_left_running``, called from the failure callback once Airflow decided).

Real Airflow (``dag.test()``) and the moto ECS endpoint: RunTask refuses one unit of three with
``RESOURCE:CPU`` (retriable), the other two start and run on. The try fails as PARTIAL_FAILURE
with the two left running for a retry, but the task has no retries: Airflow calls the failure
callback, which stops them, ledgers them ``stopped`` and records the error that says so.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_compute_provider.state.config import open_state_store
from airflow_compute_provider.state.status import ResourceStatus, TenantStatus
from tests.harness.ecs import CLUSTER_NAME
from tests.harness.ecs_script import RUNS_FOREVER
from tests.integration.ecs_dags import ecs_dag

pytestmark = pytest.mark.airflow


def test_retry_failed_without_a_retry_rolls_back_what_it_left_running(airflow_env: Any, ecs_env: Any) -> None:
    ecs_env.default_script = RUNS_FOREVER
    ecs_env.script_next_run_task(failures=[{"reason": "RESOURCE:CPU"}])
    tenant = "retry-failed-final"
    source = ecs_dag(
        "ecs_retry_failed_final",
        network_configuration=ecs_env.network_configuration,
        tenant_id=tenant,
        count=3,
        on_partial_failure="retry_failed",
        retries=0,
    )

    run = airflow_env.run_dag(source, "ecs_retry_failed_final")

    assert run.state() == "failed"
    # what the try itself said: the two started units kept for a retry
    pushed = run.xcom("provision", key="compute_error")
    assert (pushed["code"], pushed["cleanup"]["action"]) == ("PARTIAL_FAILURE", "left_running")
    kept = sorted(pushed["cleanup"]["resources"])
    assert len(kept) == 2
    # no retry came: the failure callback stopped them, on ECS and in the ledger
    described = ecs_env.ecs.describe_tasks(cluster=CLUSTER_NAME, tasks=kept)["tasks"]
    assert {t["desiredStatus"] for t in described} == {"STOPPED"}
    store = open_state_store()
    ledger = store.list_resources(tenant_id=tenant)
    stopped = sorted(e.resource_id for e in ledger if e.status is ResourceStatus.STOPPED)
    assert stopped == kept
    (operation,) = store.operations(tenant)
    assert operation.error is not None
    assert operation.error.code.value == "PARTIAL_FAILURE"
    assert operation.error.cleanup is not None
    assert (operation.error.cleanup.action, sorted(operation.error.cleanup.resources)) == (
        "rolled_back",
        kept,
    )
    # PARTIAL_FAILURE from INSUFFICIENT_CAPACITY is retriable: the tenant is free, retry_pending
    tenant_now = store.get_tenant(tenant)
    assert tenant_now is not None
    assert (tenant_now.status, tenant_now.held) == (TenantStatus.RETRY_PENDING, False)
