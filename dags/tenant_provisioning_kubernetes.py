"""Tenant provisioning on Kubernetes, with a ``ComputeRetryPolicy``.

What it shows:

* ``KubernetesComputeOperator`` running a tenant's provisioning pod(s) in a namespace, built
  from an image, a command and resource requests (a full ``pod_template`` works too);
* the same ``ComputeRetryPolicy`` shape as the ECS DAG: the error codes are the same for both
  providers, so one policy serves both. A namespace ``ResourceQuota`` that refuses the pod is
  ``QUOTA_EXCEEDED`` here exactly as an ECS service limit is there;
* ``pending_grace_period``: a pod stuck pending (unschedulable, image pull back-off) fails the
  try after that long instead of waiting for the timeout.

``make demo`` runs it (when the local Kubernetes API server is available) twice: two pods that
complete, and a namespace whose quota allows no pod (``QUOTA_EXCEEDED``: one try, no retry).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_compute_provider.operators.kubernetes import KubernetesComputeOperator
from airflow_compute_provider.policy import Abort, ComputeRetryPolicy, Retry

# `make demo` runs the example DAGs against a local API server and needs seconds, not
# minutes; a deployment leaves COMPUTE_EXAMPLES_FAST unset.
FAST = os.environ.get("COMPUTE_EXAMPLES_FAST") == "1"


def seconds(fast: float, real: float) -> timedelta:
    return timedelta(seconds=fast if FAST else real)


PROVISIONING_POLICY = ComputeRetryPolicy(
    max_attempts=4,
    initial_delay=seconds(1, 30),
    backoff=2.0,
    max_delay=timedelta(minutes=10),
    rules={
        # The API server sent Retry-After with its 429: the policy never waits less than that.
        "PROVIDER_THROTTLED": Retry(initial_delay=seconds(1, 60)),
        # Evicted or preempted: the node is gone, another one will do.
        "INFRASTRUCTURE_INTERRUPTED": Retry(max_attempts=5),
        "INVALID_CONFIGURATION": Abort(reason="fix the pod spec or the run's params"),
        "requires_manual_intervention": Abort(reason="a person has to look at the tenant first"),
    },
)

with DAG(
    dag_id="tenant_provisioning_kubernetes",
    description="Provision a tenant on Kubernetes; a ComputeRetryPolicy decides per error code",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["compute", "kubernetes", "example"],
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "tenant": Param("acme", type="string", pattern="^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"),
        "namespace": Param("tenants", type="string"),
        "image": Param("busybox:1.36", type="string"),
        "units": Param(1, type="integer", minimum=1, maximum=50),
    },
):
    KubernetesComputeOperator(
        task_id="provision",
        tenant_id="{{ params.tenant }}",
        operation="provision",
        namespace="{{ params.namespace }}",
        image="{{ params.image }}",
        cmds=["sh", "-c"],
        arguments=["echo provisioning {{ params.tenant }}; sleep 1"],
        container_resources={
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"memory": "128Mi"},
        },
        labels={"team": "platform"},
        count="{{ params.units }}",
        timeout=seconds(30, 20 * 60),
        pending_grace_period=seconds(2, 5 * 60),
        poll_interval=0.2 if FAST else 15.0,
        retry_policy=PROVISIONING_POLICY,
    )
