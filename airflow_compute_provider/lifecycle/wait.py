"""Waiting for a try's units to settle: step 5 of the lifecycle, in the triggerer or here.

    status_trigger(...)      deferrable: the ``ComputeStatusTrigger`` that watches the units
                             until they settle or the deadline passes; its event carries
                             ``resume``, everything ``execute_complete`` needs to settle
    complete_statuses(...)   on resume: every watched unit's status, describing once the units
                             a late trigger never saw
    poll_until_settled(...)  not deferrable: poll here, with the same deadline, until the units
                             settle or time runs out; a retriable poll failure only waits for
                             the next poll
    assess_try(...)          where the units stand (``triggers.progress.assess``) with the try's
                             ``wait_for`` and grace period; the trigger asks the same question

Either way the deadline is an absolute time fixed before the launch (``deadline.py``: for a
deferred try, the earlier of the operation's timeout and the task's ``execution_timeout``), and
nothing here stops a unit: a wait that runs out of time leaves the units running
(OPERATION_TIMEOUT).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from airflow_compute_provider.errors import ComputeOperationError
from airflow_compute_provider.hooks.base import ComputeBackend, Unit, UnitPhase, UnitStatus
from airflow_compute_provider.lifecycle.deadline import TryDeadline
from airflow_compute_provider.lifecycle.ledger import LaunchTimer
from airflow_compute_provider.lifecycle.tries import Heartbeat, Try
from airflow_compute_provider.normalize import worth_reading_again
from airflow_compute_provider.state.store import TenantStateStore
from airflow_compute_provider.triggers.progress import Progress, Settlement, assess
from airflow_compute_provider.triggers.status import ComputeStatusTrigger


def assess_try(t: Try, statuses: Sequence[UnitStatus], deadline: datetime, now: datetime) -> Progress:
    return assess(
        statuses,
        wait_for=t.args.wait_for,
        now=now,
        deadline=deadline,
        pending_grace_period=t.args.pending_grace_period,
    )


def status_trigger(
    t: Try,
    backend: ComputeBackend,
    watch: list[Unit],
    done: list[UnitStatus],
    deadline: TryDeadline,
    *,
    secrets: Sequence[str] = (),
) -> ComputeStatusTrigger:
    """The trigger that watches ``watch`` until ``deadline``; ``resume`` names which clock
    set it, so the resumed try ends at an ``execution_timeout`` deadline as that (``deadline.py``).
    ``secrets``: the launch request's secret values, which the triggerer masks itself."""
    return ComputeStatusTrigger(
        provider=t.provider,
        backend_config=backend.backend_config(),
        units=[u.to_dict() for u in watch],
        deadline=deadline.at.isoformat(),
        wait_for=t.args.wait_for,
        poll_interval=t.args.poll_interval,
        pending_grace_period=t.args.pending_grace_period.total_seconds(),
        on_kill_action=t.args.on_kill_action,
        secrets=secrets,
        resume={
            "tenant_id": t.tenant_id,
            "execution_id": t.execution_id,
            "units": [u.to_dict() for u in watch],
            "done": [s.to_dict() for s in done],
            "deadline": deadline.at.isoformat(),
            "deadline_by": deadline.by.value,
            "deadline_bound": deadline.bound.total_seconds(),
            # the try as the store numbered it, and its process's token: the resumed try's
            # writes name it (a try superseded while deferred is refused at its first write)
            "attempt": t.attempt,
            "token": t.token,
        },
    )


def complete_statuses(
    t: Try, watching: Sequence[Unit], statuses: list[UnitStatus], make_backend: Callable[[], ComputeBackend]
) -> list[UnitStatus]:
    """Every watched unit's status. A trigger that started after its deadline (a busy
    triggerer) fires before it polled; the units it never saw are described once here, so
    the error still lists what was left running. If that fails too they count as pending."""
    seen = {(s.unit.index, s.unit.generation) for s in statuses}
    unseen = [u for u in watching if (u.index, u.generation) not in seen]
    if not unseen:
        return statuses
    try:
        return statuses + make_backend().describe(unseen)
    except ComputeOperationError as exc:
        t.log.warning("could not describe units the trigger never saw", code=exc.error.code.value)
        return statuses + [UnitStatus(unit=u, phase=UnitPhase.PENDING) for u in unseen]


def poll_until_settled(
    store: TenantStateStore,
    t: Try,
    backend: ComputeBackend,
    *,
    watch: list[Unit],
    done: list[UnitStatus],
    deadline: datetime,
    timer: LaunchTimer,
    latest: list[UnitStatus] | None = None,
    on_poll: Callable[[], None] | None = None,
) -> tuple[list[UnitStatus], bool]:
    """The newest statuses of ``watch``, and whether the deadline passed before they settled.
    ``latest``, when given, holds the newest statuses all along (for a wait Airflow cuts short:
    ``execution_timeout``); ``on_poll`` runs after each poll of units still waiting (container
    output to the task log)."""
    statuses: list[UnitStatus] = []
    heartbeat = Heartbeat(store, t)
    while True:
        heartbeat.renew()  # a superseded try stops here (SupersededTryError)
        now = datetime.now(UTC)
        try:
            statuses = backend.describe(watch)
        except ComputeOperationError as exc:
            if not worth_reading_again(exc.error):
                raise
            t.log.warning("status poll failed, will poll again", code=exc.error.code.value)
        else:
            if latest is not None:
                latest[:] = statuses
            timer.observe(store, t, statuses)
            if assess_try(t, done + statuses, deadline, now).state in (
                Settlement.SUCCEEDED,
                Settlement.FAILED,
            ):
                return statuses, False
        if now >= deadline:
            return statuses, True
        if on_poll is not None:
            on_poll()
        time.sleep(max(0.0, min(t.args.poll_interval, (deadline - now).total_seconds())))


__all__ = ["assess_try", "complete_statuses", "poll_until_settled", "status_trigger"]
