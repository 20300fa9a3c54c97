"""Tries across clears and DAG runs, on both providers: real Airflow (``dag.test()``), the moto
ECS endpoint or the test cluster's API server and node simulator, the tenant state store on
SQLite. Counted on the provider (moto's tasks by their tags, the tenant's pods by their labels).

``dag.test()`` reruns a logical date under the same run id with Airflow's try number back at 1:
that is how these tests clear a task (it never bumps the try number; the store numbers tries
itself, so it does not need to). The real scheduler's clear is in ``tests/slow``. One test runs
over both providers (``side``); what only ECS shows is in ``test_tries_ecs.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_compute_provider.hooks.ecs_tags import GENERATION_TAG
from airflow_compute_provider.hooks.kubernetes_pods import LABEL_GENERATION
from airflow_compute_provider.state.config import open_state_store
from airflow_compute_provider.state.status import TenantStatus
from tests.harness.ecs_script import TaskScript
from tests.integration.ecs_dags import Code, ecs_dag
from tests.integration.test_ecs_operator import _tag, _tasks_of

pytestmark = pytest.mark.airflow

DAY_1 = datetime(2026, 3, 1, tzinfo=UTC)
DAY_2 = datetime(2026, 3, 2, tzinfo=UTC)


class _Side:
    """One provider as these tests see it: a DAG of its operator, units that outlive a 1 s try
    and end within the next, and the tenant's units as (generation, still running)."""

    def __init__(
        self, name: str, run: Callable[..., Any], generations: Callable[[str], list[tuple[int, bool]]]
    ) -> None:
        #: ``run(dag_id, logical_date, slow=False, **operator_arguments)``: the DAG run
        self.name, self.run, self.generations = name, run, generations


@pytest.fixture(params=["ecs", pytest.param("kubernetes", marks=pytest.mark.kube)])
def side(request: pytest.FixtureRequest, airflow_env: Any) -> _Side:
    if request.param == "ecs":
        ecs_env = request.getfixturevalue("ecs_env")

        def run_ecs(dag_id: str, when: datetime, slow: bool = False, **kwargs: Any) -> Any:
            if slow:  # about 5 polls in a 1 s try, then it ends within the next
                ecs_env.default_script = TaskScript(running=12)
            source = ecs_dag(dag_id, network_configuration=ecs_env.network_configuration, **kwargs)
            return airflow_env.run_dag(source, dag_id, logical_date=when)

        def ecs_generations(tenant: str) -> list[tuple[int, bool]]:
            tasks = _tasks_of(ecs_env, tenant)
            return sorted((int(_tag(t, GENERATION_TAG)), t["lastStatus"] == "RUNNING") for t in tasks)

        return _Side("ecs", run_ecs, ecs_generations)

    kube_env = request.getfixturevalue("kube_env")

    def run_kube(dag_id: str, when: datetime, slow: bool = False, **kwargs: Any) -> Any:
        if slow:
            kwargs["script"] = "run:4s,exit:0"
        return airflow_env.run_dag(kube_env.dag(dag_id, **kwargs), dag_id, logical_date=when)

    def kube_generations(tenant: str) -> list[tuple[int, bool]]:
        pods = kube_env.pods_of(tenant)
        return sorted((int(p.metadata.labels[LABEL_GENERATION]), p.status.phase == "Running") for p in pods)

    return _Side("kubernetes", run_kube, kube_generations)


def test_a_new_dag_run_of_a_custom_execution_id_adopts_what_the_last_run_left(side: _Side) -> None:
    """Run 1 times out and leaves its unit running; run 2 (a new run id, Airflow's try 1 again)
    of the same ``execution_id`` is that execution's try 2 and adopts the unit. Before the store
    numbered tries, run 2 got CONFLICT: attempt 1 already ran."""
    tenant, dag_id = f"tries-new-run-{side.name[0]}", f"{side.name}_tries_new_run"
    common = {"tenant_id": tenant, "execution_id": f"provision-{tenant}", "slow": True}
    first = side.run(dag_id, DAY_1, timeout=Code("timedelta(seconds=1)"), **common)
    assert first.state() == "failed"
    assert first.xcom("provision", key="compute_error")["code"] == "OPERATION_TIMEOUT"
    assert side.generations(tenant) == [(1, True)]

    second = side.run(dag_id, DAY_2, timeout=Code("timedelta(seconds=30)"), **common)

    assert second.state() == "success", second.xcom("provision", key="compute_error")
    assert second.run_id != first.run_id
    assert side.generations(tenant) == [(1, False)], "adopted, not launched again"
    store = open_state_store()
    ops = store.operations(tenant)
    assert [(o.attempt, o.airflow_try_number, o.status.value) for o in ops] == [
        (2, 1, "succeeded"),
        (1, 1, "failed"),
    ]
    assert store.get_tenant(tenant).status is TenantStatus.READY


def test_a_second_clear_adopts_what_the_timed_out_try_left_running(side: _Side) -> None:
    """Success; clear -> a try that launches generation 2 and times out, leaving it running;
    clear -> the third try adopts generation 2. Before, it saw the first try's success and
    launched generation 3 beside the running generation 2."""
    tenant, dag_id = f"tries-clear-{side.name[0]}", f"{side.name}_tries_clear"
    assert side.run(dag_id, DAY_1, tenant_id=tenant).state() == "success"

    timed_out = side.run(dag_id, DAY_1, tenant_id=tenant, slow=True, timeout=Code("timedelta(seconds=1)"))
    assert timed_out.state() == "failed"
    assert side.generations(tenant) == [(1, False), (2, True)]

    adopted = side.run(dag_id, DAY_1, tenant_id=tenant, slow=True, timeout=Code("timedelta(seconds=30)"))

    assert adopted.state() == "success", adopted.xcom("provision", key="compute_error")
    assert side.generations(tenant) == [(1, False), (2, False)], "no generation 3"
    ops = open_state_store().operations(tenant)
    assert [(o.attempt, o.status.value) for o in ops] == [(3, "succeeded"), (2, "failed"), (1, "succeeded")]
