"""The Airflow task instance a try runs in, as the state store records it at ``begin_operation``.

The store keeps it with the operation so that the Compute Health page can ask Airflow's auth
manager about the DAG that really ran the try, rather than a DAG id parsed out of the execution
id (a string any DAG author may set).
"""

from __future__ import annotations

from typing import Any

from airflow_compute_provider.state.models import TaskInstanceRef


def task_instance_of(context: Any) -> TaskInstanceRef | None:
    """The context's task instance; ``None`` when the context has none (a test calling
    ``execute`` by hand): the operation is then recorded without one."""
    ti = context.get("ti") if hasattr(context, "get") else None
    dag_id, run_id, task_id = (getattr(ti, name, None) for name in ("dag_id", "run_id", "task_id"))
    if not (isinstance(dag_id, str) and isinstance(run_id, str) and isinstance(task_id, str)):
        return None
    map_index = getattr(ti, "map_index", -1)
    return TaskInstanceRef(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=map_index if isinstance(map_index, int) and not isinstance(map_index, bool) else -1,
    )
