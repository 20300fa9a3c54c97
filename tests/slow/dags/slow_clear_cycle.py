"""The DAGs of the clear-cycle test (``tests/slow/test_clear_cycle.py``), run by the shared
``airflow standalone`` stack: one compute task each (``provision``, two units, no retries), cleared
twice by the test through the REST API.

    slow_clear_cycle_ecs    ECS (the test's moto), deferrable: the stack's triggerer waits
    slow_clear_cycle_kube   Kubernetes (the test cluster), blocking: the worker waits; every pod
                            runs until the test rescripts it (``sim.compute.test/script``)

Each DAG has its own connection (``clear_cycle_aws``, ``clear_cycle_kube``), written by the test,
so the stack's ``aws_default`` and ``kubernetes_default`` stay as the other slow tests left them.
The subnet and security group (ECS) and the namespace (Kubernetes) exist only for one test:
they come in through the run's ``conf``. The timeout bounds each try; the test decides whether
the work outlives it.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_compute_provider.operators.ecs import EcsComputeOperator
from airflow_compute_provider.operators.kubernetes import KubernetesComputeOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")
#: a try's bound: long enough for a busy machine to launch and settle two units (a stack on a
#: loaded machine has been seen to answer a connection lookup only after 30 s), short enough
#: that the try the test lets time out does not hold the suite up for long
TRY_TIMEOUT = timedelta(seconds=60)

with DAG("slow_clear_cycle_ecs", schedule=None, start_date=START, catchup=False):
    EcsComputeOperator(
        task_id="provision",
        tenant_id="slow-clear-ecs",
        operation="provision",
        count=2,
        cluster="compute-test",  # tests.harness.ecs.CLUSTER_NAME
        task_definition="compute-test-task",  # tests.harness.ecs.TASK_FAMILY
        launch_type="FARGATE",
        network_configuration={
            "awsvpcConfiguration": {
                "subnets": ["{{ dag_run.conf['subnet_id'] }}"],
                "securityGroups": ["{{ dag_run.conf['security_group_id'] }}"],
                "assignPublicIp": "DISABLED",
            }
        },
        aws_conn_id="clear_cycle_aws",
        deferrable=True,
        poll_interval=0.5,
        timeout=TRY_TIMEOUT,
        retries=0,
    )

with DAG("slow_clear_cycle_kube", schedule=None, start_date=START, catchup=False):
    KubernetesComputeOperator(
        task_id="provision",
        tenant_id="slow-clear-kube",
        operation="provision",
        count=2,
        namespace="{{ dag_run.conf['namespace'] }}",
        image="busybox:1.36",
        cmds=["sh", "-c", "true"],
        container_resources={"requests": {"cpu": "50m", "memory": "32Mi"}},
        # the node simulator's script (tests/harness/nodesim.py): running until rescripted
        annotations={"sim.compute.test/script": "run:forever"},
        kubernetes_conn_id="clear_cycle_kube",
        deferrable=False,
        poll_interval=0.5,
        timeout=TRY_TIMEOUT,
        retries=0,
    )
