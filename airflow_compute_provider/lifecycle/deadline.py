"""A try's deadline, and how a deferred try that lost its trigger's word picks up from the ledger.

Two clocks bound a try: the operation's own ``timeout`` (grown between tries by the retry
policy) and the task's ``execution_timeout``. Airflow enforces ``execution_timeout`` itself only
while the worker runs (``AirflowTaskTimeout``, then ``on_kill``): Airflow 3.3 records no trigger
timeout for a deferred try (apache/airflow#69678), so a deferred try would wait on until the
operation's timeout, an hour by default. The try therefore computes its own deadline:

    try_deadline(...)    the earlier of now + timeout and the try's start + execution_timeout,
                         and which of the two it is (``TryDeadline.by``); the trigger watches
                         until then, and ``execute_complete`` ends the try at it exactly like
                         the operation's own timeout (OPERATION_TIMEOUT, retriable, units left
                         running unless ``on_kill_action="stop"``)
    ledger_units(...)    what the try watches, read back from the ledger, for a resume that
                         carries no trigger event: an Airflow that does enforce the deferral's
                         timeout resumes it with ``TaskDeferralTimeout`` (next method
                         ``__fail__``), and a malformed event carries nothing usable either

No I/O in ``try_deadline``; ``ledger_units`` only reads the store.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from airflow_compute_provider.hooks.base import Unit, UnitPhase, UnitStatus
from airflow_compute_provider.lifecycle.tries import Try
from airflow_compute_provider.state.models import newest_generations
from airflow_compute_provider.state.status import ResourceStatus
from airflow_compute_provider.state.store import TenantStateStore


class DeadlineBy(enum.StrEnum):
    """Which clock sets a try's deadline."""

    TIMEOUT = "timeout"
    EXECUTION_TIMEOUT = "execution_timeout"


@dataclass(frozen=True)
class TryDeadline:
    at: datetime
    by: DeadlineBy
    #: the length of the bound that set ``at`` (for the error message)
    bound: timedelta


def try_deadline(
    *,
    now: datetime,
    timeout: timedelta,
    started_at: datetime | None,
    execution_timeout: timedelta | None,
) -> TryDeadline:
    """The earlier of ``now + timeout`` and ``started_at + execution_timeout``.

    ``started_at`` is when Airflow started the try (``ti.start_date``; ``now`` when unknown).
    A tie goes to the operation's timeout: the error then names the operator's own argument.
    """
    own = TryDeadline(now + timeout, DeadlineBy.TIMEOUT, timeout)
    if execution_timeout is None:
        return own
    bounded = (started_at or now) + execution_timeout
    if bounded < own.at:
        return TryDeadline(bounded, DeadlineBy.EXECUTION_TIMEOUT, execution_timeout)
    return own


_LIVE = (ResourceStatus.INTENDED, ResourceStatus.LAUNCHED, ResourceStatus.RUNNING)


def ledger_units(store: TenantStateStore, t: Try) -> tuple[list[UnitStatus], list[Unit]]:
    """The newest generation of every unit the ledger holds for this execution: those that
    succeeded (as statuses), and those still to watch (launched or running, with a resource id)."""
    done: list[UnitStatus] = []
    watch: list[Unit] = []
    for entry in newest_generations(store.ledger(t.tenant_id, t.execution_id)).values():
        if not entry.resource_id:
            continue
        unit = Unit(entry.unit_index, entry.generation, entry.resource_id, dict(entry.locator))
        if entry.status is ResourceStatus.SUCCEEDED:
            done.append(UnitStatus(unit=unit, phase=UnitPhase.SUCCEEDED))
        elif entry.status in _LIVE:
            watch.append(unit)
    return done, watch


__all__ = ["DeadlineBy", "TryDeadline", "ledger_units", "try_deadline"]
