"""What the Compute Health page shows, read from the tenant state store as plain JSON data.

    health_summary(store, now, window, visibility, ...)
                                         tenant counts by status, one page of tenants with
                                         their last error, one page of resources pending
                                         cleanup, and the errors of the window counted per
                                         (provider, code) in equal time buckets: only rows of
                                         DAGs ``visibility`` allows (``queries.py``)
    resource_lookup(store, resource_id, visibility)
                                         the ledger rows of one resource (a pod or task id)
    task_instance_ref(execution_id)      the Airflow task instance behind a default execution
                                         id (``dag_id:run_id:task_id:map_index``), or ``None``:
                                         for the page's links only, never for authorization

No Airflow and no HTTP here: ``api.py`` asks the auth manager what the user may see and do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from airflow_compute_provider import registry
from airflow_compute_provider.errors import ComputeError
from airflow_compute_provider.plugins import queries
from airflow_compute_provider.plugins.queries import STATUS_ORDER, Visibility
from airflow_compute_provider.state.models import LedgerEntry, Operation, Tenant
from airflow_compute_provider.state.sql import SqlTenantStateStore

DEFAULT_BUCKETS = 24
DEFAULT_PAGE = 100
#: at most this many ledger rows of one resource id are shown
LOOKUP_LIMIT = 100
# Airflow's own rules: DAG and task ids never contain ":", so a default execution id splits
# unambiguously around the run id (which may).
_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")


def everything(store: SqlTenantStateStore) -> Visibility:
    """Every row: for the command line and tests, where no Airflow user asks."""
    return Visibility(frozenset(queries.recorded_dag_ids(store)), unrecorded=True)


def health_summary(
    store: SqlTenantStateStore,
    *,
    now: datetime,
    window: timedelta,
    visibility: Visibility | None = None,
    buckets: int = DEFAULT_BUCKETS,
    tenants_offset: int = 0,
    cleanup_offset: int = 0,
    limit: int = DEFAULT_PAGE,
) -> dict[str, Any]:
    vis = visibility if visibility is not None else everything(store)
    limit = max(1, min(limit, queries.MAX_PAGE))
    counts = queries.tenant_counts(store, vis)
    page, tenants_at = queries.tenants_page(
        store, vis, offset=max(0, tenants_offset), limit=limit, counts=counts
    )
    failed = queries.last_errors(store, vis, [t.tenant_id for t in page])
    cleanup, cleanup_at = queries.cleanup_page(store, vis, offset=max(0, cleanup_offset), limit=limit)
    return {
        "generated_at": now.isoformat(),
        "counts": counts,
        "tenants": [_tenant(t, failed.get(t.tenant_id)) for t in page],
        "tenants_page": tenants_at.to_json(),
        "pending_cleanup": [_resource(e) for e in cleanup],
        "pending_cleanup_page": cleanup_at.to_json(),
        "errors": queries.error_series(store, vis, now=now, window=window, buckets=buckets),
    }


def resource_lookup(
    store: SqlTenantStateStore, resource_id: str, visibility: Visibility | None = None, *, offset: int = 0
) -> list[dict[str, Any]]:
    """At most ``LOOKUP_LIMIT`` rows from ``offset``, oldest first."""
    vis = visibility if visibility is not None else everything(store)
    found = queries.resources_named(store, vis, resource_id, limit=LOOKUP_LIMIT, offset=max(0, offset))
    return [_resource(e) for e in found]


def task_instance_ref(execution_id: str | None) -> dict[str, Any] | None:
    """The task instance of a default execution id, with its path in the Airflow UI."""
    if not execution_id:
        return None
    parts = execution_id.split(":")
    if len(parts) < 4:
        return None
    dag_id, task_id, map_text = parts[0], parts[-2], parts[-1]
    run_id = ":".join(parts[1:-2])
    if not (_ID.match(dag_id) and _ID.match(task_id) and run_id and re.fullmatch(r"-?\d+", map_text)):
        return None
    return _ref(dag_id, run_id, task_id, int(map_text))


def _ref(dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
    path = f"dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    if map_index >= 0:
        path += f"/mapped/{map_index}"
    return {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index, "path": path}


# -- one row each ---------------------------------------------------------------------------------


def _last_error_of(op: Operation) -> ComputeError | None:
    """A try's last error: what its work eventually failed with, once the reconciler recorded
    that (the try itself may have only timed out), else the error it ended with."""
    return op.eventual_error or op.error


def _tenant(tenant: Tenant, failed: Operation | None) -> dict[str, Any]:
    return {
        "tenant_id": tenant.tenant_id,
        "status": tenant.status.value,
        "held": tenant.held,
        "execution_id": tenant.execution_id,
        "attempt": tenant.attempt,
        "note": tenant.note,
        "version": tenant.version,
        "updated_at": tenant.updated_at.isoformat(),
        "last_error": _error(failed) if failed is not None else None,
    }


def _error(op: Operation) -> dict[str, Any]:
    error: ComputeError = _last_error_of(op)  # type: ignore[assignment]  # _last_errors keeps only errors
    failed_at = op.eventual_at if op.eventual_error is not None and op.eventual_at else _failed_at(op)
    return {
        "code": error.code.value,
        "classification": error.classification.value,
        "message": error.message,
        "provider": op.provider,
        "operation": op.operation,
        "execution_id": op.execution_id,
        "attempt": op.attempt,
        "failed_at": failed_at.isoformat(),
        "task_instance": _recorded_ref(op) or task_instance_ref(op.execution_id),
    }


def _recorded_ref(op: Operation) -> dict[str, Any] | None:
    ti = op.task_instance
    if ti is None:
        return None
    return _ref(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)


def _resource(entry: LedgerEntry) -> dict[str, Any]:
    error = entry.last_error
    return {
        "tenant_id": entry.tenant_id,
        "execution_id": entry.execution_id,
        "provider": entry.provider,
        "unit_index": entry.unit_index,
        "generation": entry.generation,
        "resource_id": entry.resource_id,
        "status": entry.status.value,
        "locator": dict(entry.locator),
        "since": entry.updated_at.isoformat(),
        "error": {"code": error.code.value, "message": error.message} if error is not None else None,
        "console_url": _console_url(entry.provider, entry.resource_id, entry.locator),
        "task_instance": task_instance_ref(entry.execution_id),
    }


def _console_url(provider: str, resource_id: str | None, locator: Mapping[str, str]) -> str | None:
    if provider not in registry.names():
        return None
    return registry.get(provider).console_link(resource_id, locator)


def _failed_at(op: Operation) -> datetime:
    return op.outcome_at or op.finished_at or op.started_at


__all__ = ["STATUS_ORDER", "everything", "health_summary", "resource_lookup", "task_instance_ref"]
