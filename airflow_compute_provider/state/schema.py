"""The state store's tables (SQLAlchemy Core) and the versioning that guards them.

    compute_state_schema_version   one row per applied schema version
    compute_state_tenants          one row per tenant: status, holder, ``version`` for optimistic locking
    compute_state_operations       one row per try of an execution, with its outcome and error JSON
    compute_state_resources        the ledger: one row per unit generation an execution intended
    compute_state_transitions      the audit trail of tenant status moves

``ensure_schema`` runs on first use, inside one transaction that holds a lock (PostgreSQL
advisory lock; SQLite's ``BEGIN IMMEDIATE``) so that racing first users create tables once. A
database whose recorded version is newer than ``SCHEMA_VERSION`` is refused: older code must
not write rows a newer schema gives other meanings. A later version appends a step to
``_MIGRATIONS`` (explicit DDL; ``_METADATA`` always describes the newest schema).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.state.status import OperationStatus, ResourceStatus, TenantEvent, TenantStatus

SCHEMA_VERSION = 3

#: an arbitrary constant: the key of the PostgreSQL advisory lock held while creating tables
_PG_LOCK_KEY = 0x636F6D70757465  # "compute"


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always come back time-zone aware (SQLite forgets zones)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state store; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _one_of(column: str, values: Any) -> sa.CheckConstraint:
    listed = ", ".join(f"'{v.value}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})")


# BIGINT on PostgreSQL; SQLite autoincrements only a column declared INTEGER.
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_METADATA = sa.MetaData()

schema_versions = sa.Table(
    "compute_state_schema_version",
    _METADATA,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", UtcDateTime, nullable=False),
    sa.Column("description", sa.String(200), nullable=False),
)

tenants = sa.Table(
    "compute_state_tenants",
    _METADATA,
    sa.Column("tenant_id", sa.String(63), primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("execution_id", sa.String(1000)),
    sa.Column("attempt", sa.Integer),
    sa.Column("held", sa.Boolean, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_compute_state_tenants_status", "status", "tenant_id"),
    _one_of("status", TenantStatus),
)

operations = sa.Table(
    "compute_state_operations",
    _METADATA,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(63), nullable=False),
    sa.Column("execution_id", sa.String(1000), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("operation", sa.String(250), nullable=False),
    sa.Column("provider", sa.String(250), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error", sa.Text),  # ComputeError JSON
    sa.Column("will_retry", sa.Boolean),
    sa.Column("tenant_status_after", sa.String(32)),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("outcome_at", UtcDateTime),
    sa.Column("finished_at", UtcDateTime),
    sa.Column("eventual_status", sa.String(32)),
    sa.Column("eventual_error", sa.Text),
    sa.Column("eventual_at", UtcDateTime),
    # version 2 (_add_try_identity): who runs the try, and its last sign of life
    sa.Column("try_token", sa.String(255)),
    sa.Column("airflow_ti", sa.String(1000)),
    sa.Column("airflow_try_number", sa.Integer),
    sa.Column("heartbeat_at", UtcDateTime),
    sa.Column("live_until", UtcDateTime),
    # The Airflow task instance that began the try (version 3; NULL on older rows and for
    # callers outside a task). The Compute Health page authorizes by this DAG id.
    sa.Column("dag_id", sa.String(250)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("task_id", sa.String(250)),
    sa.Column("map_index", sa.Integer),
    sa.UniqueConstraint("tenant_id", "execution_id", "attempt", name="uq_compute_state_operations_try"),
    sa.Index("ix_compute_state_operations_tenant", "tenant_id", "id"),
    sa.Index("ix_compute_state_operations_status", "status", "error_code"),
    sa.Index("ix_compute_state_operations_dag", "dag_id", "id"),
    sa.Index("ix_compute_state_operations_outcome_at", "outcome_at"),
    _one_of("status", OperationStatus),
)

resources = sa.Table(
    "compute_state_resources",
    _METADATA,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(63), nullable=False),
    sa.Column("execution_id", sa.String(1000), nullable=False),
    sa.Column("provider", sa.String(250), nullable=False),
    sa.Column("conn_id", sa.String(250)),
    sa.Column("locator", sa.Text, nullable=False),  # JSON object of strings
    sa.Column("unit_index", sa.Integer, nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("idempotency_token", sa.String(255), nullable=False),
    sa.Column("resource_id", sa.String(2048)),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),  # ComputeError JSON
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint(
        "tenant_id", "execution_id", "unit_index", "generation", name="uq_compute_state_resources_unit"
    ),
    sa.Index("ix_compute_state_resources_status", "status", "tenant_id"),
    sa.Index("ix_compute_state_resources_execution", "tenant_id", "execution_id"),
    sa.Index("ix_compute_state_resources_resource_id", "resource_id"),
    _one_of("status", ResourceStatus),
)

transitions = sa.Table(
    "compute_state_transitions",
    _METADATA,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(63), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("from_status", sa.String(32), nullable=False),
    sa.Column("to_status", sa.String(32), nullable=False),
    sa.Column("execution_id", sa.String(1000)),
    sa.Column("attempt", sa.Integer),
    sa.Column("note", sa.Text),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Index("ix_compute_state_transitions_tenant", "tenant_id", "id"),
    _one_of("event", TenantEvent),
)


def _create_v1(conn: Connection) -> None:
    _METADATA.create_all(conn, checkfirst=True)


def _add_columns(conn: Connection, table: sa.Table, names: tuple[str, ...]) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for each of ``names`` the table lacks (a database created
    at a later version by ``_create_v1``, which builds the newest tables, already has them)."""
    present = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    preparer = conn.dialect.identifier_preparer
    for name in names:
        if name in present:
            continue
        column = table.c[name]
        kind = column.type.compile(dialect=conn.dialect)
        conn.execute(
            sa.text(f"ALTER TABLE {preparer.quote(table.name)} ADD COLUMN {preparer.quote(name)} {kind}")
        )


