"""A try's rows in the resource ledger, and the launch-to-running time they give.

The ledger (``state/``) holds one row per (unit index, generation) of an execution. The
lifecycle writes to it only through these, each write naming its try (``t.ref``: a try that is
no longer the newest is refused, ``SupersededTryError``):

    record_intent(...)     the row a launch starts with, written before the request is sent,
                           with the idempotency token the request will carry
    record_resources(...)  rows moved on (launched, stopping, stopped, pending cleanup...), with
                           the secrets a provider echoed in a unit's error masked first
    follow_statuses(...)   rows moved forward to what the provider reports; a unit found on the
                           provider that the ledger never heard of gets its row first, and a
                           report that would move a row backwards (a stale poll) is left out

``LaunchTimer`` reads the rows back. An intent is written just before its launch request, so
the time from a row's creation to the moment the provider says its unit started running
(``UnitStatus.running_since``: ECS ``startedAt``, the main container's ``startedAt``) is the
``compute.launch_to_running`` metric (``metrics.py``). It is timed when the lifecycle first
sees the unit running, while polling, adopting it on a later try, or when a deferred try
resumes (then for the units the trigger reports running or already succeeded); the provider's
time makes all three the same measure, however late the lifecycle looks. A row already past
``launched`` had its unit seen running before, so each unit generation is timed once, across
tries too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta

from airflow_compute_provider import metrics
from airflow_compute_provider.hooks.base import ComputeBackend, UnitLaunch, UnitPhase, UnitStatus
from airflow_compute_provider.lifecycle.tries import Try
from airflow_compute_provider.observability import redact_error
from airflow_compute_provider.state.models import ResourceUpdate
from airflow_compute_provider.state.status import RESOURCE_TRANSITIONS, ResourceStatus
from airflow_compute_provider.state.store import TenantStateStore

_PHASE_TO_LEDGER = {
    UnitPhase.PENDING: ResourceStatus.LAUNCHED,
    UnitPhase.RUNNING: ResourceStatus.RUNNING,
    UnitPhase.SUCCEEDED: ResourceStatus.SUCCEEDED,
    UnitPhase.FAILED: ResourceStatus.FAILED,
}


def record_intent(
    store: TenantStateStore, t: Try, launch: UnitLaunch, *, conn_id: str | None, locator: dict[str, str]
) -> None:
    store.record_intent(
        t.tenant_id,
        t.execution_id,
        provider=t.provider,
        conn_id=conn_id,
        locator=locator,
        unit_index=launch.index,
        generation=launch.generation,
        idempotency_token=launch.token(t.execution),
        by=t.ref,
    )


def record_resources(store: TenantStateStore, t: Try, updates: Sequence[ResourceUpdate]) -> None:
    """Ledger moves, with the secrets a provider echoed masked in each unit's error."""
    masked = [
        dataclasses.replace(u, error=redact_error(u.error)) if u.error is not None else u for u in updates
    ]
    store.record_resources(t.tenant_id, t.execution_id, masked, by=t.ref)


def follow_statuses(
    store: TenantStateStore,
    t: Try,
    statuses: Sequence[UnitStatus],
    *,
    conn_id: str | None,
    backend: ComputeBackend | None = None,
) -> None:
    """Move ledger rows forward to what the provider reports. A unit found on the provider
    that the ledger never heard of (its intent was lost) gets its row first, where ``backend``
    is given; a report that would move a row backwards (a stale poll) is left out."""
    rows = {(e.unit_index, e.generation): e for e in store.ledger(t.tenant_id, t.execution_id)}
    unknown = [s for s in statuses if (s.unit.index, s.unit.generation) not in rows]
    if unknown and backend is not None:
        for s in unknown:
            record_intent(
                store,
                t,
                UnitLaunch(s.unit.index, s.unit.generation),
                conn_id=conn_id,
                locator=dict(s.unit.locator) or backend.locator(),
            )
        rows = {(e.unit_index, e.generation): e for e in store.ledger(t.tenant_id, t.execution_id)}
    updates = []
    for s in statuses:
        target = _PHASE_TO_LEDGER.get(s.phase)
        row = rows.get((s.unit.index, s.unit.generation))
        if target is None or row is None:
            continue
        # A row closed as never launched follows the unit a stalled launch started after all.
        if row.status is target or target in RESOURCE_TRANSITIONS[row.status] or row.never_launched:
            updates.append(
                ResourceUpdate(s.unit.index, s.unit.generation, target, s.unit.resource_id, s.error)
            )
    if updates:
        record_resources(store, t, updates)


class LaunchTimer:
    """The launch-to-running metric, once per unit generation first seen running."""

    def __init__(self) -> None:
        #: (unit index, generation) already timed by this operator
        self.timed: set[tuple[int, int]] = set()

    def observe(
        self,
        store: TenantStateStore,
        t: Try,
        statuses: Sequence[UnitStatus],
        *,
        phases: Collection[UnitPhase] = (UnitPhase.RUNNING,),
    ) -> None:
        """Time the units of ``statuses`` in one of ``phases`` (polling, settling, adopting them
        on a later try, or resuming after the trigger, where a succeeded unit was running too):
        from the ledger intent (written just before the launch request) to the unit's
        ``running_since``, the provider's own time of its start. Where the provider gave none,
        to now, the moment the lifecycle sees it running (an upper bound). A unit the ledger
        already saw running was timed before."""
        fresh = {
            (s.unit.index, s.unit.generation): s
            for s in statuses
            if s.phase in phases and (s.unit.index, s.unit.generation) not in self.timed
        }
        if not fresh:
            return
        self.timed |= fresh.keys()
        now = datetime.now(UTC)
        for entry in store.ledger(t.tenant_id, t.execution_id):
            status = fresh.get((entry.unit_index, entry.generation))
            if status is not None and entry.status in (ResourceStatus.INTENDED, ResourceStatus.LAUNCHED):
                elapsed = launch_to_running_time(entry.created_at, status.running_since, now)
                metrics.launch_to_running(t.provider, elapsed)


def launch_to_running_time(intended_at: datetime, running_since: str | None, now: datetime) -> timedelta:
    """From a unit's intent to its start: ``running_since`` (ISO 8601, the provider's clock)
    when given and readable, else ``now`` (when the lifecycle sees it running).

    The provider's clock is not this worker's, so the start is kept between the intent and
    now: one that reads as before the intent counts as zero, one after now as now (the unit is
    seen running, so it started by then). A metric is never worth failing the try for, so an
    unreadable time falls back to now.
    """
    started = now
    if running_since:
        try:
            parsed = datetime.fromisoformat(running_since.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            started = min(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC), now)
    return max(timedelta(0), started - intended_at)


__all__ = ["LaunchTimer", "follow_statuses", "launch_to_running_time", "record_intent", "record_resources"]
