"""ECS launches and stops under throttling: one retry layer, one request budget per process.

Real parts: moto's ECS server (``ecs_env``) behind the fault proxy, which answers with ECS's own
400 ``ThrottlingException`` "Rate exceeded". The budget's pacing is time; nothing here asserts a
time, only request counts, launches and the budget's state.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from airflow_compute_provider.hooks.base import ExecutionRef
from airflow_compute_provider.hooks.ecs import EcsComputeHook
from airflow_compute_provider.hooks.ecs_retry import BUDGETS, STATUS_RETRY
from airflow_compute_provider.hooks.ecs_tags import EXEC_KEY_TAG, UNIT_INDEX_TAG
from tests.harness.ecs import aws_connection_json
from tests.harness.ecs_script import RUNS_FOREVER
from tests.harness.proxy_faults import ecs_throttle
from tests.integration.test_ecs_hook import make_plan, started_tasks, tags_of, through_proxy

EXECUTION = ExecutionRef(tenant_id="tenant-b", execution_id="dag_budget:manual__2026-01-02:task:-1")


def tasks_per_unit(ecs_env: Any, execution: ExecutionRef) -> dict[str, int]:
    arns = ecs_env.ecs.list_tasks(cluster=ecs_env.cluster_name, startedBy=execution.key)["taskArns"]
    tasks = ecs_env.ecs.describe_tasks(cluster=ecs_env.cluster_name, tasks=arns, include=["TAGS"])["tasks"]
    counts: dict[str, int] = {}
    for task in tasks:
        tags = tags_of(task)
        assert tags[EXEC_KEY_TAG] == execution.key
        counts[tags[UNIT_INDEX_TAG]] = counts.get(tags[UNIT_INDEX_TAG], 0) + 1
    return counts


def test_a_throttled_run_task_is_retried_and_launches_each_unit_once(ecs_env: Any, fault_proxy: Any) -> None:
    ecs_env.default_script = RUNS_FOREVER
    proxy = through_proxy(ecs_env, fault_proxy)
    proxy.add_rule(ecs_throttle(), operation="RunTask", times=3)
    hook = EcsComputeHook(cluster=ecs_env.cluster_name)

    result = hook.launch(make_plan(ecs_env, 4, execution=EXECUTION))

    assert result.refused == []
    assert sorted(u.index for u in result.launched) == [0, 1, 2, 3]
    assert proxy.counts["RunTask"] == 7
    assert proxy.counts.faulted["RunTask"] == 3
    assert tasks_per_unit(ecs_env, EXECUTION) == {"0": 1, "1": 1, "2": 1, "3": 1}


def test_botocore_retries_are_off_so_the_hooks_are_the_only_layer(ecs_env: Any, fault_proxy: Any) -> None:
    units = started_tasks(ecs_env, 1)
    proxy = through_proxy(ecs_env, fault_proxy)
    proxy.add_rule(ecs_throttle(), operation="DescribeTasks")
    # No botocore_config at all: botocore's default (legacy mode, 5 attempts) would multiply.
    hook = EcsComputeHook(cluster=ecs_env.cluster_name, botocore_config={"retries": {"max_attempts": 9}})

    with contextlib.suppress(Exception):
        hook.describe(units)

    assert proxy.counts["DescribeTasks"] == STATUS_RETRY.attempts
    # and the round trip keeps what the user gave
    assert hook.backend_config()["botocore_config"] == {"retries": {"max_attempts": 9}}


def test_every_ecs_hook_of_the_process_shares_one_budget(ecs_env: Any, fault_proxy: Any) -> None:
    ecs_env.default_script = RUNS_FOREVER
    proxy = through_proxy(ecs_env, fault_proxy)
    proxy.add_rule(ecs_throttle(), operation="RunTask", times=1)
    first = EcsComputeHook(cluster=ecs_env.cluster_name)
    second = EcsComputeHook(cluster=ecs_env.cluster_name)

    assert first.launch(make_plan(ecs_env, 1, execution=EXECUTION)).refused == []

    # The throttle one hook met slows every other hook's RunTask of the same account and region.
    budget = second._budget("RunTask")
    assert budget is first._budget("RunTask")
    assert budget.stats.throttled == 1
    assert budget.stats.cuts == 1
    assert budget.rate < BUDGETS["RunTask"].initial_rate + 2 * BUDGETS["RunTask"].slow_start
    # A different group keeps its own budget: reads are not slowed by RunTask's throttle.
    assert second._budget("read") is not budget
    assert second._budget("read").stats.cuts == 0


def test_stop_retries_throttles_through_the_budget(ecs_env: Any, fault_proxy: Any) -> None:
    ecs_env.default_script = RUNS_FOREVER
    proxy = through_proxy(ecs_env, fault_proxy)
    hook = EcsComputeHook(cluster=ecs_env.cluster_name)
    launched = hook.launch(make_plan(ecs_env, 3, execution=EXECUTION)).launched
    proxy.add_rule(ecs_throttle(), operation="StopTask", times=4)

    assert hook.stop(launched, "rollback") == []

    assert proxy.counts["StopTask"] == 7
    assert hook._budget("StopTask").stats.throttled == 4
    assert hook._budget("StopTask").in_flight_limit < BUDGETS["StopTask"].max_in_flight


def test_the_connections_botocore_settings_stay_and_only_retries_are_replaced(
    ecs_env: Any, monkeypatch: Any
) -> None:
    connection = json.loads(aws_connection_json(ecs_env.moto_url))
    connection["extra"]["config_kwargs"] = {"connect_timeout": 7, "retries": {"max_attempts": 9}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))

    config = EcsComputeHook(cluster=ecs_env.cluster_name).conn_config.botocore_config

    assert config.connect_timeout == 7
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