def _add_try_identity(conn: Connection) -> None:
    """Version 2: the token of the process running a try, the Airflow try it is (shown, and how
    a double run is recognised), its heartbeat, and how long a deferred try is alive without one.
    All nullable: a try recorded before has none (the store then accepts any writer of it)."""
    _add_columns(
        conn,
        operations,
        ("try_token", "airflow_ti", "airflow_try_number", "heartbeat_at", "live_until"),
    )


#: the Airflow task instance columns of version 3 (all nullable: older rows have none)
_TASK_INSTANCE_COLUMNS = ("dag_id", "run_id", "task_id", "map_index")
#: the indexes version 3 adds: the Compute Health page's bounded, DAG-filtered reads
_V3_INDEXES = (
    "ix_compute_state_tenants_status",
    "ix_compute_state_operations_dag",
    "ix_compute_state_operations_outcome_at",
    "ix_compute_state_resources_execution",
    "ix_compute_state_resources_resource_id",
)


def _task_instance_and_page_indexes(conn: Connection) -> None:
    """Operations record the task instance that began them; indexes for the health page.

    A database created at this version by ``_create_v1`` (``_METADATA`` is the
    newest schema) has the columns and indexes already: each is added only when missing.
    """
    _add_columns(conn, operations, _TASK_INSTANCE_COLUMNS)
    indexes = {
        i["name"]
        for table in (tenants, operations, resources)
        for i in sa.inspect(conn).get_indexes(table.name)
    }
    for table in (tenants, operations, resources):
        for index in table.indexes:
            if index.name in _V3_INDEXES and index.name not in indexes:
                index.create(conn)


#: version -> (what it does, the step that brings a database from version - 1 to it)
_MIGRATIONS: dict[int, tuple[str, Callable[[Connection], None]]] = {
    1: ("tenants, operations, resource ledger, transitions", _create_v1),
    2: ("operations: try token, Airflow try, heartbeat", _add_try_identity),
    3: (
        "operations record their Airflow task instance; indexes for the health page",
        _task_instance_and_page_indexes,
    ),
}


class StateSchemaError(ComputeConfigError):
    """The database holds a schema this code cannot use (written by a newer version)."""


def ensure_schema(conn: Connection, where: str) -> int:
    """Create or upgrade the tables inside the caller's transaction; returns the version found.

    ``where`` names the database in messages (its URL without the password).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    found = current_version(conn)
    if found > SCHEMA_VERSION:
        raise StateSchemaError(
            f"the state database {where} has schema version {found}, but this "
            f"airflow-compute-provider only knows versions up to {SCHEMA_VERSION}; "
            "upgrade airflow-compute-provider everywhere that opens this database",
            argument="url",
        )
    for version in range(found + 1, SCHEMA_VERSION + 1):
        description, step = _MIGRATIONS[version]
        step(conn)
        conn.execute(
            schema_versions.insert().values(
                version=version, applied_at=datetime.now(UTC), description=description
            )
        )
    return found


def current_version(conn: Connection) -> int:
    """The newest recorded schema version, 0 for a database the store never opened."""
    if not sa.inspect(conn).has_table(schema_versions.name):
        return 0
    newest = conn.execute(sa.select(sa.func.max(schema_versions.c.version))).scalar()
    return int(newest or 0)
