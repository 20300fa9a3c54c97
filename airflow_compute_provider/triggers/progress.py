"""When is an operation settled? One pure answer, shared by the trigger and the blocking wait.

``assess`` looks at the latest ``UnitStatus`` of every unit and says whether the operation is
still ``waiting``, has ``succeeded`` or ``failed``, or has ``timed_out``:

* a unit *fails* when its provider says so, when it vanished, or when it has been stuck pending
  with an error (image pull back-off, unschedulable) for longer than the grace period, or at
  all when the deadline comes: a unit still stuck at the deadline ends the operation with its
  own error (IMAGE_NOT_FOUND, INSUFFICIENT_CAPACITY...), never as a bare timeout that would
  call a pod that never started "running";
* a unit is *satisfied* when it succeeded, or, for ``wait_for="running"``, when it runs (and is
  healthy where a health check is defined) or already exited 0;
* the first failed unit settles the operation, so a rollback can stop the rest early;
* the deadline only counts while the operation is not settled: work that finished before we
  looked is never reported as a timeout.

No I/O and no clock of its own: callers pass ``now``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.errors.model import RootCause
from airflow_compute_provider.hooks.base import UnitPhase, UnitStatus

WAIT_FOR_VALUES = ("completion", "running")
#: how long a unit may stay stuck pending with a known reason before it counts as failed: the
#: 120 s ``startup_timeout_seconds`` after which KubernetesPodOperator gives up on a pod
DEFAULT_PENDING_GRACE_PERIOD = timedelta(minutes=2)


class Settlement(enum.StrEnum):
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class Progress:
    state: Settlement
    statuses: Sequence[UnitStatus]
    #: the units that count as failed, each with the error that explains it
    failures: Sequence[tuple[UnitStatus, ComputeError]] = ()


def assess(
    statuses: Sequence[UnitStatus],
    *,
    wait_for: str,
    now: datetime,
    deadline: datetime,
    pending_grace_period: timedelta,
) -> Progress:
    # At the deadline no grace is left: a unit stuck pending with a known reason has failed.
    at_deadline = now >= deadline
    failures = [
        (status, error)
        for status in statuses
        if (
            error := unit_failure(
                status, now=now, pending_grace_period=pending_grace_period, at_deadline=at_deadline
            )
        )
    ]
    if failures:
        return Progress(Settlement.FAILED, statuses, failures)
    if statuses and all(is_satisfied(s, wait_for) for s in statuses):
        return Progress(Settlement.SUCCEEDED, statuses)
    if now >= deadline:
        return Progress(Settlement.TIMED_OUT, statuses)
    return Progress(Settlement.WAITING, statuses)


def is_satisfied(status: UnitStatus, wait_for: str) -> bool:
    if status.phase is UnitPhase.SUCCEEDED:
        return True
    return wait_for == "running" and status.phase is UnitPhase.RUNNING and status.healthy is not False


def unit_failure(
    status: UnitStatus, *, now: datetime, pending_grace_period: timedelta, at_deadline: bool = False
) -> ComputeError | None:
    """The error that makes this unit a failure now, or ``None`` while it may still succeed.
    ``at_deadline``: the operation's time is up, so a unit stuck pending fails whatever its grace."""
    if status.phase is UnitPhase.FAILED:
        return status.error or _missing_error(status, "failed without a reported cause")
    if status.phase is UnitPhase.VANISHED:
        return status.error or ComputeError(
            code=ErrorCode.CANCELLED,
            message=f"unit {status.unit.index} ({status.unit.resource_id}) no longer exists on the provider",
            root_cause=RootCause(resource_id=status.unit.resource_id, reason="vanished"),
        )
    if status.phase is UnitPhase.PENDING and status.error is not None:
        since = _parse_time(status.stuck_since)
        if at_deadline or since is None or now - since >= pending_grace_period:
            return status.error
    return None


def _missing_error(status: UnitStatus, what: str) -> ComputeError:
    return ComputeError(
        code=ErrorCode.UNKNOWN_PROVIDER_ERROR,
        message=f"unit {status.unit.index} ({status.unit.resource_id}) {what}",
        root_cause=RootCause(resource_id=status.unit.resource_id, exit_code=status.exit_code),
    )


def pending_grace_ends(statuses: Sequence[UnitStatus], pending_grace_period: timedelta) -> datetime | None:
    """When the first unit stuck pending with an error runs out of grace (and ``assess`` would
    fail it), or ``None`` when no unit is waiting out a grace period. Time alone changes that
    answer: a waiter that is told only about changed statuses must wake for it."""
    ends = [
        since + pending_grace_period
        for status in statuses
        if status.phase is UnitPhase.PENDING and status.error is not None
        if (since := _parse_time(status.stuck_since)) is not None
    ]
    return min(ends) if ends else None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
