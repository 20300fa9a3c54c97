"""Per-code routing of a compute failure with ``ComputeErrorBranchOperator``.

What it shows:

* one branch task reading the ``ComputeError`` the provisioning task failed with and following
  a route by code or by classification:

      QUOTA_EXCEEDED                 -> request_quota   (ask for a higher limit, with the error)
      requires_manual_intervention   -> page_oncall     (permission, credentials, held tenant...)
      anything else                  -> mark_failed     (record it for the tenant's owner)
      success                        -> no branch       (every handler is skipped)

* handlers reading the error they handle with ``get_compute_error(context, "provision")``;
* the watcher leaf: a handler that succeeds must not turn the DAG run green. ``watcher``
  (``trigger_rule="one_failed"``, downstream of the compute task) fails when the compute task
  failed, so the run stays failed; it is skipped when the compute task succeeded.

``make demo`` runs it with ECS refusing the launch because the account reached its limit of
concurrent tasks: ``QUOTA_EXCEEDED`` (non-retriable), one try, ``request_quota`` runs.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowException

from airflow_compute_provider.operators.branch import ComputeErrorBranchOperator, get_compute_error
from airflow_compute_provider.operators.ecs import EcsComputeOperator
from airflow_compute_provider.policy import ComputeRetryPolicy

FAST = os.environ.get("COMPUTE_EXAMPLES_FAST") == "1"

with DAG(
    dag_id="compute_error_routing",
    description="Route a compute failure by error code: quota, on-call, or mark failed",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["compute", "ecs", "example"],
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "tenant": Param("acme", type="string", pattern="^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"),
        "cluster": Param("tenants", type="string"),
        "task_definition": Param("tenant-provisioner", type="string"),
        "subnets": Param(["subnet-0123456789abcdef0"], type="array", items={"type": "string"}),
        "security_groups": Param([], type="array", items={"type": "string"}),
    },
):
    provision = EcsComputeOperator(
        task_id="provision",
        tenant_id="{{ params.tenant }}",
        operation="provision",
        cluster="{{ params.cluster }}",
        task_definition="{{ params.task_definition }}",
        launch_type="FARGATE",
        network_configuration={
            "awsvpcConfiguration": {
                "subnets": "{{ params.subnets }}",
                "securityGroups": "{{ params.security_groups }}",
            }
        },
        poll_interval=0.2 if FAST else 15.0,
        # Retriable codes are retried with backoff; non-retriable and manual ones fail at once
        # and reach the branch below after a single try.
        retry_policy=ComputeRetryPolicy(
            max_attempts=3, initial_delay=timedelta(seconds=1 if FAST else 30), jitter="full"
        ),
    )

    route = ComputeErrorBranchOperator(
        task_id="route",
        compute_task_id="provision",
        routes={
            "QUOTA_EXCEEDED": "request_quota",
            "requires_manual_intervention": "page_oncall",
        },
        on_success=None,
        default="mark_failed",
    )

    @task
    def request_quota(**context: Any) -> dict[str, Any]:
        """Ask for a higher limit. A real handler opens a Service Quotas request or a ticket."""
        error = get_compute_error(context, "provision")
        assert error is not None  # the branch routes here only on a recorded QUOTA_EXCEEDED
        return {
            "tenant": error.tenant_id,
            "code": error.code.value,
            "what": "quota increase",
            "because": error.message,
            "provider_said": error.root_cause.provider_message,
        }

    @task
    def page_oncall(**context: Any) -> dict[str, Any]:
        """Page a person: permission, credentials and held tenants need one."""
        error = get_compute_error(context, "provision")
        assert error is not None
        return {"tenant": error.tenant_id, "severity": "high", "code": error.code.value}

    @task
    def mark_failed(**context: Any) -> dict[str, Any]:
        """Everything else: record the failure for the tenant's owner (``None``: killed worker)."""
        error = get_compute_error(context, "provision")
        return {"code": error.code.value if error else None, "recorded": True}

    @task(trigger_rule="one_failed")
    def watcher() -> None:
        # Runs only when provisioning failed: a handler ran, but the DAG run must end failed.
        raise AirflowException("provision failed; the route's handler has the details")

    provision >> route >> [request_quota(), page_oncall(), mark_failed()]
    provision >> watcher()
