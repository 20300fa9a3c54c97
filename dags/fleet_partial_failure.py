"""A partial failure with ``on_partial_failure="retry_failed"``: keep what started, relaunch the rest.

What it shows:

* one ``EcsComputeOperator`` launching a tenant's fleet of workers (``units`` tasks, each
  its own RunTask with its own idempotency token);
* when some units start and others are refused (here: no Fargate capacity for one of them), the
  try fails with ``PARTIAL_FAILURE``, listing every unit with its own error; with
  ``retry_failed`` the started units keep running and the next try relaunches only the failed
  ones, as a new generation of the same unit. With ``rollback`` (the default) the started units
  would be stopped instead; when no retry follows, ``retry_failed`` rolls back too;
* a policy rule for ``PARTIAL_FAILURE``: the policy first looks for a rule for the partial
  failure itself, then for the code of its most severe failed unit.

``make demo`` runs it with three units, of which ECS refuses one on the first RunTask round
(``RESOURCE:CPU``): try 2 launches one task, and the tenant ends with three tasks, not five.
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
    dag_id="fleet_partial_failure",
    description="Launch a fleet; relaunch only the units that failed",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["compute", "ecs", "example"],
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "tenant": Param("acme", type="string", pattern="^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"),
        "cluster": Param("tenants", type="string"),
        "task_definition": Param("tenant-worker", type="string"),
        "subnets": Param(["subnet-0123456789abcdef0"], type="array", items={"type": "string"}),
        "security_groups": Param([], type="array", items={"type": "string"}),
        "units": Param(3, type="integer", minimum=1, maximum=200),
    },
):
    EcsComputeOperator(
        task_id="start_workers",
        tenant_id="{{ params.tenant }}",
        operation="start-workers",
        cluster="{{ params.cluster }}",
        task_definition="{{ params.task_definition }}",
        launch_type="FARGATE",
        count="{{ params.units }}",
        network_configuration={
            "awsvpcConfiguration": {
                "subnets": "{{ params.subnets }}",
                "securityGroups": "{{ params.security_groups }}",
            }
        },
        on_partial_failure="retry_failed",
        poll_interval=0.2 if FAST else 15.0,
        retry_policy=ComputeRetryPolicy(
            max_attempts=3,
            initial_delay=timedelta(seconds=1 if FAST else 60),
            rules={
                "PARTIAL_FAILURE": Retry(max_attempts=4, initial_delay=timedelta(seconds=1 if FAST else 30))
            },
        ),
    )
