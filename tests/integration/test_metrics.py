"""Compute metrics as a StatsD server receives them: real UDP packets from a real DAG run.

The test binds a UDP socket on a loopback port and points Airflow's own StatsD client at it
(``[metrics] statsd_on``, with InfluxDB-style tags so the tags travel in the packets). One DAG,
run by ``dag.test()`` in a child process on the moto ECS endpoint (moto stands in for the AWS
cloud) behind the fault proxy, goes through every event the lifecycle counts:

    ok        two units launched, seen running, succeeded
    adopt     try 1 times out with its unit left running; try 2 adopts that unit
    partial   three units: RunTask refuses unit 2, so the rollback stops units 0 and 1, but
              the first StopTask is refused: one unit rolled back, one marked for cleanup,
              the try fails CLEANUP_FAILED
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from airflow_compute_provider.hooks.ecs_tags import TENANT_ID_TAG
from tests.harness.ecs import CLUSTER_NAME, TASK_FAMILY
from tests.harness.ecs_script import TaskScript
from tests.harness.proxy_faults import ecs_error

pytestmark = pytest.mark.airflow

DAG_ID = "compute_metrics"

_DAG = """\
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_compute_provider.operators.ecs import EcsComputeOperator

COMMON = dict(
    operation="provision",
    cluster={cluster!r},
    task_definition={task_definition!r},
    launch_type="FARGATE",
    network_configuration={network!r},
    poll_interval=0.2,
    retry_delay=timedelta(seconds=0),
    deferrable=False,
    trigger_rule="all_done",
)

with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None, catchup=False):
    ok = EcsComputeOperator(task_id="ok", tenant_id="m-ok", count=2, **COMMON)
    adopt = EcsComputeOperator(
        task_id="adopt",
        tenant_id="m-adopt",
        timeout=timedelta(seconds=1),
        timeout_factor=20.0,
        retries=1,
        **COMMON,
    )
    partial = EcsComputeOperator(task_id="partial", tenant_id="m-partial", count=3, **COMMON)
    ok >> adopt >> partial
"""


def _partial_unit_2(body: Any) -> bool:
    tags = {t.get("key"): t.get("value") for t in body.get("tags", [])}
    return tags.get(TENANT_ID_TAG) == "m-partial" and "-u2-" in body.get("clientToken", "")


def test_the_lifecycle_emits_its_metrics_to_statsd(airflow_env, ecs_env, fault_proxy, statsd) -> None:
    proxy = fault_proxy(ecs_env.endpoint_url)
    ecs_env.route_through(proxy.url)
    # adopt: running for more describes than try 1's one-second timeout allows; try 2 (20 s)
    # adopts it and waits for the end. Scripts apply per tenant through the task's tags.
    ecs_env.script_tasks(TaskScript(running=12), where=lambda task: task.tags.get(TENANT_ID_TAG) == "m-adopt")
    ecs_env.script_next_run_task(failures=[{"reason": "RESOURCE:MEMORY"}], where=_partial_unit_2)
    # the only StopTask calls come from the partial task's rollback; the first one is refused
    proxy.add_rule(
        ecs_error("AccessDeniedException", "not authorized to perform ecs:StopTask"),
        operation="StopTask",
        times=1,
    )
    source = _DAG.format(
        dag_id=DAG_ID,
        cluster=CLUSTER_NAME,
        task_definition=TASK_FAMILY,
        network=ecs_env.network_configuration,
    )
    child = airflow_env.run_dag_in_subprocess(
        source,
        DAG_ID,
        env=statsd.airflow_env(),
    )
    child.wait(timeout=240)
    states = child.record.task_states()
    assert states == {"ok": "success", "adopt": "success", "partial": "failed"}, child.log_text()[-4000:]

    ecs = {"provider": "ecs"}
    # 2 (ok) + 1 (adopt, try 1) + 2 (partial: unit 2 refused)
    assert statsd.total("airflow.compute.launches", **ecs) == 5
    assert statsd.total("airflow.compute.adoptions", **ecs) == 1
    assert statsd.total("airflow.compute.rollbacks", **ecs) == 1
    assert statsd.total("airflow.compute.cleanups", provider="ecs", action="marked") == 1

    errors = Counter(
        (p.tags["code"], p.tags["classification"], p.tags["provider"])
        for p in statsd.packets("airflow.compute.errors")
        for _ in range(int(p.value))
    )
    assert errors == Counter(
        {
            ("OPERATION_TIMEOUT", "retriable", "ecs"): 1,
            ("CLEANUP_FAILED", "requires_manual_intervention", "ecs"): 1,
        }
    )
    # the named copies for plain StatsD, where tags are dropped
    assert statsd.total("airflow.compute.errors.ecs.CLEANUP_FAILED") == 1
    assert statsd.total("airflow.compute.errors.ecs.OPERATION_TIMEOUT") == 1
    assert statsd.total("airflow.compute.launches.ecs") == 5

    timings = statsd.packets("airflow.compute.launch_to_running")
    # every unit first seen running by the lifecycle: ok's two and adopt's one (by try 1's
    # polls, or by try 2 adopting it); the partial task's were stopped before anyone looked
    assert len(timings) == 3
    assert {p.kind for p in timings} == {"ms"}
    assert {p.tags["provider"] for p in timings} == {"ecs"}
    assert all(p.value > 0 for p in timings)
