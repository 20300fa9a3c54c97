"""What the Compute Health page shows, read from the tenant state store as plain JSON data.

    health_summary(store, now, window)   tenants by status with their last error, resources
                                         pending cleanup, and the errors of the window counted
                                         per (provider, code) in equal time buckets
    resource_lookup(store, resource_id)  every ledger row of one resource (a pod or task id)
    task_instance_ref(execution_id)      the Airflow task instance behind a default execution
                                         id (``dag_id:run_id:task_id:map_index``), or ``None``

No Airflow and no HTTP here: ``api.py`` calls these and adds who may do what.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from airflow_compute_provider.errors import ComputeError
from airflow_compute_provider.links import ecs_console_url
from airflow_compute_provider.state.models import LedgerEntry, Operation, Tenant
from airflow_compute_provider.state.status import ResourceStatus, TenantStatus
from airflow_compute_provider.state.store import TenantStateStore

#: the order the page lists tenants in: what needs a human first
STATUS_ORDER = (
    TenantStatus.NEEDS_INVESTIGATION,
    TenantStatus.RETRY_PENDING,
    TenantStatus.OPERATION_IN_PROGRESS,
    TenantStatus.READY,
)
DEFAULT_BUCKETS = 24
# Airflow's own rules: DAG and task ids never contain ":", so a default execution id splits
# unambiguously around the run id (which may).
_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")


def health_summary(
    store: TenantStateStore, *, now: datetime, window: timedelta, buckets: int = DEFAULT_BUCKETS
) -> dict[str, Any]:
    operations = store.list_operations()  # newest first
    last_error = _last_errors(operations)
    tenants = sorted(store.list_tenants(), key=lambda t: (STATUS_ORDER.index(t.status), t.tenant_id))
    return {
        "generated_at": now.isoformat(),
        "counts": {s.value: sum(1 for t in tenants if t.status is s) for s in STATUS_ORDER},
        "tenants": [_tenant(t, last_error.get(t.tenant_id)) for t in tenants],
        "pending_cleanup": [
            _resource(e) for e in store.list_resources(status=ResourceStatus.PENDING_CLEANUP)
        ],
        "errors": errors_over_time(operations, now=now, window=window, buckets=buckets),
    }


def resource_lookup(store: TenantStateStore, resource_id: str) -> list[dict[str, Any]]:
    return [_resource(e) for e in store.list_resources() if e.resource_id == resource_id]


def errors_over_time(
    operations: Iterable[Operation], *, now: datetime, window: timedelta, buckets: int
) -> dict[str, Any]:
    """Errors of the tries that failed in ``(now - window, now]``, per bucket and series."""
    start = now - window
    width = window / buckets
    counts: Counter[tuple[str, str, str, int]] = Counter()
    for op in operations:
        if op.error is None:
            continue
        at = _failed_at(op)
        if not start < at <= now:
            continue
        slot = min(int((at - start) / width), buckets - 1)
        counts[(op.provider, op.error.code.value, op.error.classification.value, slot)] += 1
    series: dict[tuple[str, str, str], list[int]] = {}
    for (provider, code, classification, slot), n in counts.items():
        series.setdefault((provider, code, classification), [0] * buckets)[slot] += n
    return {
        "start": start.isoformat(),
        "bucket_seconds": width.total_seconds(),
        "buckets": [(start + width * i).isoformat() for i in range(buckets)],
        "series": [
            {"provider": p, "code": c, "classification": k, "counts": values, "total": sum(values)}
            for (p, c, k), values in sorted(series.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
        ],
    }


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
    map_index = int(map_text)
    path = f"dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    if map_index >= 0:
        path += f"/mapped/{map_index}"
    return {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index, "path": path}


# -- one row each ---------------------------------------------------------------------------------


def _last_errors(operations: Iterable[Operation]) -> dict[str, Operation]:
    """Per tenant, its newest operation that ended with an error."""
    found: dict[str, Operation] = {}
    for op in operations:
        if _last_error_of(op) is not None and op.tenant_id not in found:
            found[op.tenant_id] = op
    return found


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
        "task_instance": task_instance_ref(op.execution_id),
    }


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
    if provider == "ecs" and resource_id:
        url = ecs_console_url([resource_id], cluster=locator.get("cluster", ""), region=locator.get("region"))
        return url or None
    return None


def _failed_at(op: Operation) -> datetime:
    return op.outcome_at or op.finished_at or op.started_at


__all__ = ["errors_over_time", "health_summary", "resource_lookup", "task_instance_ref"]
