"""The DAG of the triggerer-restart test (``tests/reliability/test_triggerer_restart.py``), run by
the ``airflow standalone`` stack: deferrable compute operations on ECS (moto) and Kubernetes (the
local API server and node simulator), all waiting in the triggerer when it is killed.

    ecs_1 .. ecs_4    1 or 2 units each; the tasks run until the test lets them finish, after
                      the triggerer was started again
    ecs_timeout       its unit never finishes: it must time out at its deadline, not before
    kube_1, kube_2    1 or 2 pods each, running for 20 s

The subnet, security group and namespace exist only in the test's moto and cluster, so they come
in through the run's ``conf``. The operations keep their state in a store of their own
(connection ``reliability_state``, written by the test): the stack's default store is what the
Compute Health tests read, and they must not see these tenants.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_compute_provider.operators.ecs import EcsComputeOperator
from airflow_compute_provider.operators.kubernetes import KubernetesComputeOperator

DAG_ID = "reliability_triggerer_restart"
TENANT_PREFIX = "rel-trig"
ECS_COUNTS = {"ecs_1": 1, "ecs_2": 2, "ecs_3": 1, "ecs_4": 2}
KUBE_COUNTS = {"kube_1": 1, "kube_2": 2}
TIMEOUT_TASK = "ecs_timeout"
TIMEOUT_SECONDS = 25
NETWORK = {
    "awsvpcConfiguration": {
        "subnets": ["{{ dag_run.conf['subnet_id'] }}"],
        "securityGroups": ["{{ dag_run.conf['security_group_id'] }}"],
        "assignPublicIp": "DISABLED",
    }
}
#: a tenant state store of this test's own: the stack's default one is read by other tests
STATE_CONN_ID = "reliability_state"
COMMON: dict[str, Any] = {
    "operation": "restart",
    "deferrable": True,
    "poll_interval": 0.5,
    "retries": 0,
    "state_conn_id": STATE_CONN_ID,
}

with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False):
    for task_id, count in ECS_COUNTS.items():
        EcsComputeOperator(
            task_id=task_id,
            tenant_id=f"{TENANT_PREFIX}-{task_id.replace('_', '-')}",
            count=count,
            cluster="compute-test",
            task_definition="compute-test-task",
            launch_type="FARGATE",
            network_configuration=NETWORK,
            timeout=timedelta(minutes=3),
            **COMMON,
        )
    EcsComputeOperator(
        task_id=TIMEOUT_TASK,
        tenant_id=f"{TENANT_PREFIX}-ecs-timeout",
        cluster="compute-test",
        task_definition="compute-test-task",
        launch_type="FARGATE",
        network_configuration=NETWORK,
        timeout=timedelta(seconds=TIMEOUT_SECONDS),
        **COMMON,
    )
    for task_id, count in KUBE_COUNTS.items():
        KubernetesComputeOperator(
            task_id=task_id,
            tenant_id=f"{TENANT_PREFIX}-{task_id.replace('_', '-')}",
            count=count,
            namespace="{{ dag_run.conf['namespace'] }}",
            image="busybox:1.36",
            container_resources={"requests": {"cpu": "10m", "memory": "16Mi"}},
            annotations={"sim.compute.test/script": "run:20s,exit:0"},
            timeout=timedelta(minutes=3),
            **COMMON,
        )
