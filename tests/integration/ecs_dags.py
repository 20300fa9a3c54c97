"""DAG files for the ECS end-to-end tests, written from a few arguments.

``ecs_dag(dag_id, **operator_kwargs)`` gives the source of a DAG file with one
``EcsComputeOperator`` (task id ``provision``) whose keyword arguments are the given values;
``Code("...")`` inserts an expression verbatim (``timedelta(seconds=2)``, a retry policy).
The cluster, task definition, launch type and network configuration default to those of the
``ecs_env`` fixture, so a test names only what it is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.harness.ecs import CLUSTER_NAME, TASK_FAMILY


@dataclass(frozen=True)
class Code:
    expression: str

    def __repr__(self) -> str:
        return self.expression


_TEMPLATE = """\
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_compute_provider.operators.ecs import EcsComputeOperator
from airflow_compute_provider.policy import Abort, ComputeRetryPolicy, Retry

with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
    EcsComputeOperator(
        task_id="provision",
{arguments}
    )
"""


def ecs_dag(dag_id: str, *, network_configuration: dict[str, Any], **kwargs: Any) -> str:
    arguments: dict[str, Any] = {
        "operation": "provision",
        "cluster": CLUSTER_NAME,
        "task_definition": TASK_FAMILY,
        "launch_type": "FARGATE",
        "network_configuration": network_configuration,
        "poll_interval": 0.2,
        "retry_delay": Code("timedelta(seconds=0)"),
        **kwargs,
    }
    lines = "\n".join(f"        {name}={value!r}," for name, value in arguments.items())
    return _TEMPLATE.format(dag_id=dag_id, arguments=lines)
