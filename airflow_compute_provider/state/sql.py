"""``SqlTenantStateStore``: the state store on any SQLAlchemy database (SQLite, PostgreSQL).

How a write happens, whatever the method:

    validate the arguments (validate.py)         nothing touched yet: bad input writes nothing
    Database.write(name, work)                   one transaction (engine.py)
      └── work(conn): read rows (rows.py), ask status.py / rules.py, write
            a tenant row changes only through UPDATE ... WHERE version = <the version read>
    COMMIT; or, when a concurrent writer got there first (no row matched the version, or a
    unique key was taken), ROLLBACK and run ``work`` again on fresh rows

So two workers racing on one tenant cannot both win, and no update is lost: the loser's
UPDATE matches no row and its next round sees the winner's state (and is refused, or builds
on it). A process killed mid-transaction leaves the previous state: nothing was committed.

Tries: ``begin_operation`` numbers an execution's tries itself (1, 2, 3... whatever Airflow's
try number, which is kept for display), records the token of the process running the try, and
returns it; a write that names its try (``by=TryRef``) is refused with ``SupersededTryError``
(and a warning in the log) unless that try is still the execution's newest, and renews its
heartbeat otherwise. Every timestamp is the database's clock (``clock.py``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_compute_provider.errors import ComputeConfigError, ComputeError, ErrorCode
from airflow_compute_provider.state import rows
from airflow_compute_provider.state import validate as v
from airflow_compute_provider.state.clock import database_now, process_token
from airflow_compute_provider.state.engine import Database, LostRace
from airflow_compute_provider.state.models import (
    LedgerEntry,
    Operation,
    ResourceUpdate,
    TaskInstanceRef,
    Tenant,
    Transition,
    TryRef,
)
from airflow_compute_provider.state.rules import (
    BeginDecision,
    BeginRequest,
    decide_begin,
    finish_target,
    refusal,
)
from airflow_compute_provider.state.schema import operations, resources, tenants, transitions
from airflow_compute_provider.state.status import (
    IllegalTransitionError,
    OperationStatus,
    ResourceStatus,
    SupersededTryError,
    TenantEvent,
    TenantNotFoundError,
    TenantStatus,
    TryEndedError,
    check_tenant_transition,
    resource_move_allowed,
)
from airflow_compute_provider.state.store import TenantStateStore

#: errors after which the work a try started may have outlived it (the reconciler's business)
_WORK_MAY_OUTLIVE = (ErrorCode.OPERATION_TIMEOUT.value,)


_log = logging.getLogger(__name__)
T = TypeVar("T")


class SqlTenantStateStore(TenantStateStore):
    """The tenant state store on the database at ``url`` (any SQLAlchemy URL).

    Tables are created on first use. The store is safe to share between threads; each
    process should open its own.
    """

    def __init__(self, url: str | sa.URL, *, busy_timeout: float = 30.0) -> None:
        self._db = Database(url, busy_timeout=busy_timeout)
        #: the database, named without its password (for messages and logs)
        self.where = self._db.where

    def __repr__(self) -> str:
        return f"SqlTenantStateStore({self.where!r})"

    def close(self) -> None:
        self._db.dispose()

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one read transaction on the store's database: for read-only views
        (the Compute Health page's bounded queries) that select exactly what they show."""
        return self._db.read(work)

    # -- the lifecycle -------------------------------------------------------------------------

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
        recorded = _task_instance_columns(task_instance)
        request = BeginRequest(
            tenant_id=v.tenant_id(tenant_id),
            execution_id=v.execution_id(execution_id),
            operation=v.text(operation, "operation"),
            provider=v.text(provider, "provider"),
            attempt=(
                None
                if airflow_try_number is None
                else v.positive_int(airflow_try_number, "airflow_try_number")
            ),
            token=process_token() if token is None else v.text(token, "token", v.TOKEN_MAX),
            airflow_ti=v.optional_text(
                airflow_ti if airflow_ti is not None or task_instance is None else task_instance.key,
                "airflow_ti",
                v.EXECUTION_ID_MAX,
            ),
        )
        return self._db.write("begin_operation", lambda conn: self._begin(conn, request, recorded))

    def heartbeat(
        self, tenant_id: str, execution_id: str, *, by: TryRef, live_until: datetime | None = None
    ) -> Operation:
        tenant_id, execution_id = v.tenant_id(tenant_id), v.execution_id(execution_id)
        checked = _checked_try(by)
        if live_until is not None and (not isinstance(live_until, datetime) or live_until.tzinfo is None):
            raise ComputeConfigError("must be a time-zone aware datetime", argument="live_until")
        return self._db.write(
            "heartbeat", lambda conn: self._heartbeat(conn, tenant_id, execution_id, checked, live_until)
        )

    def now(self) -> datetime:
        return self._db.read(database_now)

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
        checked = _optional_try(by)
        values = {
            "tenant_id": v.tenant_id(tenant_id),
            "execution_id": v.execution_id(execution_id),
            "provider": v.text(provider, "provider"),
            "conn_id": v.optional_text(conn_id, "conn_id"),
            "locator": json.dumps(v.locator(locator), sort_keys=True),
            "unit_index": v.non_negative_int(unit_index, "unit_index"),
            "generation": v.non_negative_int(generation, "generation"),
            "idempotency_token": v.text(idempotency_token, "idempotency_token", v.TOKEN_MAX),
        }
        return self._db.write("record_intent", lambda conn: self._intent(conn, values, checked))

    def record_resources(
        self,
        tenant_id: str,
        execution_id: str,
        updates: Sequence[ResourceUpdate],
        *,
        by: TryRef | None = None,
    ) -> list[LedgerEntry]:
        tenant_id = v.tenant_id(tenant_id)
        execution_id = v.execution_id(execution_id)
        writer = _optional_try(by)
        checked = [_checked_update(u, i) for i, u in enumerate(updates)]
        return self._db.write(
            "record_resources",
            lambda conn: self._resources(conn, tenant_id, execution_id, checked, writer),
        )

    def ledger(self, tenant_id: str, execution_id: str) -> list[LedgerEntry]:
        return self.list_resources(tenant_id=tenant_id, execution_id=execution_id)

    def record_outcome(
        self,
        tenant_id: str,
        execution_id: str,
        outcome: ComputeError | None,
        *,
        by: TryRef | None = None,
    ) -> Operation:
        tenant_id, execution_id = v.tenant_id(tenant_id), v.execution_id(execution_id)
        outcome = _checked_outcome(outcome)
        writer = _optional_try(by)
        return self._db.write(
            "record_outcome", lambda conn: self._outcome(conn, tenant_id, execution_id, outcome, writer)
        )

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
        tenant_id, execution_id = v.tenant_id(tenant_id), v.execution_id(execution_id)
        outcome = _checked_outcome(outcome)
        will_retry = v.boolean(will_retry, "will_retry")
        note = v.note(note) if note is not None else None
        writer = _optional_try(by)
        return self._db.write(
            "finish_operation",
            lambda conn: self._finish(
                conn, tenant_id, execution_id, outcome, will_retry, note=note, by=writer
            ),
        )

    def timeouts_so_far(self, tenant_id: str, execution_id: str) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(operations)
            .where(
                operations.c.tenant_id == v.tenant_id(tenant_id),
                operations.c.execution_id == v.execution_id(execution_id),
                operations.c.error_code == ErrorCode.OPERATION_TIMEOUT.value,
            )
        )
        return self._db.read(lambda conn: int(conn.execute(query).scalar_one()))

    def last_error(self, tenant_id: str, execution_id: str) -> ComputeError | None:
        query = (
            sa.select(operations.c.error)
            .where(
                operations.c.tenant_id == v.tenant_id(tenant_id),
                operations.c.execution_id == v.execution_id(execution_id),
            )
            .order_by(operations.c.attempt.desc())
            .limit(1)
        )
        return rows.to_error(self._db.read(lambda conn: conn.execute(query).scalar()))

    # -- the reconciler ------------------------------------------------------------------------

    def list_operations(
        self,
        *,
        tenant_id: str | None = None,
        status: OperationStatus | str | None = None,
        error_code: ErrorCode | str | None = None,
        awaiting_eventual_outcome: bool = False,
    ) -> list[Operation]:
        query = sa.select(operations).order_by(operations.c.id.desc())
        if tenant_id is not None:
            query = query.where(operations.c.tenant_id == v.tenant_id(tenant_id))
        wanted = v.optional_member(OperationStatus, status, "status")
        if wanted is not None:
            query = query.where(operations.c.status == wanted.value)
        code = v.optional_member(ErrorCode, error_code, "error_code")
        if code is not None:
            query = query.where(operations.c.error_code == code.value)
        if v.boolean(awaiting_eventual_outcome, "awaiting_eventual_outcome"):
            query = query.where(
                operations.c.finished_at.is_not(None),
                operations.c.eventual_status.is_(None),
                sa.or_(
                    operations.c.error_code.in_(_WORK_MAY_OUTLIVE),
                    operations.c.status == OperationStatus.ABANDONED.value,
                ),
            )
        return self._db.read(lambda conn: [rows.to_operation(r) for r in conn.execute(query)])

    def record_eventual_outcome(
        self, tenant_id: str, execution_id: str, attempt: int, outcome: ComputeError | None
    ) -> Operation:
        key = (v.tenant_id(tenant_id), v.execution_id(execution_id), v.positive_int(attempt, "attempt"))
        outcome = _checked_outcome(outcome)
        return self._db.write("record_eventual_outcome", lambda conn: self._eventual(conn, *key, outcome))

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
        key = (v.tenant_id(tenant_id), v.execution_id(execution_id), v.positive_int(attempt, "attempt"))
        checked = _checked_outcome(error)
        if checked is None:
            raise ComputeConfigError("must be a ComputeError", argument="error")
        note = v.note(note)
        version = v.non_negative_int(expected_version, "expected_version")
        return self._db.write(
            "hold_for_investigation",
            lambda conn: self._hold(conn, *key, error=checked, note=note, expected_version=version),
        )

    def hold_invalid_request(
        self,
        tenant_id: str,
        error: ComputeError,
        *,
        execution_id: str | None = None,
        attempt: int | None = None,
    ) -> Tenant:
        tenant_id = v.tenant_id(tenant_id)
        if not isinstance(error, ComputeError):
            raise ComputeConfigError(f"must be a ComputeError, got {type(error).__name__}", argument="error")
        checked = error
        if execution_id is not None:
            execution_id = v.execution_id(execution_id)
        if attempt is not None:
            attempt = v.positive_int(attempt, "attempt")
        note = v.note(f"{checked.code.value}: {checked.message}"[: v.NOTE_MAX])
        return self._db.write(
            "hold_invalid_request",
            lambda conn: self._hold_invalid(conn, tenant_id, note, execution_id, attempt),
        )

    # -- reading, and the operators of the platform --------------------------------------------

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        tenant_id = v.tenant_id(tenant_id)
        return self._db.read(lambda conn: rows.tenant(conn, tenant_id))

    def list_tenants(self, status: TenantStatus | str | None = None) -> list[Tenant]:
        query = sa.select(tenants).order_by(tenants.c.tenant_id)
        wanted = v.optional_member(TenantStatus, status, "status")
        if wanted is not None:
            query = query.where(tenants.c.status == wanted.value)
        return self._db.read(lambda conn: [rows.to_tenant(r) for r in conn.execute(query)])

    def list_resources(
        self,
        *,
        tenant_id: str | None = None,
        execution_id: str | None = None,
        status: ResourceStatus | str | None = None,
    ) -> list[LedgerEntry]:
        query = sa.select(resources).order_by(
            resources.c.tenant_id, resources.c.execution_id, resources.c.unit_index, resources.c.generation
        )
        if tenant_id is not None:
            query = query.where(resources.c.tenant_id == v.tenant_id(tenant_id))
        if execution_id is not None:
            query = query.where(resources.c.execution_id == v.execution_id(execution_id))
        wanted = v.optional_member(ResourceStatus, status, "status")
        if wanted is not None:
            query = query.where(resources.c.status == wanted.value)
        return self._db.read(lambda conn: [rows.to_entry(r) for r in conn.execute(query)])

    def operations(self, tenant_id: str) -> list[Operation]:
        return self.list_operations(tenant_id=tenant_id)

    def transitions(self, tenant_id: str) -> list[Transition]:
        query = (
            sa.select(transitions)
            .where(transitions.c.tenant_id == v.tenant_id(tenant_id))
            .order_by(transitions.c.id.desc())
        )
        return self._db.read(lambda conn: [rows.to_transition(r) for r in conn.execute(query)])

    def release(
        self, tenant_id: str, note: str, *, force: bool = False, expected_version: int | None = None
    ) -> Tenant:
        tenant_id, note = v.tenant_id(tenant_id), v.note(note)
        force = v.boolean(force, "force")
        if expected_version is not None:
            expected_version = v.non_negative_int(expected_version, "expected_version")
        return self._db.write(
            "release", lambda conn: self._release(conn, tenant_id, note, force, expected_version)
        )

    # -- transitions (each runs inside one transaction) ----------------------------------------

    def _begin(self, conn: Connection, request: BeginRequest, recorded: dict[str, Any]) -> Operation:
        now = database_now(conn)
        tenant = rows.tenant(conn, request.tenant_id)
        if tenant is None:
            # First sight. A racing first sight of the same tenant fails this INSERT on the
            # primary key, and Database.write runs us again to find the winner's row.
            conn.execute(
                tenants.insert().values(
                    tenant_id=request.tenant_id,
                    status=TenantStatus.READY.value,
                    held=False,
                    version=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            tenant = rows.tenant(conn, request.tenant_id)
            assert tenant is not None
        newest = rows.newest_operation(conn, request.tenant_id, request.execution_id)
        decision = decide_begin(tenant, request, newest)
        if decision is BeginDecision.ALREADY_BEGUN:
            assert newest is not None
            return newest
        if decision is BeginDecision.TAKE_OVER:
            assert newest is not None
            return self._take_over(conn, newest, request, now)
        attempt = newest.attempt + 1 if newest is not None else 1
        target = TenantStatus.OPERATION_IN_PROGRESS
        check_tenant_transition(tenant.tenant_id, tenant.status, TenantEvent.BEGIN, target)
        self._move_tenant(
            conn,
            tenant,
            target,
            TenantEvent.BEGIN,
            execution_id=request.execution_id,
            attempt=attempt,
            held=True,
            now=now,
        )
        # An earlier try that never finished (its worker died, or it is a zombie) ends here;
        # from now on its writes are refused, since it is no longer the newest.
        self._close_unfinished(conn, request.tenant_id, now)
        inserted = conn.execute(
            operations.insert().values(
                tenant_id=request.tenant_id,
                execution_id=request.execution_id,
                attempt=attempt,
                operation=request.operation,
                provider=request.provider,
                status=OperationStatus.IN_PROGRESS.value,
                started_at=now,
                try_token=request.token,
                airflow_ti=request.airflow_ti,
                airflow_try_number=request.attempt,
                heartbeat_at=now,
                **recorded,
            )
        ).inserted_primary_key
        assert inserted is not None
        op_id = int(inserted[0])
        return rows.operation_by_id(conn, op_id)

    def _take_over(self, conn: Connection, op: Operation, request: BeginRequest, now: datetime) -> Operation:
        """The same Airflow try began in a second process: the newest begin wins. The try keeps
        its attempt number and starts over under the new token; whatever outcome the first
        process recorded is forgotten (the second process runs the try again), and the first
        process's writes are refused from now on (``_check_try``)."""
        _log.warning(
            "try %d of execution %r on tenant %r began again in another process (%s, Airflow try %s): "
            "it takes the try over from %s, whose writes are refused from now on",
            op.attempt,
            op.execution_id,
            op.tenant_id,
            request.token,
            request.attempt,
            op.try_token,
        )
        self._update_operation(
            conn,
            op,
            {
                "try_token": request.token,
                "status": OperationStatus.IN_PROGRESS.value,
                "error_code": None,
                "error": None,
                "outcome_at": None,
                "heartbeat_at": now,
                "live_until": None,
            },
        )
        return rows.operation_by_id(conn, op.id)

    def _heartbeat(
        self, conn: Connection, tenant_id: str, execution_id: str, by: TryRef, live_until: datetime | None
    ) -> Operation:
        op = self._check_try(conn, tenant_id, execution_id, by, "heartbeat")
        self._beat(conn, op, database_now(conn), live_until=live_until)
        return rows.operation_by_id(conn, op.id)

    def _intent(self, conn: Connection, values: dict[str, Any], by: TryRef | None) -> LedgerEntry:
        tenant_id, execution_id = values["tenant_id"], values["execution_id"]
        tenant = self._require_tenant(conn, tenant_id)
        op = self._check_try(conn, tenant_id, execution_id, by, "record_intent")
        holds = (
            tenant.status is TenantStatus.OPERATION_IN_PROGRESS
            and tenant.execution_id == execution_id
            and op.status is OperationStatus.IN_PROGRESS
        )
        if not holds:
            # Launching now could race whoever holds the tenant; the try must not send anything.
            raise refusal(
                BeginRequest(tenant_id, execution_id, op.operation, values["provider"], op.attempt),
                ErrorCode.CONFLICT,
                f"execution {execution_id!r} no longer holds tenant {tenant_id!r} "
                f"({tenant.status.value}, holder {tenant.execution_id!r}); nothing may be launched",
                reason="not_holder",
            )
        key = (values["unit_index"], values["generation"])
        row = rows.ledger_entry(conn, tenant_id, execution_id, *key)
        now = database_now(conn)
        if by is not None:
            self._beat(conn, op, now)
        if row is None:
            conn.execute(
                resources.insert().values(
                    **values,
                    status=ResourceStatus.INTENDED.value,
                    attempts=1,
                    version=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            row = rows.ledger_entry(conn, tenant_id, execution_id, *key)
            assert row is not None
            return row
        subject = _unit_subject(tenant_id, execution_id, *key)
        if row.idempotency_token != values["idempotency_token"] or row.provider != values["provider"]:
            raise IllegalTransitionError(
                f"{subject}: already intended with token {row.idempotency_token!r} on {row.provider}; "
                f"a different launch is a new generation",
                subject=subject,
                current=row.status.value,
                requested=ResourceStatus.INTENDED.value,
            )
        if row.never_launched or row.refused_resend:
            # Nothing of this intent ever ran (the reconciler found nothing, or the provider
            # refused it); the next try re-sends it, reopened.
            self._update_resource(
                conn,
                row,
                {"status": ResourceStatus.INTENDED.value, "attempts": row.attempts + 1, "updated_at": now},
            )
            reopened = rows.ledger_entry(conn, tenant_id, execution_id, *key)
            assert reopened is not None
            return reopened
        if row.status is not ResourceStatus.INTENDED:
            raise IllegalTransitionError(
                f"{subject}: already {row.status.value}; a relaunch is generation {row.generation + 1}",
                subject=subject,
                current=row.status.value,
                requested=ResourceStatus.INTENDED.value,
            )
        # The same request again (re-sent with the same token after a crash): count it.
        self._update_resource(conn, row, {"attempts": row.attempts + 1, "updated_at": now})
        updated = rows.ledger_entry(conn, tenant_id, execution_id, *key)
        assert updated is not None
        return updated

    def _resources(
        self,
        conn: Connection,
        tenant_id: str,
        execution_id: str,
        updates: list[ResourceUpdate],
        by: TryRef | None,
    ) -> list[LedgerEntry]:
        now = database_now(conn)
        live_try = False
        if by is not None:
            op = self._check_try(conn, tenant_id, execution_id, by, "record_resources")
            live_try = op.finished_at is None
            self._beat(conn, op, now)
        done = []
        for update in updates:
            key = (update.unit_index, update.generation)
            subject = _unit_subject(tenant_id, execution_id, *key)
            row = rows.ledger_entry(conn, tenant_id, execution_id, *key)
            if row is None:
                raise IllegalTransitionError(
                    f"{subject}: no intent recorded; record_intent comes before the launch",
                    subject=subject,
                    current=None,
                    requested=str(update.status),
                )
            target = _ledger_target(row, update, live_try=live_try)
            if target is None:
                # A stale poll must not turn a finished unit back into a running one.
                _log.debug("ledger keeps %s for %s; stale report of %s", row.status, subject, update.status)
                done.append(row)
                continue
            changes: dict[str, Any] = {"status": target.value, "updated_at": now}
            if update.resource_id is not None:
                if row.resource_id is not None and row.resource_id != update.resource_id:
                    raise IllegalTransitionError(
                        f"{subject}: is resource {row.resource_id!r}, not {update.resource_id!r}",
                        subject=subject,
                        current=row.status.value,
                        requested=target.value,
                    )
                changes["resource_id"] = update.resource_id
            if update.error is not None:
                changes["last_error"] = update.error.model_dump_json()
            self._update_resource(conn, row, changes)
            updated = rows.ledger_entry(conn, tenant_id, execution_id, *key)
            assert updated is not None
            done.append(updated)
        return done

    def _outcome(
        self,
        conn: Connection,
        tenant_id: str,
        execution_id: str,
        outcome: ComputeError | None,
        by: TryRef | None,
    ) -> Operation:
        op = self._check_try(conn, tenant_id, execution_id, by, "record_outcome")
        if op.finished_at is not None:
            message = (
                f"try {op.attempt} of execution {execution_id!r} on tenant {tenant_id!r} already "
                f"finished ({op.status.value}); its outcome can no longer change"
            )
            if by is not None:
                raise _ended(message, op, by, "record_outcome")
            raise IllegalTransitionError(
                message, subject=tenant_id, current=op.status.value, requested=_op_status(outcome).value
            )
        error = _in_context(outcome, op)
        now = database_now(conn)
        changes: dict[str, Any] = {
            "status": _op_status(outcome).value,
            "error_code": error.code.value if error else None,
            "error": error.model_dump_json() if error else None,
            "outcome_at": now,
        }
        if by is not None:
            changes["heartbeat_at"] = now
        self._update_operation(conn, op, changes)
        return rows.operation_by_id(conn, op.id)

    def _finish(
        self,
        conn: Connection,
        tenant_id: str,
        execution_id: str,
        outcome: ComputeError | None,
        will_retry: bool,
        *,
        note: str | None = None,
        by: TryRef | None = None,
    ) -> Tenant:
        tenant = self._require_tenant(conn, tenant_id)
        op = self._check_try(conn, tenant_id, execution_id, by, "finish_operation")
        target, held = finish_target(outcome, will_retry)
        op_status = _op_status(outcome)
        if op.finished_at is not None:
            same = (
                op.tenant_status_after is target
                and op.status is op_status
                and op.error_code == (outcome.code if outcome else None)
                and op.will_retry == will_retry
            )
            if same:  # the callback ran twice: nothing to do
                return tenant
            message = (
                f"try {op.attempt} of execution {execution_id!r} on tenant {tenant_id!r} already "
                f"finished ({op.status.value}, tenant -> {op.tenant_status_after or 'unchanged'})"
            )
            if by is not None:
                raise _ended(message, op, by, "finish_operation")
            raise IllegalTransitionError(
                message, subject=tenant_id, current=tenant.status.value, requested=target.value
            )
        holder = (
            tenant.status is TenantStatus.OPERATION_IN_PROGRESS
            and tenant.execution_id == execution_id
            and tenant.attempt == op.attempt
        )
        if not holder:
            raise IllegalTransitionError(
                f"tenant {tenant_id!r} is {tenant.status.value} for execution {tenant.execution_id!r} "
                f"(attempt {tenant.attempt}), not held by try {op.attempt} of {execution_id!r}",
                subject=tenant_id,
                current=tenant.status.value,
                requested=target.value,
            )
        check_tenant_transition(tenant_id, tenant.status, TenantEvent.FINISH, target)
        now = database_now(conn)
        moved = self._move_tenant(
            conn,
            tenant,
            target,
            TenantEvent.FINISH,
            execution_id=execution_id,
            attempt=op.attempt,
            held=held,
            now=now,
            note=note,
        )
        error = _in_context(outcome, op)
        self._update_operation(
            conn,
            op,
            {
                "status": op_status.value,
                "error_code": error.code.value if error else None,
                "error": error.model_dump_json() if error else None,
                "will_retry": will_retry,
                "tenant_status_after": target.value,
                "outcome_at": op.outcome_at or now,
                "finished_at": now,
            },
        )
        return moved

    def _eventual(
        self, conn: Connection, tenant_id: str, execution_id: str, attempt: int, outcome: ComputeError | None
    ) -> Operation:
        op = rows.operation(conn, tenant_id, execution_id, attempt)
        if op is None:
            raise _never_began(tenant_id, execution_id, attempt)
        eventual = _op_status(outcome)
        if op.finished_at is None:
            raise IllegalTransitionError(
                f"try {attempt} of execution {execution_id!r} on tenant {tenant_id!r} is still running; "
                "an eventual outcome is for tries that already ended",
                subject=tenant_id,
                current=op.status.value,
                requested=eventual.value,
            )
        if op.eventual_status is not None:
            recorded = op.eventual_error.code if op.eventual_error else None
            if op.eventual_status is eventual and recorded == (outcome.code if outcome else None):
                return op  # the reconciler saw the same thing again
            raise IllegalTransitionError(
                f"try {attempt} of execution {execution_id!r} on tenant {tenant_id!r} already has "
                f"eventual outcome {op.eventual_status.value}",
                subject=tenant_id,
                current=op.eventual_status.value,
                requested=eventual.value,
            )
        error = _in_context(outcome, op)
        self._update_operation(
            conn,
            op,
            {
                "eventual_status": eventual.value,
                "eventual_error": error.model_dump_json() if error else None,
                "eventual_at": database_now(conn),
            },
            guard=operations.c.eventual_status.is_(None),
        )
        return rows.operation_by_id(conn, op.id)

    def _hold(
        self,
        conn: Connection,
        tenant_id: str,
        execution_id: str,
        attempt: int,
        *,
        error: ComputeError,
        note: str,
        expected_version: int,
    ) -> Tenant:
        target = TenantStatus.NEEDS_INVESTIGATION
        tenant = self._require_tenant(conn, tenant_id)

        def refused(why: str) -> IllegalTransitionError:
            return IllegalTransitionError(
                f"tenant {tenant_id!r} not held for investigation: {why}",
                subject=tenant_id,
                current=tenant.status.value,
                requested=target.value,
            )

        if tenant.version != expected_version:
            raise refused(
                f"it moved on (version {tenant.version}, {tenant.status.value} for execution "
                f"{tenant.execution_id!r}) since it was read at version {expected_version}"
            )
        op = rows.operation(conn, tenant_id, execution_id, attempt)
        if op is None:
            raise _never_began(tenant_id, execution_id, attempt)
        left_by_it = (
            tenant.status is TenantStatus.RETRY_PENDING
            and tenant.execution_id == execution_id
            and tenant.attempt == attempt
            and op.finished_at is not None
        )
        if not left_by_it:
            raise refused(
                f"it is {tenant.status.value} for execution {tenant.execution_id!r} (attempt "
                f"{tenant.attempt}), not retry_pending as try {attempt} of {execution_id!r} left it"
            )
        if finish_target(error, will_retry=False)[0] is not target:
            raise refused(f"{error.code.value} is {error.classification.value}; a retry may fix it")
        check_tenant_transition(tenant_id, tenant.status, TenantEvent.FINISH, target)
        eventual: dict[str, Any] = {}
        if _work_may_outlive(op):
            if op.eventual_status is None:
                recorded = _in_context(error, op)
                assert recorded is not None
                eventual = {
                    "eventual_status": OperationStatus.FAILED.value,
                    "eventual_error": recorded.model_dump_json(),
                    "eventual_at": database_now(conn),
                }
            elif op.eventual_error is None or op.eventual_error.code is not error.code:
                raise refused(
                    f"try {attempt} already has eventual outcome {op.eventual_status.value} "
                    f"({op.eventual_error.code.value if op.eventual_error else 'no error'})"
                )
        elif op.error_code is not error.code:
            raise refused(
                f"{error.code.value} is neither the error try {attempt} ended with "
                f"({op.error_code.value if op.error_code else 'none'}) nor what work outliving it became"
            )
        moved = self._move_tenant(
            conn,
            tenant,
            target,
            TenantEvent.FINISH,
            execution_id=execution_id,
            attempt=attempt,
            held=False,
            now=database_now(conn),
            note=note,
        )
        if eventual:
            self._update_operation(conn, op, eventual, guard=operations.c.eventual_status.is_(None))
        return moved

    def _hold_invalid(
        self, conn: Connection, tenant_id: str, note: str, execution_id: str | None, attempt: int | None
    ) -> Tenant:
        now = database_now(conn)
        tenant = rows.tenant(conn, tenant_id)
        if tenant is None:
            # First sight, as in _begin: a racing insert fails on the key and the write reruns.
            conn.execute(
                tenants.insert().values(
                    tenant_id=tenant_id,
                    status=TenantStatus.READY.value,
                    held=False,
                    version=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            tenant = rows.tenant(conn, tenant_id)
            assert tenant is not None
        target = TenantStatus.NEEDS_INVESTIGATION
        if tenant.status is target:
            return tenant
        if tenant.status is TenantStatus.OPERATION_IN_PROGRESS:
            # A try holds it: that try finishes it; holding it now would leave the running try
            # a tenant it can no longer finish.
            raise IllegalTransitionError(
                f"tenant {tenant_id!r} is operation_in_progress for execution {tenant.execution_id!r} "
                f"(attempt {tenant.attempt}); not held for another try's invalid arguments",
                subject=tenant_id,
                current=tenant.status.value,
                requested=target.value,
            )
        check_tenant_transition(tenant_id, tenant.status, TenantEvent.FINISH, target)
        return self._move_tenant(
            conn,
            tenant,
            target,
            TenantEvent.FINISH,
            execution_id=execution_id or tenant.execution_id,
            attempt=attempt if execution_id else tenant.attempt,
            held=False,
            now=now,
            note=note,
        )

    def _release(
        self, conn: Connection, tenant_id: str, note: str, force: bool, expected_version: int | None
    ) -> Tenant:
        tenant = self._require_tenant(conn, tenant_id)
        if expected_version is not None and tenant.version != expected_version:
            raise IllegalTransitionError(
                f"tenant {tenant_id!r} moved on (version {tenant.version}, {tenant.status.value} for "
                f"execution {tenant.execution_id!r}) since it was read at version {expected_version}; "
                "not released",
                subject=tenant_id,
                current=tenant.status.value,
                requested=TenantStatus.READY.value,
            )
        held = (TenantStatus.OPERATION_IN_PROGRESS, TenantStatus.RETRY_PENDING)
        if tenant.status in held and not force:
            raise IllegalTransitionError(
                f"tenant {tenant_id!r} is {tenant.status.value} for execution {tenant.execution_id!r}; "
                "release frees a tenant held for investigation; use force (--force) only when that "
                "execution will never come back (its worker died)",
                subject=tenant_id,
                current=tenant.status.value,
                requested=TenantStatus.READY.value,
            )
        event = TenantEvent.FORCE_RELEASE if tenant.status in held else TenantEvent.RELEASE
        check_tenant_transition(tenant_id, tenant.status, event, TenantStatus.READY)
        now = database_now(conn)
        moved = self._move_tenant(
            conn,
            tenant,
            TenantStatus.READY,
            event,
            execution_id=tenant.execution_id,
            attempt=tenant.attempt,
            held=False,
            now=now,
            note=note,
        )
        self._close_unfinished(conn, tenant_id, now)
        return moved

    # -- row helpers ---------------------------------------------------------------------------

    def _move_tenant(
        self,
        conn: Connection,
        tenant: Tenant,
        target: TenantStatus,
        event: TenantEvent,
        *,
        execution_id: str | None,
        attempt: int | None,
        held: bool,
        now: datetime,
        note: str | None = None,
    ) -> Tenant:
        changes: dict[str, Any] = {
            "status": target.value,
            "execution_id": execution_id,
            "attempt": attempt,
            "held": held,
            "version": tenant.version + 1,
            "updated_at": now,
        }
        if note is not None:
            changes["note"] = note
        result = conn.execute(
            tenants.update()
            .where(tenants.c.tenant_id == tenant.tenant_id, tenants.c.version == tenant.version)
            .values(**changes)
        )
        if result.rowcount != 1:
            raise LostRace(f"tenant {tenant.tenant_id} moved past version {tenant.version}")
        conn.execute(
            transitions.insert().values(
                tenant_id=tenant.tenant_id,
                event=event.value,
                from_status=tenant.status.value,
                to_status=target.value,
                execution_id=execution_id,
                attempt=attempt,
                note=note,
                at=now,
            )
        )
        moved = rows.tenant(conn, tenant.tenant_id)
        assert moved is not None
        return moved

    def _close_unfinished(self, conn: Connection, tenant_id: str, now: datetime) -> None:
        unfinished = sa.and_(operations.c.tenant_id == tenant_id, operations.c.finished_at.is_(None))
        # A try that never reported an outcome is abandoned; one that did keeps it.
        conn.execute(
            operations.update()
            .where(unfinished, operations.c.status == OperationStatus.IN_PROGRESS.value)
            .values(status=OperationStatus.ABANDONED.value, finished_at=now)
        )
        conn.execute(operations.update().where(unfinished).values(finished_at=now))

    def _check_try(
        self, conn: Connection, tenant_id: str, execution_id: str, by: TryRef | None, write: str
    ) -> Operation:
        """The execution's newest try, which ``by`` (when given) must be: a write from a try that
        is no longer the newest (a zombie, or the older process of a double run) is refused
        before it changes anything. A try recorded before tokens existed accepts any writer."""
        op = rows.newest_operation(conn, tenant_id, execution_id)
        if op is None:
            raise _never_began(tenant_id, execution_id)
        if by is None:
            return op
        if op.attempt == by.attempt and (op.try_token is None or op.try_token == by.token):
            return op
        message = (
            f"{write} refused: {by} of execution {execution_id!r} on tenant {tenant_id!r} is no "
            f"longer the newest try ({op.ref} is); nothing was written, and that try must stop"
        )
        _log.warning(message)
        raise SupersededTryError(
            message, subject=tenant_id, writer=str(by), newest=str(op.ref), requested=write
        )

    def _beat(
        self, conn: Connection, op: Operation, now: datetime, *, live_until: datetime | None = None
    ) -> None:
        """A sign of life from a running try (its own writes count as one); a finished try has no
        heartbeat to renew."""
        changes: dict[str, Any] = {"heartbeat_at": now}
        if live_until is not None:
            changes["live_until"] = live_until
        conn.execute(
            operations.update()
            .where(operations.c.id == op.id, operations.c.finished_at.is_(None))
            .values(**changes)
        )

    def _update_operation(
        self,
        conn: Connection,
        op: Operation,
        changes: dict[str, Any],
        guard: sa.ColumnElement[bool] | None = None,
    ) -> None:
        condition = operations.c.finished_at.is_(None) if guard is None else guard
        result = conn.execute(
            operations.update().where(operations.c.id == op.id, condition).values(**changes)
        )
        if result.rowcount != 1:
            raise LostRace(f"operation {op.id} changed under us")

    def _update_resource(self, conn: Connection, row: LedgerEntry, changes: dict[str, Any]) -> None:
        result = conn.execute(
            resources.update()
            .where(resources.c.id == row.id, resources.c.version == row.version)
            .values(**changes, version=row.version + 1)
        )
        if result.rowcount != 1:
            raise LostRace(f"ledger row {row.id} changed under us")

    def _require_tenant(self, conn: Connection, tenant_id: str) -> Tenant:
        tenant = rows.tenant(conn, tenant_id)
        if tenant is None:
            raise TenantNotFoundError(f"tenant {tenant_id!r} is not known to the state store {self.where}")
        return tenant


# -- small helpers ---------------------------------------------------------------------------


def _ended(message: str, op: Operation, by: TryRef, write: str) -> TryEndedError:
    """The refusal of a try's write to its own operation that ended without it."""
    _log.warning("%s refused: %s", write, message)
    return TryEndedError(
        f"{write} refused: {message} (ended by a maintenance run or a platform operator); "
        "nothing was written, and that try must stop",
        subject=op.tenant_id,
        writer=str(by),
        newest=str(op.ref),
        requested=write,
    )


def _ledger_target(row: LedgerEntry, update: ResourceUpdate, *, live_try: bool) -> ResourceStatus | None:
    """The status ``update`` moves ``row`` to, or ``None`` for a stale report the row ignores.

    Two reports name a unit for a row the reconciler closed as never launched (a launch that
    stalled past its lookup and went out after all). The execution's running try adopts that
    unit, so the row follows it again; a report from a try that already ended keeps the unit's
    id and hands it to cleanup, never dropped.
    """
    target = ResourceStatus(update.status)
    if row.never_launched and live_try and update.resource_id is not None:
        return target
    if _late_launch(row, update, target):
        return ResourceStatus.PENDING_CLEANUP
    return target if resource_move_allowed(row.status, target) else None


def _late_launch(row: LedgerEntry, update: ResourceUpdate, target: ResourceStatus) -> bool:
    """A report naming a resource for a row that was settled without one, by a move the ledger
    would refuse (``failed`` never becomes ``launched``)."""
    return (
        row.resource_id is None
        and update.resource_id is not None
        and not resource_move_allowed(row.status, target)
        and resource_move_allowed(row.status, ResourceStatus.PENDING_CLEANUP)
    )


def _work_may_outlive(op: Operation) -> bool:
    """Whether a try's units may have run on after it ended (``awaiting_eventual_outcome``'s test)."""
    code = op.error_code.value if op.error_code is not None else None
    return code in _WORK_MAY_OUTLIVE or op.status is OperationStatus.ABANDONED


def _op_status(outcome: ComputeError | None) -> OperationStatus:
    return OperationStatus.SUCCEEDED if outcome is None else OperationStatus.FAILED


def _in_context(outcome: ComputeError | None, op: Operation) -> ComputeError | None:
    """The error with the try's context filled in where the raiser left it empty."""
    if outcome is None:
        return None
    return outcome.with_context(
        tenant_id=op.tenant_id,
        execution_id=op.execution_id,
        attempt=op.attempt,
        provider=op.provider,
        operation=op.operation,
    )


def _optional_try(by: Any) -> TryRef | None:
    return None if by is None else _checked_try(by)


def _checked_try(by: Any) -> TryRef:
    if not isinstance(by, TryRef):
        raise ComputeConfigError(f"must be a TryRef, got {type(by).__name__}", argument="by")
    return TryRef(v.positive_int(by.attempt, "by.attempt"), v.text(by.token, "by.token", v.TOKEN_MAX))


def _checked_outcome(outcome: Any) -> ComputeError | None:
    if outcome is not None and not isinstance(outcome, ComputeError):
        raise ComputeConfigError(
            f"must be a ComputeError or None, got {type(outcome).__name__}", argument="outcome"
        )
    return outcome


def _task_instance_columns(ref: Any) -> dict[str, Any]:
    """The operations columns of the task instance that begins a try (none outside a task)."""
    if ref is None:
        return {}
    if not isinstance(ref, TaskInstanceRef):
        raise ComputeConfigError(
            f"must be a TaskInstanceRef or None, got {type(ref).__name__}", argument="task_instance"
        )
    return {
        "dag_id": v.text(ref.dag_id, "task_instance.dag_id"),
        "run_id": v.text(ref.run_id, "task_instance.run_id"),
        "task_id": v.text(ref.task_id, "task_instance.task_id"),
        "map_index": _map_index(ref.map_index),
    }


def _map_index(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise ComputeConfigError("must be an integer of at least -1", argument="task_instance.map_index")
    return value


def _checked_update(update: Any, position: int) -> ResourceUpdate:
    argument = f"updates[{position}]"
    if not isinstance(update, ResourceUpdate):
        raise ComputeConfigError(f"must be a ResourceUpdate, got {type(update).__name__}", argument=argument)
    if update.error is not None and not isinstance(update.error, ComputeError):
        raise ComputeConfigError("error must be a ComputeError", argument=f"{argument}.error")
    return ResourceUpdate(
        unit_index=v.non_negative_int(update.unit_index, f"{argument}.unit_index"),
        generation=v.non_negative_int(update.generation, f"{argument}.generation"),
        status=v.member(ResourceStatus, update.status, f"{argument}.status"),
        resource_id=v.optional_text(update.resource_id, f"{argument}.resource_id", v.RESOURCE_ID_MAX),
        error=update.error,
    )


def _unit_subject(tenant_id: str, execution_id: str, unit_index: int, generation: int) -> str:
    return f"tenant {tenant_id!r} execution {execution_id!r} unit {unit_index} generation {generation}"


def _never_began(tenant_id: str, execution_id: str, attempt: int | None = None) -> IllegalTransitionError:
    which = f"try {attempt} of execution" if attempt is not None else "execution"
    return IllegalTransitionError(
        f"{which} {execution_id!r} never began on tenant {tenant_id!r} (begin_operation comes first)",
        subject=tenant_id,
        current=None,
        requested="record",
    )
