"""Reading the state tables: lookups by key inside a transaction, and rows turned into records.

``sql.py`` calls these from inside its transactions; each returns a frozen record from
``models.py`` (or ``None``) so no caller ever handles a raw row. Error columns hold
``ComputeError`` JSON and come back as ``ComputeError`` objects.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from airflow_compute_provider.errors import ComputeError
from airflow_compute_provider.state.models import LedgerEntry, Operation, TaskInstanceRef, Tenant, Transition
from airflow_compute_provider.state.schema import operations, resources, tenants
from airflow_compute_provider.state.status import OperationStatus, ResourceStatus, TenantEvent, TenantStatus


def tenant(conn: Connection, tenant_id: str) -> Tenant | None:
    row = conn.execute(sa.select(tenants).where(tenants.c.tenant_id == tenant_id)).first()
    return to_tenant(row) if row is not None else None


def operation(conn: Connection, tenant_id: str, execution_id: str, attempt: int) -> Operation | None:
    row = conn.execute(
        sa.select(operations).where(
            operations.c.tenant_id == tenant_id,
            operations.c.execution_id == execution_id,
            operations.c.attempt == attempt,
        )
    ).first()
    return to_operation(row) if row is not None else None


def newest_operation(conn: Connection, tenant_id: str, execution_id: str) -> Operation | None:
    """The execution's newest try: the store numbers tries, so the highest attempt number."""
    row = conn.execute(
        sa.select(operations)
        .where(operations.c.tenant_id == tenant_id, operations.c.execution_id == execution_id)
        .order_by(operations.c.attempt.desc())
        .limit(1)
    ).first()
    return to_operation(row) if row is not None else None


def operation_by_id(conn: Connection, op_id: int) -> Operation:
    return to_operation(conn.execute(sa.select(operations).where(operations.c.id == op_id)).one())


def ledger_entry(
    conn: Connection, tenant_id: str, execution_id: str, unit_index: int, generation: int
) -> LedgerEntry | None:
    row = conn.execute(
        sa.select(resources).where(
            resources.c.tenant_id == tenant_id,
            resources.c.execution_id == execution_id,
            resources.c.unit_index == unit_index,
            resources.c.generation == generation,
        )
    ).first()
    return to_entry(row) if row is not None else None


def to_tenant(row: Row[Any]) -> Tenant:
    return Tenant(
        tenant_id=row.tenant_id,
        status=TenantStatus(row.status),
        execution_id=row.execution_id,
        attempt=row.attempt,
        held=bool(row.held),
        note=row.note,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def to_operation(row: Row[Any]) -> Operation:
    return Operation(
        id=row.id,
        tenant_id=row.tenant_id,
        execution_id=row.execution_id,
        attempt=row.attempt,
        operation=row.operation,
        provider=row.provider,
        status=OperationStatus(row.status),
        error=to_error(row.error),
        will_retry=None if row.will_retry is None else bool(row.will_retry),
        tenant_status_after=TenantStatus(row.tenant_status_after) if row.tenant_status_after else None,
        started_at=row.started_at,
        outcome_at=row.outcome_at,
        finished_at=row.finished_at,
        eventual_status=OperationStatus(row.eventual_status) if row.eventual_status else None,
        eventual_error=to_error(row.eventual_error),
        eventual_at=row.eventual_at,
        try_token=row.try_token,
        airflow_ti=row.airflow_ti,
        airflow_try_number=row.airflow_try_number,
        heartbeat_at=row.heartbeat_at,
        live_until=row.live_until,
        task_instance=to_task_instance(row),
    )


def to_task_instance(row: Row[Any]) -> TaskInstanceRef | None:
    if row.dag_id is None:
        return None
    return TaskInstanceRef(
        dag_id=row.dag_id,
        run_id=row.run_id,
        task_id=row.task_id,
        map_index=-1 if row.map_index is None else row.map_index,
    )


def to_entry(row: Row[Any]) -> LedgerEntry:
    return LedgerEntry(
        id=row.id,
        tenant_id=row.tenant_id,
        execution_id=row.execution_id,
        provider=row.provider,
        conn_id=row.conn_id,
        locator=json.loads(row.locator),
        unit_index=row.unit_index,
        generation=row.generation,
        idempotency_token=row.idempotency_token,
        resource_id=row.resource_id,
        status=ResourceStatus(row.status),
        attempts=row.attempts,
        last_error=to_error(row.last_error),
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )


def to_transition(row: Row[Any]) -> Transition:
    return Transition(
        id=row.id,
        tenant_id=row.tenant_id,
        event=TenantEvent(row.event),
        from_status=TenantStatus(row.from_status),
        to_status=TenantStatus(row.to_status),
        execution_id=row.execution_id,
        attempt=row.attempt,
        note=row.note,
        at=row.at,
    )


def to_error(text: str | None) -> ComputeError | None:
    return ComputeError.model_validate_json(text) if text else None
