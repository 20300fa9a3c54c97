"""Tenant provisioning on AWS ECS, with a ``ComputeRetryPolicy``.

What it shows:

* ``EcsComputeOperator`` launching a tenant's provisioning task(s) on Fargate, every setting
  coming from the run's params (trigger it with ``{"tenant": "acme"}``);
* a ``ComputeRetryPolicy`` saying per error code what happens next: ECS throttling waits
  longer than other retriable errors, missing capacity is tried for longer, a bad request
  (``INVALID_CONFIGURATION``) and anything needing a human fail at once, whatever attempts
  are left;
* the tenant's state following Airflow's decision: after a final non-retriable failure the
  tenant is ``needs_investigation`` and takes no new operation until released
  (``python -m airflow_compute_provider.state release acme --note "..."``).

``make demo`` runs it three times: a clean success, a RunTask that ECS throttles (try 1
fails with ``PROVIDER_THROTTLED``, the policy retries, try 2 succeeds) and a RunTask ECS refuses
as invalid (``INVALID_CONFIGURATION``: one try, no retry).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_compute_provider.operators.ecs import EcsComputeOperator
from airflow_compute_provider.policy import Abort, ComputeRetryPolicy, Retry

# `make demo` runs the example DAGs against a local ECS endpoint and needs seconds, not
# minutes; a deployment leaves COMPUTE_EXAMPLES_FAST unset.
FAST = os.environ.get("COMPUTE_EXAMPLES_FAST") == "1"


def seconds(fast: float, real: float) -> timedelta:
    return timedelta(seconds=fast if FAST else real)


PROVISIONING_POLICY = ComputeRetryPolicy(
    max_attempts=4,  # tries in all; `retries` follows from it
    initial_delay=seconds(1, 30),
    backoff=2.0,
    max_delay=timedelta(minutes=10),
    jitter="full",
    rules={
        # ECS asked us to slow down: give it more room than other retriable errors.
        "PROVIDER_THROTTLED": Retry(initial_delay=seconds(1, 60)),
        # No Fargate capacity right now: worth waiting for, for longer.
        "INSUFFICIENT_CAPACITY": Retry(max_attempts=6, initial_delay=seconds(1, 120)),
        # Non-retriable codes fail at once by default; saying so names the reason in the UI.
        "INVALID_CONFIGURATION": Abort(reason="fix the task definition or the run's params"),
        "requires_manual_intervention": Abort(reason="a person has to look at the tenant first"),
    },
)

with DAG(
    dag_id="tenant_provisioning_ecs",
    description="Provision a tenant on ECS; a ComputeRetryPolicy decides per error code",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["compute", "ecs", "example"],
    doc_md=__doc__,
    # Params keep their types when rendered: subnets stay a list, units an integer.
    render_template_as_native_obj=True,
    params={
        # Starts with a letter, so that native rendering keeps it a string.
        "tenant": Param("acme", type="string", pattern="^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"),
        "cluster": Param("tenants", type="string"),
        "task_definition": Param("tenant-provisioner", type="string"),
        "subnets": Param(["subnet-0123456789abcdef0"], type="array", items={"type": "string"}),
        "security_groups": Param([], type="array", items={"type": "string"}),
        "units": Param(1, type="integer", minimum=1, maximum=50),
    },
):
    EcsComputeOperator(
        task_id="provision",
        tenant_id="{{ params.tenant }}",
        operation="provision",
        cluster="{{ params.cluster }}",
        task_definition="{{ params.task_definition }}",
        launch_type="FARGATE",
        count="{{ params.units }}",
        network_configuration={
            "awsvpcConfiguration": {
                "subnets": "{{ params.subnets }}",
                "securityGroups": "{{ params.security_groups }}",
                "assignPublicIp": "DISABLED",
            }
        },
        tags={"team": "platform"},
        timeout=seconds(30, 20 * 60),
        poll_interval=0.2 if FAST else 15.0,
        retry_policy=PROVISIONING_POLICY,
    )
