"""The tenant state store: a failed compute operation never corrupts tenant state.

    status.py    TenantStatus and the other statuses; the transition tables; IllegalTransitionError
    rules.py     who may begin on a tenant, and where a finished try leaves it (pure decisions)
    models.py    the frozen records the store returns: Tenant, Operation, LedgerEntry, Transition
    validate.py  argument checks (ComputeConfigError naming the argument) before any write
    store.py     TenantStateStore, the interface the operators use
    schema.py    the tables and their version guard
    sql.py       SqlTenantStateStore: the interface on SQLAlchemy (SQLite, PostgreSQL)
    config.py    which database: an Airflow connection, or an embedded SQLite file
    cli.py       ``python -m airflow_compute_provider.state`` for the platform's operators

Only ``errors`` is imported from the rest of the package; Airflow only lazily, in config.py.
"""

from airflow_compute_provider.state.models import (
    LedgerEntry,
    Operation,
    ResourceUpdate,
    TaskInstanceRef,
    Tenant,
    Transition,
    TryRef,
    newest_generations,
)
from airflow_compute_provider.state.schema import SCHEMA_VERSION, StateSchemaError
from airflow_compute_provider.state.sql import SqlTenantStateStore
from airflow_compute_provider.state.status import (
    RESOURCE_TRANSITIONS,
    TENANT_TRANSITIONS,
    IllegalTransitionError,
    OperationStatus,
    ResourceStatus,
    SupersededTryError,
    TenantEvent,
    TenantNotFoundError,
    TenantStatus,
    TryEndedError,
)
from airflow_compute_provider.state.store import TenantStateStore

__all__ = [
    "RESOURCE_TRANSITIONS",
    "SCHEMA_VERSION",
    "TENANT_TRANSITIONS",
    "IllegalTransitionError",
    "LedgerEntry",
    "Operation",
    "OperationStatus",
    "ResourceStatus",
    "ResourceUpdate",
    "SqlTenantStateStore",
    "StateSchemaError",
    "SupersededTryError",
    "TaskInstanceRef",
    "Tenant",
    "TenantEvent",
    "TenantNotFoundError",
    "TenantStateStore",
    "TenantStatus",
    "Transition",
    "TryEndedError",
    "TryRef",
    "newest_generations",
]
