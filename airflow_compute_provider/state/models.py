"""What the state store hands back: small frozen records, one per table.

    Tenant          a tenant's status and who holds it
    Operation       one try (attempt) of one execution, with its outcome and error
    TryRef          which try a write comes from: its attempt and the token of its process
    TaskInstanceRef the Airflow task instance that began an operation (its DAG, run, task)
    LedgerEntry     one unit generation the lifecycle intended to launch, and what became of it
    Transition      one move of a tenant's status (the audit trail ``release`` notes land in)
    ResourceUpdate  the input of ``record_resources``: a new status for one unit generation

Errors travel as ``ComputeError`` objects here and as their JSON in the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.state.status import (
    OperationStatus,
    ResourceStatus,
    TenantEvent,
    TenantStatus,
)

#: ``root_cause.reason`` of a ledger row (or an eventual outcome) where nothing ever ran: the
#: reconciler looked the intent up and the provider had no unit for it
NEVER_LAUNCHED = "never_launched"


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    status: TenantStatus
    #: the execution that holds the tenant, or held it last (``None`` before the first one)
    execution_id: str | None
    attempt: int | None
    #: whether ``execution_id`` holds the tenant now: during a try, and while its retry is due
    held: bool
    #: the note of the last release
    note: str | None
    #: bumped by every transition (optimistic concurrency)
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TaskInstanceRef:
    """The Airflow task instance that began a try, as the store records it (``begin_operation``).

    Recorded, never parsed from the execution id (which a DAG author may set to anything): the
    Compute Health page decides who may see and release a tenant by this ``dag_id``.
    """

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @property
    def key(self) -> str:
        """``dag/run/task/map index``: with Airflow's try number, how the store tells the same try
        run twice (a double run) from the next try."""
        return f"{self.dag_id}/{self.run_id}/{self.task_id}/{self.map_index}"


@dataclass(frozen=True)
class Operation:
    id: int
    tenant_id: str
    execution_id: str
    attempt: int
    operation: str
    provider: str
    status: OperationStatus
    error: ComputeError | None
    #: what ``finish_operation`` was told: ``None`` until the try was finished
    will_retry: bool | None
    #: the tenant status the finish led to (``None`` until finished)
    tenant_status_after: TenantStatus | None
    started_at: datetime
    outcome_at: datetime | None
    finished_at: datetime | None
    #: what became of work that outlived this try (set by the reconciler)
    eventual_status: OperationStatus | None = None
    eventual_error: ComputeError | None = None
    eventual_at: datetime | None = None
    #: the process running the try (``TryRef.token``); a newer begin of the same Airflow try replaces it
    try_token: str | None = None
    #: the Airflow task instance running the try (dag/run/task/map index), and its try number:
    #: shown to people, and how a second process running the same Airflow try is recognised
    airflow_ti: str | None = None
    airflow_try_number: int | None = None
    #: the try's last sign of life (the database's clock): its begin, every write, every renewal
    heartbeat_at: datetime | None = None
    #: a deferred try is alive until then (its deadline) without renewing: the trigger watches
    live_until: datetime | None = None
    #: the task instance that began the try; ``None`` on rows written before schema version 3
    #: and for callers outside an Airflow task
    task_instance: TaskInstanceRef | None = None

    @property
    def ref(self) -> TryRef:
        """The try this operation records, as its writes name it."""
        return TryRef(self.attempt, self.try_token or "")

    @property
    def error_code(self) -> ErrorCode | None:
        return self.error.code if self.error is not None else None


@dataclass(frozen=True)
class TryRef:
    """Which try a write comes from: the store's attempt number for the execution, and the token
    naming the process that runs it (``hostname:pid:random``).

    Every write of a try names it; the store refuses one whose try is no longer the execution's
    newest (``SupersededTryError``), so a zombie or the loser of a double run changes nothing.
    """

    attempt: int
    token: str

    def __str__(self) -> str:
        return f"try {self.attempt} ({self.token})"


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    tenant_id: str
    execution_id: str
    provider: str
    conn_id: str | None
    #: where the resource lives, as the backend's ``locator()`` says (opaque to the store)
    locator: Mapping[str, str]
    unit_index: int
    generation: int
    idempotency_token: str
    resource_id: str | None
    status: ResourceStatus
    #: how many launch requests were about to be sent for this intent
    attempts: int
    last_error: ComputeError | None
    created_at: datetime
    updated_at: datetime
    #: bumped by every change (optimistic concurrency)
    version: int = 0

    @property
    def refused_resend(self) -> bool:
        """An intent re-sent by a later try (its first sender stalled or died) that the provider
        refused: the first sender's request may still be on its way."""
        return (
            self.status is ResourceStatus.FAILED
            and not self.resource_id
            and self.attempts > 1
            and not self.never_launched
        )

    @property
    def never_launched(self) -> bool:
        """An intent the reconciler looked up and found nowhere: no unit of it ever ran, so the
        next try re-sends it with the same token instead of a new generation (a stalled try's
        late launch carries that token too, and the provider answers both with one unit)."""
        return (
            self.status is ResourceStatus.FAILED
            and not self.resource_id
            and self.last_error is not None
            and self.last_error.root_cause.reason == NEVER_LAUNCHED
        )


@dataclass(frozen=True)
class Transition:
    id: int
    tenant_id: str
    event: TenantEvent
    from_status: TenantStatus
    to_status: TenantStatus
    execution_id: str | None
    attempt: int | None
    note: str | None
    at: datetime


@dataclass(frozen=True)
class ResourceUpdate:
    """A unit generation's new status; ``resource_id`` once known, ``error`` when it failed."""

    unit_index: int
    generation: int
    status: ResourceStatus | str
    resource_id: str | None = None
    error: ComputeError | None = None


def newest_generations(entries: Iterable[LedgerEntry]) -> dict[int, LedgerEntry]:
    """The newest generation of every unit, by unit index: what reconcile-before-launch reads."""
    newest: dict[int, LedgerEntry] = {}
    for entry in entries:
        current = newest.get(entry.unit_index)
        if current is None or entry.generation > current.generation:
            newest[entry.unit_index] = entry
    return newest


def to_json_dict(record: Tenant | Operation | LedgerEntry | Transition) -> dict[str, Any]:
    """A record as plain JSON data (for ``--json`` output and logs)."""
    out: dict[str, Any] = {}
    for name in record.__dataclass_fields__:
        out[name] = _plain(getattr(record, name))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, ComputeError):
        return value.to_json_dict()
    if isinstance(value, TaskInstanceRef):
        return asdict(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):  # StrEnum members included
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
