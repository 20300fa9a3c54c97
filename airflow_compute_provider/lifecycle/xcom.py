"""Reading a compute task's failure back in a downstream task.

A compute operator that fails pushes its ``ComputeError`` (as JSON) to XCom key
``compute_error`` before it raises. ``get_compute_error`` turns it back into the model, for
TaskFlow handlers and for ``ComputeErrorBranchOperator``::

    @task(trigger_rule="all_done")
    def report(**context):
        error = get_compute_error(context, "provision")
        if error is not None and error.code is ErrorCode.QUOTA_EXCEEDED:
            ...

Airflow clears a task's XComs when a new try starts, so what is read is the latest try's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_compute_provider.errors import ComputeError

#: where a failed compute task leaves its ``ComputeError`` (``failure.py`` pushes it)
XCOM_ERROR_KEY = "compute_error"


def get_compute_error(context: Any, task_id: str, *, map_index: int | None = None) -> ComputeError | None:
    """The ``ComputeError`` that ``task_id`` failed with in this DAG run, or ``None``.

    ``None`` means no compute error was recorded: the task succeeded, has not run, or failed
    before the compute operator could record why (a killed worker). ``map_index`` picks one
    instance of a mapped task. A value that is not a ComputeError raises ``ValueError``.
    """
    kwargs: dict[str, Any] = {} if map_index is None else {"map_indexes": map_index}
    value = context["ti"].xcom_pull(task_ids=task_id, key=XCOM_ERROR_KEY, **kwargs)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(
            f"XCom {XCOM_ERROR_KEY!r} of task {task_id!r} is a {type(value).__name__}, not one "
            "ComputeError (for a mapped task, pass map_index)"
        )
    try:
        return ComputeError.model_validate(dict(value))
    except ValueError as exc:
        raise ValueError(f"XCom {XCOM_ERROR_KEY!r} of task {task_id!r} is not a ComputeError: {exc}") from exc


__all__ = ["XCOM_ERROR_KEY", "get_compute_error"]
