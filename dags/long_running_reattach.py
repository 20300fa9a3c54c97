"""A timeout that reattaches: the work outlives a try, and the next try picks it up.

What it shows:

* ``timeout`` bounds one try, not the work: when it passes, the try fails with
  ``OPERATION_TIMEOUT`` (retriable) and the ECS task **keeps running**; nothing is stopped;
* the next try uses the same execution id, finds the running task (by its tags and the state
  store's ledger) and waits for it instead of launching another one;
* ``Retry(timeout_factor=2.0)`` for ``OPERATION_TIMEOUT``: every earlier timeout of the
  execution doubles the next try's timeout, up to ``max_timeout``;
* ``deferrable=True``: the wait happens in the triggerer (``ComputeStatusTrigger``), which at
  the deadline reports the timeout and stops watching; it never stops the work either.

``make demo`` runs it with a task that outlives the first try's timeout and finishes once the
second try has found it: try 1 times out, try 2 (twice as long) reattaches to the same task and
succeeds. ECS sees one RunTask.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_compute_provider.operators.ecs import EcsComputeOperator
from airflow_compute_provider.policy import ComputeRetryPolicy, Retry

FAST = os.environ.get("COMPUTE_EXAMPLES_FAST") == "1"

with DAG(
    dag_id="long_running_reattach",
    description="A try times out, the work keeps running, the next try reattaches",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["compute", "ecs", "example"],
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "tenant": Param("acme", type="string", pattern="^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"),
        "cluster": Param("tenants", type="string"),
        "task_definition": Param("tenant-migration", type="string"),
        "subnets": Param(["subnet-0123456789abcdef0"], type="array", items={"type": "string"}),
        "security_groups": Param([], type="array", items={"type": "string"}),
    },
):
    EcsComputeOperator(
        task_id="migrate",
        tenant_id="{{ params.tenant }}",
        operation="migrate",
        cluster="{{ params.cluster }}",
        task_definition="{{ params.task_definition }}",
        launch_type="FARGATE",
        network_configuration={
            "awsvpcConfiguration": {
                "subnets": "{{ params.subnets }}",
                "securityGroups": "{{ params.security_groups }}",
            }
        },
        timeout=timedelta(seconds=2) if FAST else timedelta(hours=1),
        max_timeout=timedelta(seconds=30) if FAST else timedelta(hours=8),
        deferrable=True,
        poll_interval=0.2 if FAST else 30.0,
        retry_policy=ComputeRetryPolicy(
            max_attempts=2,
            initial_delay=timedelta(seconds=1 if FAST else 60),
            rules={"OPERATION_TIMEOUT": Retry(max_attempts=4, timeout_factor=2.0)},
        ),
    )
