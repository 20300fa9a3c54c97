"""The DAGs of ``tests/slow/test_deadlines_stack.py``, run by a real ``airflow standalone`` stack:
a deferred try bounded by the task's ``execution_timeout`` (which Airflow 3.3 does not enforce on
a deferred try), on ECS (moto) and Kubernetes (the local API server and node simulator).

    slow_deadline_ecs        deferrable, timeout 10 minutes, execution_timeout 20 s, one retry;
                             the ECS task runs on until the test lets it finish
    slow_deadline_kube       the same on Kubernetes; the pod runs for ever
    slow_deadline_enforced   deferrable, execution_timeout 10 minutes; the test makes Airflow
                             enforce it (the trigger timeout a future Airflow records) so the try
                             resumes with TaskDeferralTimeout

The subnet, security group and namespace exist only in the test's moto and cluster, so they come
in through the run's ``conf``. The operations keep their state in a store of their own
(connection ``slow_deadline_state``, written by the test), away from the stack's default store
that the Compute Health tests read.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_compute_provider.operators.ecs import EcsComputeOperator
from airflow_compute_provider.operators.kubernetes import KubernetesComputeOperator
from airflow_compute_provider.policy import ComputeRetryPolicy

START = pendulum.datetime(2024, 1, 1, tz="UTC")
STATE_CONN_ID = "slow_deadline_state"
EXECUTION_TIMEOUT_SECONDS = 20
NETWORK = {
    "awsvpcConfiguration": {
        "subnets": ["{{ dag_run.conf['subnet_id'] }}"],
        "securityGroups": ["{{ dag_run.conf['security_group_id'] }}"],
        "assignPublicIp": "DISABLED",
    }
}
COMMON: dict[str, Any] = {
    "task_id": "provision",
    "operation": "provision",
    "deferrable": True,
    "poll_interval": 0.5,
    "timeout": timedelta(minutes=10),
    "state_conn_id": STATE_CONN_ID,
    # Airflow's own delay would outlast the test; the policy's second is what applies
    "retry_delay": timedelta(minutes=10),
}
ECS: dict[str, Any] = {
    "cluster": "compute-test",
    "task_definition": "compute-test-task",
    "launch_type": "FARGATE",
    "network_configuration": NETWORK,
}


def _policy(max_attempts: int) -> ComputeRetryPolicy:
    return ComputeRetryPolicy(max_attempts=max_attempts, initial_delay=timedelta(seconds=1), jitter="none")


with DAG("slow_deadline_ecs", schedule=None, start_date=START, catchup=False):
    EcsComputeOperator(
        tenant_id="slow-deadline-ecs",
        execution_timeout=timedelta(seconds=EXECUTION_TIMEOUT_SECONDS),
        retry_policy=_policy(2),
        **ECS,
        **COMMON,
    )

with DAG("slow_deadline_kube", schedule=None, start_date=START, catchup=False):
    KubernetesComputeOperator(
        tenant_id="slow-deadline-kube",
        namespace="{{ dag_run.conf['namespace'] }}",
        image="busybox:1.36",
        container_resources={"requests": {"cpu": "10m", "memory": "16Mi"}},
        annotations={"sim.compute.test/script": "run:forever"},
        execution_timeout=timedelta(seconds=EXECUTION_TIMEOUT_SECONDS),
        retry_policy=_policy(2),
        **COMMON,
    )

with DAG("slow_deadline_enforced", schedule=None, start_date=START, catchup=False):
    EcsComputeOperator(
        tenant_id="slow-deadline-enforced",
        execution_timeout=timedelta(minutes=10),
        retry_policy=_policy(1),
        **ECS,
        **COMMON,
    )
