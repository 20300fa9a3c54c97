"""The smallest DAG the harness tests run: one task that returns a greeting and its run's conf."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, get_current_context, task


@dag(
    dag_id="harness_hello",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["harness"],
)
def harness_hello() -> None:
    @task
    def hello() -> dict[str, Any]:
        context = get_current_context()
        return {"greeting": "hello", "conf": dict(context["dag_run"].conf or {})}

    hello()


harness_hello()
