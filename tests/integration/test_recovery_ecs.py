"""Recovery on ECS end to end: the compute operator leaves loose ends through real Airflow
(``dag.test()``), and the maintenance DAG (``create_maintenance_dag``, and the repository's
``dags/compute_maintenance.py``) follows them to the end against the moto ECS endpoint, with the
fault proxy on the wire.

moto stands in for the AWS cloud itself, which cannot run here; the scripted task outcomes
(``tests/harness/ecs_script.py``) play what ECS would report. Each test has a tenant state
store of its own (a SQLite file behind ``AIRFLOW_CONN_COMPUTE_STATE_DEFAULT``), so an
unfiltered maintenance run sees only what the test made.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_compute_provider.hooks.base import ExecutionRef, LaunchPlan, UnitLaunch
from airflow_compute_provider.hooks.ecs import EcsComputeHook
from airflow_compute_provider.hooks.ecs_tags import TENANT_ID_TAG
from airflow_compute_provider.state import ResourceUpdate, SqlTenantStateStore
from airflow_compute_provider.state.status import (
    OperationStatus,
    ResourceStatus,
    TenantEvent,
    TenantStatus,
)
from tests.harness.ecs import CLUSTER_NAME, REGION, TASK_FAMILY, FAKE_CREDENTIALS
from tests.harness.ecs_script import RUNS_FOREVER, SUCCEEDED, exited
from tests.harness.proxy_faults import ecs_error, ecs_unavailable
from tests.integration.ecs_dags import Code, ecs_dag

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
MAINTENANCE_FILE = REPO / "dags" / "compute_maintenance.py"

_MAINTENANCE = """\
from datetime import timedelta

from airflow_compute_provider.dags import create_maintenance_dag

dag = create_maintenance_dag({dag_id!r}, schedule=None, {arguments})
"""


@pytest.fixture
def state_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SqlTenantStateStore]:
    """A tenant state store of this test's own, where the operators and the maintenance DAG
    find it: behind the default state connection."""
    url = f"sqlite:///{tmp_path / 'compute_state.db'}"
    conn = {"conn_type": "sqlite", "extra": {"sqlalchemy_url": url}}
    monkeypatch.setenv("AIRFLOW_CONN_COMPUTE_STATE_DEFAULT", json.dumps(conn))
    store = SqlTenantStateStore(url)
    yield store
    store.close()


def _aws_connection(endpoint_url: str) -> str:
    # botocore's own retries off, so a fault costs our bounded retries only (fast tests).
    return json.dumps(
        {
            "conn_type": "aws",
            "login": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "password": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "extra": {
                "endpoint_url": endpoint_url,
                "region_name": REGION,
                "config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}},
            },
        }
    )


def _through_proxy(ecs_env: Any, fault_proxy: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    proxy = fault_proxy(ecs_env.endpoint_url)
    ecs_env.route_through(proxy.url)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", _aws_connection(proxy.url))
    return proxy


def _run_compute(airflow_env: Any, ecs_env: Any, dag_id: str, **kwargs: Any) -> Any:
    source = ecs_dag(dag_id, network_configuration=ecs_env.network_configuration, **kwargs)
    return airflow_env.run_dag(source, dag_id)


def _maintain(airflow_env: Any, dag_id: str = "maintenance", **arguments: Any) -> Any:
    arguments.setdefault("cleanup_backoff", Code("timedelta(seconds=0.05)"))
    text = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    return airflow_env.run_dag(_MAINTENANCE.format(dag_id=dag_id, arguments=text), dag_id)


def _tasks_of(ecs_env: Any, tenant_id: str) -> list[dict[str, Any]]:
    arns: list[str] = []
    for desired in ("RUNNING", "STOPPED"):
        arns += ecs_env.ecs.list_tasks(cluster=CLUSTER_NAME, desiredStatus=desired)["taskArns"]
    if not arns:
        return []
    tasks = ecs_env.ecs.describe_tasks(cluster=CLUSTER_NAME, tasks=arns, include=["TAGS"])["tasks"]
    return [t for t in tasks if {"key": TENANT_ID_TAG, "value": tenant_id} in t.get("tags", [])]


# -- timed out, given up, finished later -----------------------------------------------------------


def test_timed_out_work_that_later_succeeds_is_recorded_and_frees_the_tenant(
    airflow_env, ecs_env, state_store
) -> None:
    ecs_env.default_script = RUNS_FOREVER
    run = _run_compute(
        airflow_env, ecs_env, "rec_timeout", tenant_id="rec-timeout", timeout=Code("timedelta(seconds=1)")
    )
    assert run.state() == "failed", "no retry: the workflow gave up"
    assert run.xcom("provision", key="compute_error")["code"] == "OPERATION_TIMEOUT"
    assert state_store.get_tenant("rec-timeout").status is TenantStatus.RETRY_PENDING
    [task] = _tasks_of(ecs_env, "rec-timeout")
    assert task["lastStatus"] == "RUNNING", "a timeout leaves the work running"

    # While the work runs there is nothing to record yet.
    early = airflow_env.run_dag(MAINTENANCE_FILE, "compute_maintenance")
    assert early.state() == "success"
    summary = early.xcom("reconcile")["summary"]
    assert (summary["operations_reconciled"], summary["operations_unsettled"]) == (0, 1)
    assert state_store.list_operations(tenant_id="rec-timeout")[0].eventual_status is None

    ecs_env.stop_task(task["taskArn"], SUCCEEDED)  # the work finishes, long after the try gave up
    later = airflow_env.run_dag(MAINTENANCE_FILE, "compute_maintenance")

    assert later.state() == "success"
    report = later.xcom("reconcile")
    assert report["summary"]["operations_reconciled"] == 1
    [op] = state_store.list_operations(tenant_id="rec-timeout")
    assert (op.status, op.error_code.value) == (OperationStatus.FAILED, "OPERATION_TIMEOUT")
    assert (op.eventual_status, op.eventual_error) == (OperationStatus.SUCCEEDED, None)
    [entry] = state_store.list_resources(tenant_id="rec-timeout")
    assert (entry.status, entry.resource_id) == (ResourceStatus.SUCCEEDED, task["taskArn"])
    tenant = state_store.get_tenant("rec-timeout")
    assert tenant.status is TenantStatus.READY
    move = state_store.transitions("rec-timeout")[0]
    assert (move.from_status, move.to_status) == (TenantStatus.RETRY_PENDING, TenantStatus.READY)
    assert "eventually succeeded" in (move.note or "")
    ready = [i for i in report["items"] if i["action"] == "tenant_ready"]
    assert [i["tenant_id"] for i in ready] == ["rec-timeout"]
