"""DAGs this provider ships as factories (a pip install never brings a repository's ``dags/``).

``create_maintenance_dag(...)`` builds the compute maintenance DAG: one
``ComputeReconcileOperator`` task on a schedule (every 10 minutes by default) that records the
eventual outcome of work that outlived its try, cleans up resources marked for cleanup, and
releases stale tenant holds. A DAG file needs two lines::

    from airflow_compute_provider.dags import create_maintenance_dag

    dag = create_maintenance_dag()

A manual run may narrow or rehearse one pass with its params: ``{"tenant_id": "acme",
"provider": "ecs", "dry_run": true}``; the factory's arguments are their defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param

from airflow_compute_provider import registry
from airflow_compute_provider.operators.cleanup import ComputeReconcileOperator
from airflow_compute_provider.recovery import RecoverySettings
from airflow_compute_provider.state.config import DEFAULT_CONN_ID

DEFAULT_DAG_ID = "compute_maintenance"
DEFAULT_SCHEDULE = timedelta(minutes=10)
TASK_ID = "reconcile"

_DOC = """\
### Compute maintenance

Follows every loose end of the compute operators to the end:

* **timed-out work**: a try that timed out left its units running; once they end, their true
  outcome is recorded with the try, and the tenant becomes `ready` when the work succeeded and
  no later operation moved it;
* **cleanup**: resources marked `pending_cleanup` (a rollback could not stop them) are stopped,
  after checking that they carry the ledger's tenant and execution; what still cannot be stopped
  stays pending, and the run fails with `CLEANUP_FAILED`;
* **stale holds**: a tenant held by a try that has been idle for `stale_after`, with every unit
  over, is released to where that try would have left it, with a note in its history.

The `reconcile` task's log and XCom (`return_value`) hold the summary: operations reconciled,
resources cleaned, resources still pending, tenants needing investigation, and every item.
Params narrow a manual run: `tenant_id`, `provider` (`ecs` | `kubernetes`), `dry_run`.
"""


def create_maintenance_dag(
    dag_id: str = DEFAULT_DAG_ID,
    *,
    schedule: Any = DEFAULT_SCHEDULE,
    start_date: datetime = datetime(2025, 1, 1, tzinfo=UTC),
    tenant_id: str | None = None,
    provider: str | None = None,
    dry_run: bool = False,
    state_conn_id: str = DEFAULT_CONN_ID,
    tags: Sequence[str] = ("compute", "maintenance"),
    **kwargs: Any,
) -> DAG:
    """The compute maintenance DAG.

    :param dag_id: the DAG's id.
    :param schedule: how often it runs (default every 10 minutes; any Airflow schedule).
    :param start_date: the first data interval; runs are never caught up.
    :param tenant_id: the default of the ``tenant_id`` param (``None``: every tenant).
    :param provider: the default of the ``provider`` param (``None``: both).
    :param dry_run: the default of the ``dry_run`` param.
    :param state_conn_id: the tenant state store's Airflow connection.
    :param kwargs: how hard a run tries (``stale_after``, ``cleanup_attempts``,
        ``cleanup_backoff``, ``cleanup_max_backoff``, ``stuck_grace_period``: the fields of
        ``RecoverySettings``, with its defaults, handed to ``ComputeReconcileOperator``); anything
        else goes on to ``DAG`` (``default_args``, ``dagrun_timeout``...).

    Invalid values fail here, at import.
    """
    tuning = {name: kwargs.pop(name) for name in RecoverySettings.tuning_names() if name in kwargs}
    dag_kwargs = kwargs
    # Checked now, so a bad default fails the DAG import rather than every run.
    settings = RecoverySettings(tenant_id=tenant_id, provider=provider, dry_run=dry_run, **tuning)
    dag_kwargs.setdefault("max_active_runs", 1)  # two passes at once would race on the same rows
    dag_kwargs.setdefault("catchup", False)
    dag_kwargs.setdefault("doc_md", _DOC)
    params = {
        "tenant_id": Param(tenant_id, type=["null", "string"], description="only this tenant"),
        "provider": Param(
            provider,
            type=["null", "string"],
            enum=[None, *registry.names()],
            description="only this provider",
        ),
        "dry_run": Param(dry_run, type="boolean", description="report what would happen; change nothing"),
    }
    with DAG(
        dag_id,
        schedule=schedule,
        start_date=start_date,
        tags=list(tags),
        params=params,
        # params reach the operator as they are (None, booleans), not as their text
        render_template_as_native_obj=True,
        **dag_kwargs,
    ) as dag:
        ComputeReconcileOperator(
            task_id=TASK_ID,
            tenant_id="{{ params.tenant_id }}",
            provider="{{ params.provider }}",
            dry_run="{{ params.dry_run }}",
            **settings.tuning(),
            state_conn_id=state_conn_id,
            retries=0,  # the next scheduled run is the retry
        )
    return dag


__all__ = ["DEFAULT_DAG_ID", "DEFAULT_SCHEDULE", "TASK_ID", "create_maintenance_dag"]
