"""Partial failures and rollback: what becomes of the units that started when others failed.

    handle_partial(...)          a PARTIAL_FAILURE, as ``on_partial_failure`` says: ``rollback``
                                 stops every unit that started; ``retry_failed`` leaves them
                                 running for the next try (units stuck pending are stopped
                                 either way) and the error's cleanup says ``left_running``
    roll_back(...)               stop units: ledger rows ``stopping``, the provider's stop, then
                                 ``stopped``, or ``pending_cleanup`` for the units that would not
                                 stop, which turns the error into CLEANUP_FAILED
    roll_back_left_running(...)  Airflow decided that no retry follows a ``retry_failed``
                                 partial failure: stop what it left running after all
    left_running(...)            the cleanup report of the units a try leaves running

The lifecycle (``base.py``) calls the first two when a launch or a wait ends in a partial
failure; ``decisions.py`` calls ``roll_back_left_running`` from the failure callback. Each takes
the operation's error and returns it with its ``cleanup`` filled in; the rows marked
``stopping`` or ``pending_cleanup`` are where the cleanup operator (``cleanup.py``) picks up
whatever a rollback could not finish.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from airflow_compute_provider import metrics
from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.errors.model import CleanupReport
from airflow_compute_provider.hooks.base import ComputeBackend, Unit, UnitStatus
from airflow_compute_provider.lifecycle import outcome
from airflow_compute_provider.lifecycle.ledger import record_resources
from airflow_compute_provider.lifecycle.tries import Try
from airflow_compute_provider.observability import redact_error
from airflow_compute_provider.state.models import ResourceUpdate
from airflow_compute_provider.state.status import ResourceStatus
from airflow_compute_provider.state.store import TenantStateStore


def handle_partial(
    store: TenantStateStore,
    t: Try,
    backend: ComputeBackend,
    error: ComputeError,
    *,
    running: list[Unit],
    also_stop: Sequence[Unit] = (),
) -> ComputeError:
    """``running`` units outlived the failure of others; ``also_stop`` are stopped either way."""
    if t.args.on_partial_failure == "retry_failed":
        if also_stop:
            error = roll_back(store, t, backend, error, list(also_stop))
        return outcome.with_cleanup(
            error, CleanupReport(action="left_running", resources=[u.resource_id for u in running])
        )
    return roll_back(store, t, backend, error, [*running, *also_stop])


def roll_back(
    store: TenantStateStore, t: Try, backend: ComputeBackend, error: ComputeError, units: list[Unit]
) -> ComputeError:
    """Stop ``units``; what cannot be stopped is marked for cleanup, and the error says so."""
    if not units:
        return error
    record_resources(
        store,
        t,
        [
            ResourceUpdate(u.index, u.generation, ResourceStatus.STOPPING, resource_id=u.resource_id)
            for u in units
        ],
    )
    not_stopped = backend.stop(units, reason=f"rollback of {t.args.operation} ({error.code.value})")
    not_stopped = [(u, redact_error(e)) for u, e in not_stopped]
    stuck_ids = {u.resource_id for u, _ in not_stopped}
    record_resources(
        store,
        t,
        [
            ResourceUpdate(u.index, u.generation, ResourceStatus.STOPPED, resource_id=u.resource_id)
            for u in units
            if u.resource_id not in stuck_ids
        ]
        + [
            ResourceUpdate(
                u.index, u.generation, ResourceStatus.PENDING_CLEANUP, resource_id=u.resource_id, error=e
            )
            for u, e in not_stopped
        ],
    )
    t.log.info(
        "rolled back compute units", stopped=len(units) - len(not_stopped), not_stopped=len(not_stopped)
    )
    metrics.rolled_back(t.provider, len(units) - len(not_stopped))
    metrics.cleanup(t.provider, len(not_stopped), "marked")
    if not not_stopped:
        return outcome.with_cleanup(
            error, CleanupReport(action="rolled_back", resources=[u.resource_id for u in units])
        )
    first = not_stopped[0][1]
    return ComputeError(
        code=ErrorCode.CLEANUP_FAILED,
        message=(
            f"{error.code.value}: {error.message}; then {len(not_stopped)} unit(s) could not be "
            f"stopped and are marked for cleanup: {first.message}"
        ),
        root_cause=first.root_cause,
        units=error.units,
        cleanup=CleanupReport(action="marked_for_cleanup", resources=sorted(stuck_ids)),
    )


def roll_back_left_running(
    store: TenantStateStore, t: Try, error: ComputeError, make_backend: Callable[[], ComputeBackend]
) -> ComputeError:
    """With no retry to follow, ``retry_failed`` acts as ``rollback`` (a timeout never does):
    the newest generation of every unit the ledger still holds launched or running is stopped,
    and the error that says so replaces the try's in the store."""
    if error.code is not ErrorCode.PARTIAL_FAILURE:
        return error
    newest: dict[int, Any] = {}
    for entry in store.ledger(t.tenant_id, t.execution_id):
        if entry.unit_index not in newest or entry.generation > newest[entry.unit_index].generation:
            newest[entry.unit_index] = entry
    running = [
        Unit(e.unit_index, e.generation, e.resource_id, dict(e.locator))
        for e in newest.values()
        if e.resource_id and e.status in (ResourceStatus.LAUNCHED, ResourceStatus.RUNNING)
    ]
    rolled = redact_error(roll_back(store, t, make_backend(), error, running))
    store.record_outcome(t.tenant_id, t.execution_id, rolled, by=t.ref)
    return rolled


def left_running(statuses: Sequence[UnitStatus]) -> CleanupReport:
    return CleanupReport(
        action="left_running", resources=[s.unit.resource_id for s in statuses if not s.phase.terminal]
    )


__all__ = ["handle_partial", "left_running", "roll_back", "roll_back_left_running"]
