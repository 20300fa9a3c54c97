"""The Compute Health page's reads: bounded, paginated, and only rows of DAGs the user may read.

    Visibility(dag_ids, unrecorded)   what one user may see: rows whose recorded DAG is in
                                      ``dag_ids``; rows without a recorded DAG (written before
                                      schema version 3, or outside a task) only with
                                      ``unrecorded`` (administrators)
    recorded_dag_ids(store)           every DAG id the operations recorded (what to ask the auth
                                      manager about)
    tenant_counts / tenants_page      tenants by status; one page in the page's order
    last_errors(store, vis, tenants)  per tenant of a page, its newest visible failed try
    holders(store, tenant_ids)        per tenant, the try that holds (or last held) it
    cleanup_page / resources_named    ledger rows pending cleanup; the rows of one resource id
    error_series(...)                 failed tries per (provider, code) and time bucket, counted
                                      by the database

Which DAG a row belongs to is what the store recorded when the try began (``dag_id`` of the
operation), never a DAG id parsed from an execution id. A tenant belongs to the DAG of the try
that holds it, or held it last; a ledger row to the DAG of its execution's tries (all of them:
an execution id reused by another DAG hides the row from who cannot read both). Every query
here selects one page, one count, or one aggregate: nothing loads a whole table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_compute_provider.errors import ErrorCode
from airflow_compute_provider.state import rows
from airflow_compute_provider.state.models import LedgerEntry, Operation, Tenant
from airflow_compute_provider.state.schema import UtcDateTime, operations, resources, tenants
from airflow_compute_provider.state.sql import SqlTenantStateStore
from airflow_compute_provider.state.status import ResourceStatus, TenantStatus

#: the order the page lists tenants in: what needs a human first
STATUS_ORDER = (
    TenantStatus.NEEDS_INVESTIGATION,
    TenantStatus.RETRY_PENDING,
    TenantStatus.OPERATION_IN_PROGRESS,
    TenantStatus.READY,
)
MAX_PAGE = 500


@dataclass(frozen=True)
class Visibility:
    dag_ids: frozenset[str]
    #: may see rows that recorded no DAG (administrators only)
    unrecorded: bool = False

    def shows(self, dag_id: str | None) -> bool:
        return self.unrecorded if dag_id is None else dag_id in self.dag_ids


@dataclass(frozen=True)
class Page:
    offset: int
    limit: int
    total: int

    def to_json(self) -> dict[str, int]:
        return {"offset": self.offset, "limit": self.limit, "total": self.total}


def _visible(vis: Visibility, op: Any, *, by_dag_index: bool = True) -> sa.ColumnElement[bool]:
    """Whether the operation row ``op`` (a table or alias) is of a DAG ``vis`` allows.

    ``by_dag_index=False`` says the same without letting the database pick the DAG index
    (where another index, the tenant's, selects far fewer rows).
    """
    if not by_dag_index:
        dag = sa.func.coalesce(op.c.dag_id, "")  # no DAG id is ever empty (the store refuses it)
        return dag.in_(sorted(vis.dag_ids | ({""} if vis.unrecorded else set())))
    known = op.c.dag_id.in_(sorted(vis.dag_ids))
    return sa.or_(known, op.c.dag_id.is_(None)) if vis.unrecorded else known


def _hidden(vis: Visibility, op: Any) -> sa.ColumnElement[bool]:
    """The negation of ``_visible``, spelled out: SQL's NOT of a NULL is no help."""
    unknown = sa.and_(op.c.dag_id.is_not(None), op.c.dag_id.not_in(sorted(vis.dag_ids)))
    return unknown if vis.unrecorded else sa.or_(op.c.dag_id.is_(None), unknown)


def _tenant_visible(vis: Visibility) -> tuple[Any, sa.ColumnElement[bool]]:
    """The holder's operation (outer-joined) and the condition that the tenant is visible."""
    holder_op = operations.alias("holder_op")
    join = tenants.outerjoin(
        holder_op,
        sa.and_(
            holder_op.c.tenant_id == tenants.c.tenant_id,
            holder_op.c.execution_id == tenants.c.execution_id,
            holder_op.c.attempt == tenants.c.attempt,
        ),
    )
    return join, _visible(vis, holder_op)


def _execution_visible(vis: Visibility, tenant_id: Any, execution_id: Any) -> sa.ColumnElement[bool]:
    tries = operations.alias("tries")
    same = sa.and_(tries.c.tenant_id == tenant_id, tries.c.execution_id == execution_id)
    return sa.and_(
        sa.exists().where(same, _visible(vis, tries)),
        ~sa.exists().where(same, _hidden(vis, tries)),
    )


def recorded_dag_ids(store: SqlTenantStateStore) -> list[str]:
    query = sa.select(operations.c.dag_id).where(operations.c.dag_id.is_not(None)).distinct()
    return store.read(lambda conn: sorted(str(r[0]) for r in conn.execute(query)))


def tenant_counts(store: SqlTenantStateStore, vis: Visibility) -> dict[str, int]:
    join, visible = _tenant_visible(vis)
    query = (
        sa.select(tenants.c.status, sa.func.count())
        .select_from(join)
        .where(visible)
        .group_by(tenants.c.status)
    )
    found = store.read(lambda conn: {str(s): int(n) for s, n in conn.execute(query)})
    return {s.value: found.get(s.value, 0) for s in STATUS_ORDER}


def tenants_page(
    store: SqlTenantStateStore, vis: Visibility, *, offset: int, limit: int, counts: dict[str, int]
) -> tuple[list[Tenant], Page]:
    """One page of the visible tenants, by status (``STATUS_ORDER``), then tenant id.

    ``counts`` (``tenant_counts``) says which statuses the page spans; each is read along the
    ``(status, tenant_id)`` index, so a page costs what it shows, not the number of tenants.
    """
    join, visible = _tenant_visible(vis)
    queries: list[Any] = []
    skip, wanted = offset, limit
    for state in STATUS_ORDER:
        n = counts.get(state.value, 0)
        if wanted <= 0:
            break
        if skip >= n:
            skip -= n
            continue
        queries.append(
            sa.select(tenants)
            .select_from(join)
            .where(tenants.c.status == state.value, visible)
            .order_by(tenants.c.tenant_id)
            .offset(skip)
            .limit(wanted)
        )
        wanted -= min(n - skip, wanted)
        skip = 0

    def work(conn: Connection) -> list[Tenant]:
        return [rows.to_tenant(r) for query in queries for r in conn.execute(query)]

    return store.read(work), Page(offset, limit, sum(counts.values()))


def last_errors(
    store: SqlTenantStateStore, vis: Visibility, tenant_ids: Sequence[str]
) -> dict[str, Operation]:
    """Per tenant, its newest visible try that ended with an error (or whose work did)."""
    if not tenant_ids:
        return {}
    failed = sa.or_(operations.c.error.is_not(None), operations.c.eventual_error.is_not(None))
    newest = (
        sa.select(sa.func.max(operations.c.id))
        .where(
            operations.c.tenant_id.in_(list(tenant_ids)),
            failed,
            _visible(vis, operations, by_dag_index=False),
        )
        .group_by(operations.c.tenant_id)
    )
    query = sa.select(operations).where(operations.c.id.in_(newest))
    return store.read(lambda conn: {op.tenant_id: op for op in map(rows.to_operation, conn.execute(query))})


def holders(store: SqlTenantStateStore, tenant_ids: Sequence[str]) -> dict[str, Operation]:
    """Per tenant, the try that holds it or held it last (absent before its first try)."""
    if not tenant_ids:
        return {}
    query = (
        sa.select(operations)
        .join(
            tenants,
            sa.and_(
                tenants.c.tenant_id == operations.c.tenant_id,
                tenants.c.execution_id == operations.c.execution_id,
                tenants.c.attempt == operations.c.attempt,
            ),
        )
        .where(tenants.c.tenant_id.in_(list(tenant_ids)))
    )
    return store.read(lambda conn: {op.tenant_id: op for op in map(rows.to_operation, conn.execute(query))})


def cleanup_page(
    store: SqlTenantStateStore, vis: Visibility, *, offset: int, limit: int
) -> tuple[list[LedgerEntry], Page]:
    where = sa.and_(
        resources.c.status == ResourceStatus.PENDING_CLEANUP.value,
        _execution_visible(vis, resources.c.tenant_id, resources.c.execution_id),
    )
    query = (
        sa.select(resources)
        .where(where)
        .order_by(
            resources.c.tenant_id,
            resources.c.execution_id,
            resources.c.unit_index,
            resources.c.generation,
            resources.c.id,
        )
        .offset(offset)
        .limit(limit)
    )
    total = sa.select(sa.func.count()).select_from(resources).where(where)

    def work(conn: Connection) -> tuple[list[LedgerEntry], int]:
        return [rows.to_entry(r) for r in conn.execute(query)], int(conn.execute(total).scalar_one())

    found, count = store.read(work)
    return found, Page(offset, limit, count)


def resources_named(
    store: SqlTenantStateStore, vis: Visibility, resource_id: str, *, limit: int, offset: int = 0
) -> list[LedgerEntry]:
    """The visible ledger rows of one resource id (by its index), oldest first."""
    query = (
        sa.select(resources)
        .where(
            resources.c.resource_id == resource_id,
            _execution_visible(vis, resources.c.tenant_id, resources.c.execution_id),
        )
        .order_by(resources.c.id)
        .offset(offset)
        .limit(limit)
    )
    return store.read(lambda conn: [rows.to_entry(r) for r in conn.execute(query)])


def error_series(
    store: SqlTenantStateStore, vis: Visibility, *, now: datetime, window: timedelta, buckets: int
) -> dict[str, Any]:
    """Tries that failed in ``(now - window, now]``, counted per bucket, provider and code.

    A failed try's time is when its outcome was recorded (``outcome_at``, indexed; every try
    with an error has one). The database does the counting: the answer is one row per series
    and bucket, however many tries failed. A series' classification is its code's (for
    ``PARTIAL_FAILURE``, the catalog's, not each try's most severe unit).
    """
    start = now - window
    width = window / buckets
    at = operations.c.outcome_at
    edges = [sa.literal(start + width * (i + 1), UtcDateTime) for i in range(buckets - 1)]
    slot = sa.case(*[(at < edge, i) for i, edge in enumerate(edges)], else_=buckets - 1).label("slot")
    query = (
        sa.select(operations.c.provider, operations.c.error_code, slot, sa.func.count())
        .where(
            operations.c.error_code.is_not(None),
            at > sa.literal(start, UtcDateTime),
            at <= sa.literal(now, UtcDateTime),
            _visible(vis, operations),
        )
        .group_by(operations.c.provider, operations.c.error_code, slot)
    )
    counted = store.read(
        lambda conn: [(str(p), str(c), int(s), int(n)) for p, c, s, n in conn.execute(query)]
    )
    series: dict[tuple[str, str], list[int]] = {}
    for provider, code, index, n in counted:
        series.setdefault((provider, code), [0] * buckets)[index] += n
    return {
        "start": start.isoformat(),
        "bucket_seconds": width.total_seconds(),
        "buckets": [(start + width * i).isoformat() for i in range(buckets)],
        "series": [
            {
                "provider": p,
                "code": c,
                "classification": _classification(c),
                "counts": values,
                "total": sum(values),
            }
            for (p, c), values in sorted(series.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
        ],
    }


def _classification(code: str) -> str:
    try:
        return ErrorCode(code).classification.value
    except ValueError:
        return "unknown"
