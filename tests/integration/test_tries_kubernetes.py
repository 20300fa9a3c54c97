"""Tries across clears and DAG runs, on Kubernetes: real Airflow (``dag.test()``), the test
cluster's API server and node simulator, the tenant state store on SQLite. Counted on the
provider (the tenant's pods, by their generation label).

``dag.test()`` reruns a logical date under the same run id with Airflow's try number back at 1:
that is how these tests clear a task. The real scheduler's clear is in ``tests/slow``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_compute_provider.hooks.kubernetes_pods import LABEL_GENERATION
from airflow_compute_provider.state.config import open_state_store
from airflow_compute_provider.state.status import TenantStatus
from tests.integration.kubernetes_dags import Code, KubeEnv

pytestmark = [pytest.mark.kube, pytest.mark.airflow]

DAY_1 = datetime(2026, 3, 1, tzinfo=UTC)
DAY_2 = datetime(2026, 3, 2, tzinfo=UTC)


def _run(airflow_env: Any, kube_env: KubeEnv, dag_id: str, when: datetime, **kwargs: Any) -> Any:
    return airflow_env.run_dag(kube_env.dag(dag_id, **kwargs), dag_id, logical_date=when)


def _generations(kube_env: KubeEnv, tenant: str) -> list[tuple[str, str]]:
    return sorted((p.metadata.labels[LABEL_GENERATION], p.status.phase) for p in kube_env.pods_of(tenant))


def test_a_new_dag_run_of_a_custom_execution_id_adopts_what_the_last_run_left(airflow_env, kube_env) -> None:
    tenant = "k-tries-new-run"
    common = {"tenant_id": tenant, "execution_id": "provision-k-tries-new-run", "script": "run:4s,exit:0"}
    first = _run(
        airflow_env, kube_env, "kube_tries_new_run", DAY_1, timeout=Code("timedelta(seconds=1)"), **common
    )
    assert first.state() == "failed"
    assert first.xcom("provision", key="compute_error")["code"] == "OPERATION_TIMEOUT"
    assert _generations(kube_env, tenant) == [("1", "Running")]

    second = _run(
        airflow_env, kube_env, "kube_tries_new_run", DAY_2, timeout=Code("timedelta(seconds=30)"), **common
    )

    assert second.state() == "success", second.xcom("provision", key="compute_error")
    assert _generations(kube_env, tenant) == [("1", "Succeeded")], "adopted, not created again"
    store = open_state_store()
    ops = store.operations(tenant)
    assert [(o.attempt, o.airflow_try_number, o.status.value) for o in ops] == [
        (2, 1, "succeeded"),
        (1, 1, "failed"),
    ]
    assert store.get_tenant(tenant).status is TenantStatus.READY


def test_a_second_clear_adopts_what_the_timed_out_try_left_running(airflow_env, kube_env) -> None:
    tenant = "k-tries-clear"
    assert _run(airflow_env, kube_env, "kube_tries_clear", DAY_1, tenant_id=tenant).state() == "success"

    slow = {"tenant_id": tenant, "script": "run:4s,exit:0"}
    timed_out = _run(
        airflow_env, kube_env, "kube_tries_clear", DAY_1, timeout=Code("timedelta(seconds=1)"), **slow
    )
    assert timed_out.state() == "failed"
    assert _generations(kube_env, tenant) == [("1", "Succeeded"), ("2", "Running")]

    adopted = _run(
        airflow_env, kube_env, "kube_tries_clear", DAY_1, timeout=Code("timedelta(seconds=30)"), **slow
    )

    assert adopted.state() == "success", adopted.xcom("provision", key="compute_error")
    assert _generations(kube_env, tenant) == [("1", "Succeeded"), ("2", "Succeeded")], "no generation 3"
    ops = open_state_store().operations(tenant)
    assert [(o.attempt, o.status.value) for o in ops] == [(3, "succeeded"), (2, "failed"), (1, "succeeded")]
