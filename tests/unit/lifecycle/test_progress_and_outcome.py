"""When an operation is settled, and what its result or error says (pure logic, no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_compute_provider.errors import Classification, ComputeError, ErrorCode
from airflow_compute_provider.hooks.base import Unit, UnitPhase, UnitStatus
from airflow_compute_provider.lifecycle import outcome
from airflow_compute_provider.triggers.progress import Settlement, assess

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=10)
GRACE = timedelta(minutes=5)


def _status(index: int, phase: UnitPhase, *, error: ErrorCode | None = None, **kw: object) -> UnitStatus:
    err = ComputeError(code=error, message=f"unit {index}: {error}") if error else None
    return UnitStatus(unit=Unit(index, 1, f"res-{index}"), phase=phase, error=err, **kw)  # type: ignore[arg-type]


def _assess(statuses: list[UnitStatus], wait_for: str = "completion", now: datetime = NOW):
    return assess(statuses, wait_for=wait_for, now=now, deadline=LATER, pending_grace_period=GRACE)


@pytest.mark.parametrize(
    ("phases", "wait_for", "expected"),
    [
        ([UnitPhase.SUCCEEDED, UnitPhase.SUCCEEDED], "completion", Settlement.SUCCEEDED),
        ([UnitPhase.SUCCEEDED, UnitPhase.RUNNING], "completion", Settlement.WAITING),
        ([UnitPhase.RUNNING, UnitPhase.RUNNING], "running", Settlement.SUCCEEDED),
        ([UnitPhase.RUNNING, UnitPhase.SUCCEEDED], "running", Settlement.SUCCEEDED),
        ([UnitPhase.RUNNING, UnitPhase.PENDING], "running", Settlement.WAITING),
        ([], "completion", Settlement.WAITING),
    ],
)
def test_satisfaction_depends_on_wait_for(
    phases: list[UnitPhase], wait_for: str, expected: Settlement
) -> None:
    statuses = [_status(i, p) for i, p in enumerate(phases)]
    assert _assess(statuses, wait_for).state is expected


def test_running_but_unhealthy_is_not_yet_running() -> None:
    assert _assess([_status(0, UnitPhase.RUNNING, healthy=False)], "running").state is Settlement.WAITING
    assert _assess([_status(0, UnitPhase.RUNNING, healthy=True)], "running").state is Settlement.SUCCEEDED


def test_first_failed_unit_settles_even_while_others_run() -> None:
    progress = _assess(
        [_status(0, UnitPhase.RUNNING), _status(1, UnitPhase.FAILED, error=ErrorCode.CONTAINER_FAILED)]
    )
    assert progress.state is Settlement.FAILED
    assert [(s.unit.index, e.code) for s, e in progress.failures] == [(1, ErrorCode.CONTAINER_FAILED)]


def test_stuck_pending_fails_only_after_the_grace_period() -> None:
    stuck = _status(0, UnitPhase.PENDING, error=ErrorCode.IMAGE_PULL_FAILED, stuck_since=NOW.isoformat())
    assert _assess([stuck], now=NOW + timedelta(minutes=4)).state is Settlement.WAITING
    assert _assess([stuck], now=NOW + timedelta(minutes=5)).state is Settlement.FAILED


def test_vanished_unit_is_cancelled() -> None:
    progress = _assess([_status(0, UnitPhase.VANISHED)])
    assert progress.state is Settlement.FAILED
    assert progress.failures[0][1].code is ErrorCode.CANCELLED


def test_deadline_times_out_only_an_unsettled_operation() -> None:
    running = [_status(0, UnitPhase.RUNNING)]
    assert _assess(running, now=LATER).state is Settlement.TIMED_OUT
    assert _assess([_status(0, UnitPhase.SUCCEEDED)], now=LATER).state is Settlement.SUCCEEDED


def test_single_unit_failure_keeps_the_units_own_code() -> None:
    report = outcome.units_report([_status(0, UnitPhase.FAILED, error=ErrorCode.OUT_OF_MEMORY)])
    error = outcome.failure_error(report, count=1)
    assert error.code is ErrorCode.OUT_OF_MEMORY
    assert [u.index for u in error.units.failed] == [0]  # type: ignore[union-attr]


def test_some_failed_some_running_is_a_partial_failure_listing_every_unit() -> None:
    statuses = [_status(0, UnitPhase.SUCCEEDED), _status(1, UnitPhase.RUNNING), _status(2, UnitPhase.PENDING)]
    quota = ComputeError(code=ErrorCode.QUOTA_EXCEEDED, message="exceeded quota")
    report = outcome.units_report(statuses, [(3, None, quota)])
    error = outcome.failure_error(report, count=4)
    assert error.code is ErrorCode.PARTIAL_FAILURE
    assert error.classification is Classification.NON_RETRIABLE  # from the quota unit
    assert error.units is not None
    assert [u.index for u in error.units.succeeded] == [0]
    assert [u.index for u in error.units.running] == [1]
    assert [u.index for u in error.units.pending] == [2]
    assert [(u.index, u.error.code) for u in error.units.failed] == [(3, ErrorCode.QUOTA_EXCEEDED)]  # type: ignore[union-attr]


def test_a_launched_unit_still_pending_makes_it_partial() -> None:
    capacity = ComputeError(code=ErrorCode.INSUFFICIENT_CAPACITY, message="RESOURCE:MEMORY")
    report = outcome.units_report([_status(0, UnitPhase.PENDING)], [(1, None, capacity)])
    error = outcome.failure_error(report, count=2)
    assert error.code is ErrorCode.PARTIAL_FAILURE
    assert error.classification is Classification.RETRIABLE


def test_all_units_failed_takes_the_most_severe_code() -> None:
    failures = [
        (0, "a", ComputeError(code=ErrorCode.INSUFFICIENT_CAPACITY, message="cpu")),
        (1, "b", ComputeError(code=ErrorCode.PERMISSION_DENIED, message="denied")),
    ]
    error = outcome.failure_error(outcome.units_report([], failures), count=2)
    assert error.code is ErrorCode.PERMISSION_DENIED
    assert error.classification is Classification.REQUIRES_MANUAL_INTERVENTION


def test_timeout_leaves_units_running() -> None:
    report = outcome.units_report([_status(0, UnitPhase.RUNNING), _status(1, UnitPhase.SUCCEEDED)])
    error = outcome.timeout_error(report, timeout=timedelta(minutes=20))
    assert error.code is ErrorCode.OPERATION_TIMEOUT
    assert error.classification is Classification.RETRIABLE
    assert error.cleanup is not None
    assert (error.cleanup.action, error.cleanup.resources) == ("left_running", ["res-0"])
    assert "20m" in error.message


def test_success_result_lists_units_in_order() -> None:
    result = outcome.success_result(
        "e1", [_status(1, UnitPhase.SUCCEEDED, exit_code=0), _status(0, UnitPhase.SUCCEEDED)]
    )
    assert result == {
        "execution_id": "e1",
        "units": [
            {"index": 0, "resource_id": "res-0", "status": "succeeded", "exit_code": None},
            {"index": 1, "resource_id": "res-1", "status": "succeeded", "exit_code": 0},
        ],
    }
