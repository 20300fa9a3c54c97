"""Reconcile before launch, then launch: steps 3 and 4 of the lifecycle, for one try.

    reconcile_and_launch(...)  read the ledger and ask the backend what this execution already
                               has; adopt what still counts (``reconcile.plan_units``); write an
                               intent per unit to (re)launch, then send one launch with their
                               idempotency tokens; look for the refused units on the provider,
                               since a lost answer may have started one
                               (``reconcile.claim_started_refusals``); ledger and count the result
    launch_failure(...)        the try's error when the provider refused some units: the refused
                               unit's own error if nothing started, else a PARTIAL_FAILURE that
                               ``rollback.handle_partial`` acts on

The result, ``Launched``, is what the lifecycle (``base.py``) then waits for: the units
adopted (with the status they were found in) and the units this try launched. Nothing here
waits or raises for a refused unit; the lifecycle decides what a refusal ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_compute_provider import metrics
from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.hooks.base import (
    ComputeBackend,
    LaunchPlan,
    Unit,
    UnitLaunch,
    UnitPhase,
    UnitStatus,
)
from airflow_compute_provider.lifecycle import outcome
from airflow_compute_provider.lifecycle.ledger import (
    LaunchTimer,
    follow_statuses,
    record_intent,
    record_resources,
)
from airflow_compute_provider.lifecycle.reconcile import (
    claim_started_refusals,
    known_units,
    may_have_launched,
    plan_units,
)
from airflow_compute_provider.lifecycle.rollback import handle_partial
from airflow_compute_provider.lifecycle.tries import Try
from airflow_compute_provider.state.models import ResourceUpdate
from airflow_compute_provider.state.status import OperationStatus, ResourceStatus
from airflow_compute_provider.state.store import TenantStateStore


@dataclass(frozen=True)
class Launched:
    """What one try has to wait for, and what the provider refused."""

    #: units this execution had launched already, with the status they were found in
    adopted: list[UnitStatus]
    #: units this try launched (or found started after their answer was lost)
    launched: list[Unit]
    #: units the provider refused, with why
    refused: list[tuple[UnitLaunch, ComputeError]]


def reconcile_and_launch(
    store: TenantStateStore,
    t: Try,
    backend: ComputeBackend,
    request: Mapping[str, Any],
    *,
    conn_id: str | None,
    timer: LaunchTimer,
) -> Launched:
    count = t.args.count
    ledger = store.ledger(t.tenant_id, t.execution_id)
    existing = known_units(ledger, backend.find(t.execution))
    statuses = backend.describe(existing) if existing else []
    plan = plan_units(
        count,
        ledger,
        statuses,
        fresh_start=_newest_earlier_try_succeeded(store, t),
        refusal_frees_token=backend.refusal_frees_token,
    )
    timer.observe(store, t, plan.adopted)
    follow_statuses(store, t, plan.adopted, conn_id=conn_id, backend=backend)
    for launch in plan.to_launch:
        record_intent(store, t, launch, conn_id=conn_id, locator=backend.locator())
    result = (
        backend.launch(
            LaunchPlan(
                execution=t.execution,
                units=plan.to_launch,
                request=request,
                operation=t.args.operation,
            )
        )
        if plan.to_launch
        else None
    )
    launched, refused = claim_started_refusals(
        backend,
        t.execution,
        list(result.launched) if result else [],
        list(result.refused) if result else [],
    )
    # A launch whose answer never came back (the connection dropped) may have started its
    # unit: its row stays an intent, so the next try re-sends the same token or adopts what
    # it finds, and the ledger can follow that unit (a failed row could not take it back).
    updates = [
        ResourceUpdate(u.index, u.generation, ResourceStatus.LAUNCHED, resource_id=u.resource_id)
        for u in launched
    ] + [
        ResourceUpdate(ul.index, ul.generation, ResourceStatus.FAILED, error=err)
        for ul, err in refused
        if not may_have_launched(err)
    ]
    if updates:
        record_resources(store, t, updates)
    metrics.launched(t.provider, len(launched))
    metrics.adopted(t.provider, len(plan.adopted))
    return Launched(adopted=list(plan.adopted), launched=launched, refused=refused)


def launch_failure(
    store: TenantStateStore, t: Try, backend: ComputeBackend, result: Launched
) -> ComputeError:
    """The error of a launch the provider refused some units of; what did start is rolled back
    or left running as ``on_partial_failure`` says."""
    started = [s.unit for s in result.adopted if not s.phase.terminal] + result.launched
    statuses = result.adopted + [UnitStatus(unit=u, phase=UnitPhase.PENDING) for u in result.launched]
    report = outcome.units_report(statuses, [(ul.index, None, err) for ul, err in result.refused])
    error = outcome.failure_error(report, count=t.args.count)
    if error.code is ErrorCode.PARTIAL_FAILURE:
        error = handle_partial(store, t, backend, error, running=started)
    return error


def _newest_earlier_try_succeeded(store: TenantStateStore, t: Try) -> bool:
    """The execution's newest earlier try succeeded: the task was cleared after a success, so
    every unit runs again. Only the newest counts: after success, clear, a try that timed out
    leaving its units running, and a second clear, those units are adopted, not doubled."""
    earlier = [
        op
        for op in store.list_operations(tenant_id=t.tenant_id)
        if op.execution_id == t.execution_id and op.attempt < t.attempt
    ]
    newest = max(earlier, key=lambda op: op.attempt, default=None)
    return newest is not None and newest.status is OperationStatus.SUCCEEDED


__all__ = ["Launched", "launch_failure", "reconcile_and_launch"]
