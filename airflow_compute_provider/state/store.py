"""``TenantStateStore``: what the operators, the reconciler and the command line ask of the store.

Operations are keyed by (tenant_id, execution_id): two tenants may use the same execution id
without touching each other. One execution has one operation row per try; the store numbers
them (``attempt`` 1, 2, 3...), so a retry, a cleared task and a new DAG run of the same
execution id are simply its next try. Airflow's own try number is kept for display. The
order the lifecycle calls things in::

    begin_operation ──> record_intent ──> (launch) ──> record_resources ... ──> record_outcome
         │   returns the try: attempt + token      heartbeat (while waiting)      │
         └── refused: CONFLICT (another execution holds the tenant, retriable)    │
                      TENANT_STATE_CONFLICT (held for investigation)              v
                                                      finish_operation(will_retry=...) from
                                                      Airflow's retry / failure callbacks

Every write a try makes names it (``by=TryRef(attempt, token)``); one from a try that is no
longer its execution's newest raises ``SupersededTryError`` and changes nothing. ``by=None``
is for writers that are not a try (the reconciler, the command line): they act on the newest.

Every method validates its arguments first (``ComputeConfigError`` naming the argument), and
every write is one transaction: it happens entirely or not at all.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.state.models import (
    LedgerEntry,
    Operation,
    ResourceUpdate,
    TaskInstanceRef,
    Tenant,
    Transition,
    TryRef,
)
from airflow_compute_provider.state.status import OperationStatus, ResourceStatus, TenantStatus


class TenantStateStore(abc.ABC):
    """Tenants, their operations, and the ledger of the resources those operations launched."""

    # -- the lifecycle -------------------------------------------------------------------------

    @abc.abstractmethod
    def begin_operation(
        self,
        tenant_id: str,
        execution_id: str,
        operation: str,
        provider: str,
        airflow_try_number: int | None = None,
        *,
        token: str | None = None,
        airflow_ti: str | None = None,
        task_instance: TaskInstanceRef | None = None,
    ) -> Operation:
        """Start the execution's next try and return it (``attempt``, numbered by the store, and
        ``try_token``, the writer's ``token``: by default one per process); creates the tenant on
        first sight.

        ``airflow_ti`` (the Airflow task instance: dag/run/task/map index) and
        ``airflow_try_number`` say which Airflow try this is. The same Airflow try begun again
        while its operation is unfinished is the same try: with the same token nothing changes;
        with another (a second process: a double run, or a rerun after its worker died) the
        newest begin takes the try over, and the older process's writes are refused. Anything
        else is the next attempt, the holder's next try included; an unfinished earlier try is
        closed as abandoned. Refusals write nothing: ``TENANT_STATE_CONFLICT`` when the tenant
        needs investigation, ``CONFLICT`` when another execution holds it.

        ``task_instance`` is the Airflow task instance running the try (the operator passes
        it); it is recorded with the operation, and the Compute Health page authorizes by it.
        Without ``airflow_ti``, its ``key`` is the try's Airflow identity.
        """

    @abc.abstractmethod
    def heartbeat(
        self, tenant_id: str, execution_id: str, *, by: TryRef, live_until: datetime | None = None
    ) -> Operation:
        """Try ``by`` is alive (the database's clock stamps it); ``live_until``: and will be until
        then without renewing (a deferred try: its deadline). Refused like any write of a
        superseded try, which is how a zombie waiting in a loop learns it must stop."""

    def now(self) -> datetime:
        """The store's clock (the database's, for a SQL store): what heartbeats are stamped with."""
        return datetime.now(UTC)

    @abc.abstractmethod
    def record_intent(
        self,
        tenant_id: str,
        execution_id: str,
        *,
        provider: str,
        conn_id: str | None,
        locator: Mapping[str, str],
        unit_index: int,
        generation: int,
        idempotency_token: str,
        by: TryRef | None = None,
    ) -> LedgerEntry:
        """Write the ledger row of one unit generation *before* its launch request is sent.

        Recording the same intent again (the same token: the request is being re-sent after a
        crash) counts one more attempt; an intent whose unit generation already launched is
        refused: a relaunch is the next generation.
        """

    @abc.abstractmethod
    def record_resources(
        self,
        tenant_id: str,
        execution_id: str,
        updates: Sequence[ResourceUpdate],
        *,
        by: TryRef | None = None,
    ) -> list[LedgerEntry]:
        """Move ledger rows (by unit index and generation) to new statuses, in one transaction.

        Every row must have its intent recorded. An update ``RESOURCE_TRANSITIONS`` does not
        allow from the row's status is a stale observation and is not applied (a late poll
        cannot turn a succeeded unit back into a running one); the returned entries show what
        the ledger holds.
        """

    @abc.abstractmethod
    def ledger(self, tenant_id: str, execution_id: str) -> list[LedgerEntry]:
        """Every ledger row of an execution, by unit index then generation."""

    @abc.abstractmethod
    def record_outcome(
        self,
        tenant_id: str,
        execution_id: str,
        outcome: ComputeError | None,
        *,
        by: TryRef | None = None,
    ) -> Operation:
        """Keep the current try's outcome (``None`` is success) without moving the tenant yet."""

    @abc.abstractmethod
    def finish_operation(
        self,
        tenant_id: str,
        execution_id: str,
        outcome: ComputeError | None,
        *,
        will_retry: bool,
        note: str | None = None,
        by: TryRef | None = None,
    ) -> Tenant:
        """End the current try and move the tenant.

        ``None`` -> ``ready``; an error with ``will_retry`` -> ``retry_pending`` (held for the
        retry); an error without -> ``needs_investigation`` when non-retriable or manual,
        ``retry_pending`` (free) when retriable. The error is kept with the operation.
        Finishing the same try again with the same result changes nothing. ``note`` lands in
        the transition (the reconciler says why it finished a try whose worker never did).
        """

    @abc.abstractmethod
    def timeouts_so_far(self, tenant_id: str, execution_id: str) -> int:
        """How many tries of this execution ended ``OPERATION_TIMEOUT``."""

    @abc.abstractmethod
    def last_error(self, tenant_id: str, execution_id: str) -> ComputeError | None:
        """The error recorded for this execution's newest try; ``None`` while it has none.

        Deliberately not an older try's error: a failure callback asking for the error of the
        try that just failed must never get the previous try's instead.
        """

    # -- the reconciler ------------------------------------------------------------------------

    @abc.abstractmethod
    def list_operations(
        self,
        *,
        tenant_id: str | None = None,
        status: OperationStatus | str | None = None,
        error_code: ErrorCode | str | None = None,
        awaiting_eventual_outcome: bool = False,
    ) -> list[Operation]:
        """Operations, newest first. ``awaiting_eventual_outcome`` keeps only finished tries
        that failed (say with ``OPERATION_TIMEOUT``) and have no eventual outcome yet."""

    @abc.abstractmethod
    def record_eventual_outcome(
        self, tenant_id: str, execution_id: str, attempt: int, outcome: ComputeError | None
    ) -> Operation:
        """What became of work that outlived its try; set once (the same value again is a no-op)."""

    @abc.abstractmethod
    def hold_for_investigation(
        self,
        tenant_id: str,
        execution_id: str,
        attempt: int,
        error: ComputeError,
        note: str,
        *,
        expected_version: int,
    ) -> Tenant:
        """``retry_pending`` -> ``needs_investigation`` after the try that left it there ended.

        For the reconciler, once no try is coming and the error that ends the story needs a
        human by ``finish_operation``'s rule (non-retriable or manual; a retriable one is
        refused). Try ``attempt`` of ``execution_id`` must be the try that left the tenant
        ``retry_pending``, and the tenant still at ``expected_version``: a tenant a new try took
        over meanwhile is never overwritten (``IllegalTransitionError``, nothing written).

        When that try's work outlived it (it timed out, or was abandoned), ``error`` is what the
        work became and is recorded as the try's eventual outcome in the same transaction (set
        once, as ``record_eventual_outcome``); otherwise it must be the try's own error. The
        tenant keeps that execution and try, no longer held; ``note`` lands in its history.
        """

    @abc.abstractmethod
    def hold_invalid_request(
        self,
        tenant_id: str,
        error: ComputeError,
        *,
        execution_id: str | None = None,
        attempt: int | None = None,
    ) -> Tenant:
        """A try refused by its own argument validation (before any provider call) holds the
        tenant for investigation with its ``ComputeConfigError`` (requirement 2.2): ``ready`` or
        ``retry_pending`` -> ``needs_investigation``, the tenant created first when the store
        never saw it. A tenant already held for investigation stays as it is (nothing written);
        one with a try in progress is refused (``IllegalTransitionError``, nothing written).
        ``error`` (code and message) becomes the tenant's note; ``execution_id`` and ``attempt``
        name the refused try where they are valid.
        """

    # -- reading, and the operators of the platform --------------------------------------------

    @abc.abstractmethod
    def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    @abc.abstractmethod
    def list_tenants(self, status: TenantStatus | str | None = None) -> list[Tenant]: ...

    @abc.abstractmethod
    def list_resources(
        self,
        *,
        tenant_id: str | None = None,
        execution_id: str | None = None,
        status: ResourceStatus | str | None = None,
    ) -> list[LedgerEntry]: ...

    @abc.abstractmethod
    def operations(self, tenant_id: str) -> list[Operation]:
        """The tenant's history, newest first."""

    @abc.abstractmethod
    def transitions(self, tenant_id: str) -> list[Transition]:
        """Every status move of the tenant, newest first (release notes included)."""

    @abc.abstractmethod
    def release(
        self, tenant_id: str, note: str, *, force: bool = False, expected_version: int | None = None
    ) -> Tenant:
        """An operator's way out of ``needs_investigation``: back to ``ready``, with a note.

        ``force`` also frees a tenant held by an execution that will never come back (its
        worker died); that execution's unfinished try is marked abandoned. With
        ``expected_version`` the release happens only while the tenant is still at that
        version (``IllegalTransitionError`` otherwise): whoever decided on what they read
        (the reconciler) never frees a tenant another execution took in the meantime.
        """

    def close(self) -> None:  # noqa: B027 - optional hook: stores without resources need none
        """Release connections; the store must not be used afterwards."""
