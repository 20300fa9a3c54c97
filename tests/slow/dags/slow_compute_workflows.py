"""The DAGs of the slow suite (``tests/slow/test_standalone_workflows.py``), run by a real
``airflow standalone`` stack against the moto ECS endpoint.

Every DAG has one ``EcsComputeOperator`` (task ``provision``) with a ``ComputeRetryPolicy``; the
test decides how ECS answers. The subnet and security group exist only in the test's moto, so
they come in through the run's ``conf`` and are rendered into ``network_configuration``.

    slow_policy_throttled   RunTask throttled on the first tries: the policy retries after 1s,
                            then 2s (Airflow's own retry_delay, 10 minutes, must not apply)
    slow_policy_invalid     an EC2 launch into a cluster without instances: ECS answers
                            InvalidParameterException (INVALID_CONFIGURATION), no retry
    slow_policy_timeout     deferrable, 2s timeout: try 1 times out in the triggerer, try 2
                            waits 5 times longer and completes by reattaching to the same task
    slow_branch_quota       RunTask refuses with a concurrent-task limit (QUOTA_EXCEEDED); the
                            branch follows its handler, a one_failed watcher keeps the run failed
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, task
from airflow.sdk.exceptions import AirflowException

from airflow_compute_provider.operators.branch import ComputeErrorBranchOperator, get_compute_error
from airflow_compute_provider.operators.ecs import EcsComputeOperator
from airflow_compute_provider.policy import ComputeRetryPolicy, Retry

START = pendulum.datetime(2024, 1, 1, tz="UTC")
CLUSTER = "compute-test"  # tests.harness.ecs.CLUSTER_NAME
TASK_DEFINITION = "compute-test-task"  # tests.harness.ecs.TASK_FAMILY
NETWORK = {
    "awsvpcConfiguration": {
        "subnets": ["{{ dag_run.conf['subnet_id'] }}"],
        "securityGroups": ["{{ dag_run.conf['security_group_id'] }}"],
        "assignPublicIp": "DISABLED",
    }
}


def provision(tenant_id: str, policy: ComputeRetryPolicy, **kwargs: Any) -> EcsComputeOperator:
    arguments: dict[str, Any] = {
        "cluster": CLUSTER,
        "task_definition": TASK_DEFINITION,
        "launch_type": "FARGATE",
        "network_configuration": NETWORK,
        "poll_interval": 0.5,
        # Airflow's own delay: a retry that waited for it would outlast the test. Only the
        # policy's delay (stored as the try's retry_delay_override) lets a retry come soon.
        "retry_delay": timedelta(minutes=10),
        **kwargs,
    }
    return EcsComputeOperator(
        task_id="provision", tenant_id=tenant_id, operation="provision", retry_policy=policy, **arguments
    )


with DAG("slow_policy_throttled", schedule=None, start_date=START, catchup=False):
    provision(
        "slow-throttled",
        ComputeRetryPolicy(max_attempts=4, initial_delay=timedelta(seconds=1), backoff=2.0, jitter="none"),
        deferrable=False,
    )

with DAG("slow_policy_invalid", schedule=None, start_date=START, catchup=False):
    # Everything retriable would be retried (retries=2 from the policy): only the error's
    # classification stops it.
    provision(
        "slow-invalid",
        ComputeRetryPolicy(max_attempts=3, initial_delay=timedelta(0), jitter="none"),
        launch_type="EC2",
        deferrable=False,
    )

with DAG("slow_policy_timeout", schedule=None, start_date=START, catchup=False):
    provision(
        "slow-timeout",
        ComputeRetryPolicy(
            max_attempts=2,
            initial_delay=timedelta(seconds=1),
            jitter="none",
            rules={"OPERATION_TIMEOUT": Retry(max_attempts=3, timeout_factor=5.0)},
        ),
        deferrable=True,
        timeout=timedelta(seconds=2),
    )

with DAG("slow_branch_quota", schedule=None, start_date=START, catchup=False):
    compute = provision(
        "slow-quota",
        ComputeRetryPolicy(max_attempts=3, initial_delay=timedelta(0), jitter="none"),
        deferrable=False,
    )
    route = ComputeErrorBranchOperator(
        task_id="route",
        compute_task_id="provision",
        routes={"QUOTA_EXCEEDED": "raise_quota", "non_retriable": "fix_config", "retriable": "back_off"},
        on_success="report_ok",
        default="triage",
    )

    @task
    def raise_quota(**context: Any) -> str:
        # the handler reads the error it handles
        error = get_compute_error(context, "provision")
        return error.code.value if error is not None else "none"

    @task
    def fix_config() -> str:
        return "fixed"

    @task
    def back_off() -> str:
        return "backed off"

    @task
    def report_ok() -> str:
        return "ok"

    @task
    def triage() -> str:
        return "triaged"

    @task(trigger_rule="one_failed")
    def watcher() -> None:
        # A handler ran, but the compute failed: the run must end failed.
        raise AirflowException("provision failed; see the branch's handler")

    compute >> route >> [raise_quota(), fix_config(), back_off(), report_ok(), triage()]
    compute >> watcher()
