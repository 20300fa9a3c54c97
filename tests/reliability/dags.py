"""DAG files with many compute tasks, written from plain data for ``dag.test()`` runs.

``compute_dag(dag_id, tasks)`` gives the source of a DAG file whose tasks are the given
``Task``s: each a task id, an operator class (``EcsComputeOperator`` or
``KubernetesComputeOperator``) and its keyword arguments, written as ``name=repr(value)``;
``Code("...")`` (from ``tests.integration.ecs_dags``) inserts an expression verbatim, such as
``timedelta(seconds=1)`` or ``POLICY``. The tasks are independent: ``dag.test()`` runs them
one after the other, retries included, in one run. Each starts with fresh request budgets
(``hooks/budget.py``), as in a worker, where every task runs in a process of its own.

``POLICY`` in a DAG file is the suite's retry policy: transient provider trouble is retried at
once, up to four tries; a timeout is not retried (the scenario wants to see it); everything
non-retriable aborts, as the policy does by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.integration.ecs_dags import Code

_HEADER = """\
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_compute_provider.hooks.budget import reset_budgets
from airflow_compute_provider.operators.ecs import EcsComputeOperator
from airflow_compute_provider.operators.kubernetes import KubernetesComputeOperator
from airflow_compute_provider.policy import Abort, ComputeRetryPolicy, Retry

POLICY = ComputeRetryPolicy(
    max_attempts=4,
    initial_delay=timedelta(0),
    jitter="none",
    rules={{"OPERATION_TIMEOUT": Abort(reason="the scenario wants the timeout")}},
)


def fresh_budgets(context):
    # A worker runs every task in a process of its own, whose request budgets start fresh;
    # dag.test() runs them all in one, where one task's throttles would pace all the others.
    reset_budgets()


with DAG(
    {dag_id!r},
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    default_args={{"on_execute_callback": fresh_budgets}},
) as dag:
"""


@dataclass(frozen=True)
class Task:
    task_id: str
    operator: str  # "EcsComputeOperator" | "KubernetesComputeOperator"
    arguments: dict[str, Any] = field(default_factory=dict)

    def source(self) -> str:
        lines = [f"    {self.operator}(", f"        task_id={self.task_id!r},"]
        lines += [f"        {name}={value!r}," for name, value in self.arguments.items()]
        return "\n".join([*lines, "    )"])


def compute_dag(dag_id: str, tasks: Sequence[Task]) -> str:
    return _HEADER.format(dag_id=dag_id) + "\n".join(t.source() for t in tasks) + "\n"


__all__ = ["Code", "Task", "compute_dag"]
