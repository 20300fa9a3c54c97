"""A try's deadline (``lifecycle/deadline.py``) and what the deadline does to units still
pending (``triggers/progress.py``, ``lifecycle/outcome.py``): pure logic, no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_compute_provider.errors import Classification, ComputeError, ErrorCode
from airflow_compute_provider.hooks.base import Unit, UnitPhase, UnitStatus
from airflow_compute_provider.lifecycle import outcome
from airflow_compute_provider.lifecycle.deadline import DeadlineBy, try_deadline
from airflow_compute_provider.triggers.progress import DEFAULT_PENDING_GRACE_PERIOD, Settlement, assess

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_without_execution_timeout_the_operations_timeout_sets_the_deadline() -> None:
    deadline = try_deadline(now=NOW, timeout=timedelta(hours=1), started_at=NOW, execution_timeout=None)
    assert (deadline.at, deadline.by, deadline.bound) == (
        NOW + timedelta(hours=1),
        DeadlineBy.TIMEOUT,
        timedelta(hours=1),
    )


def test_a_shorter_execution_timeout_counts_from_the_tries_start() -> None:
    """The try started 5 s before it computes its deadline (rendering, the store, the launch):
    execution_timeout counts from the start Airflow recorded, as Airflow's own timer does."""
    started = NOW - timedelta(seconds=5)
    deadline = try_deadline(
        now=NOW, timeout=timedelta(hours=1), started_at=started, execution_timeout=timedelta(seconds=20)
    )
    assert (deadline.at, deadline.by, deadline.bound) == (
        started + timedelta(seconds=20),
        DeadlineBy.EXECUTION_TIMEOUT,
        timedelta(seconds=20),
    )


@pytest.mark.parametrize(
    ("timeout", "execution_timeout", "by"),
    [
        (timedelta(seconds=10), timedelta(seconds=20), DeadlineBy.TIMEOUT),
        (timedelta(seconds=20), timedelta(seconds=20), DeadlineBy.TIMEOUT),  # a tie: the operator's own
        (timedelta(seconds=21), timedelta(seconds=20), DeadlineBy.EXECUTION_TIMEOUT),
    ],
)
def test_the_earlier_of_the_two_wins(
    timeout: timedelta, execution_timeout: timedelta, by: DeadlineBy
) -> None:
    deadline = try_deadline(now=NOW, timeout=timeout, started_at=NOW, execution_timeout=execution_timeout)
    assert deadline.by is by
    assert deadline.at == NOW + min(timeout, execution_timeout)


def test_an_unknown_start_counts_from_now() -> None:
    deadline = try_deadline(
        now=NOW, timeout=timedelta(hours=1), started_at=None, execution_timeout=timedelta(seconds=30)
    )
    assert deadline.at == NOW + timedelta(seconds=30)


def test_an_execution_timeout_already_spent_puts_the_deadline_in_the_past() -> None:
    """A try that took longer to get here than its execution_timeout ends at once."""
    deadline = try_deadline(
        now=NOW,
        timeout=timedelta(hours=1),
        started_at=NOW - timedelta(minutes=2),
        execution_timeout=timedelta(minutes=1),
    )
    assert deadline.at < NOW
    assert deadline.by is DeadlineBy.EXECUTION_TIMEOUT


# -- a unit stuck pending at the deadline -----------------------------------------------------


def _pending(index: int, code: ErrorCode | None, stuck_for: timedelta = timedelta(seconds=30)) -> UnitStatus:
    error = ComputeError(code=code, message=f"unit {index} stuck: {code}") if code else None
    return UnitStatus(
        unit=Unit(index, 1, f"pod-{index}"),
        phase=UnitPhase.PENDING,
        error=error,
        stuck_since=(NOW - stuck_for).isoformat() if code else None,
    )


def test_the_default_grace_period_is_kpos_startup_timeout() -> None:
    assert timedelta(seconds=120) == DEFAULT_PENDING_GRACE_PERIOD


@pytest.mark.parametrize(
    ("code", "classification"),
    [
        (ErrorCode.IMAGE_NOT_FOUND, Classification.NON_RETRIABLE),
        (ErrorCode.INSUFFICIENT_CAPACITY, Classification.RETRIABLE),
        (ErrorCode.INVALID_CONFIGURATION, Classification.NON_RETRIABLE),
    ],
)
def test_a_unit_stuck_at_the_deadline_fails_with_its_own_error_within_its_grace(
    code: ErrorCode, classification: Classification
) -> None:
    """Stuck 30 s of a 2 min grace: before the deadline the operation waits; at the deadline the
    unit fails with its own reason, not as a timeout."""
    stuck = [_pending(0, code)]
    grace = timedelta(minutes=2)
    before = assess(
        stuck, wait_for="completion", now=NOW, deadline=NOW + timedelta(seconds=1), pending_grace_period=grace
    )
    assert before.state is Settlement.WAITING
    at = assess(stuck, wait_for="completion", now=NOW, deadline=NOW, pending_grace_period=grace)
    assert at.state is Settlement.FAILED
    [(status, error)] = at.failures
    assert (status.unit.index, error.code, error.classification) == (0, code, classification)


def test_a_unit_merely_pending_at_the_deadline_times_out_and_is_named_pending() -> None:
    """No known reason (a slow pull, ContainerCreating): a timeout, and the error calls the unit
    pending, not running."""
    statuses = [_pending(0, None), UnitStatus(unit=Unit(1, 1, "pod-1"), phase=UnitPhase.RUNNING)]
    progress = assess(
        statuses, wait_for="completion", now=NOW, deadline=NOW, pending_grace_period=timedelta(minutes=2)
    )
    assert progress.state is Settlement.TIMED_OUT
    error = outcome.timeout_error(outcome.units_report(statuses), timeout=timedelta(minutes=3))
    assert error.code is ErrorCode.OPERATION_TIMEOUT
    assert error.message == (
        "operation did not settle within 3m; "
        "1 unit(s) left running and 1 still pending for the next try to reattach"
    )
    assert error.units is not None
    assert [u.resource_id for u in error.units.pending] == ["pod-0"]
    assert [u.resource_id for u in error.units.running] == ["pod-1"]


def test_an_execution_timeout_deadline_says_so_and_is_still_operation_timeout() -> None:
    statuses = [UnitStatus(unit=Unit(0, 1, "task-0"), phase=UnitPhase.RUNNING)]
    error = outcome.timeout_error(
        outcome.units_report(statuses), timeout=timedelta(seconds=20), execution_timeout=True
    )
    assert (error.code, error.classification) == (ErrorCode.OPERATION_TIMEOUT, Classification.RETRIABLE)
    assert error.message.startswith("the task's execution_timeout (20s) passed before the operation settled;")
    assert error.cleanup is not None
    assert (error.cleanup.action, error.cleanup.resources) == ("left_running", ["task-0"])
