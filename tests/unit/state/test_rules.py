"""Who may begin on a tenant, and where a finished try leaves it (rules.py, no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from airflow_compute_provider.errors import Classification, ComputeOperationError, ErrorCode
from airflow_compute_provider.errors.model import UnitReport, UnitsReport
from airflow_compute_provider.state import Operation, OperationStatus, Tenant, TenantStatus
from airflow_compute_provider.state.rules import BeginDecision, BeginRequest, decide_begin, finish_target
from tests.unit.state.support import error

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def tenant(
    status: TenantStatus, execution_id: str | None = "run-1", attempt: int = 1, held: bool = True
) -> Tenant:
    return Tenant("acme", status, execution_id, attempt, held, None, 3, NOW, NOW)


def op(
    attempt: int,
    status: OperationStatus,
    *,
    token: str = "worker-a:1:x",
    airflow_try: int = 1,
    finished: bool = False,
) -> Operation:
    return Operation(
        1,
        "acme",
        "run-1",
        attempt,
        "provision",
        "ecs",
        status,
        None,
        None,
        None,
        NOW,
        None,
        NOW if finished else None,
        try_token=token,
        airflow_ti="etl/run/provision/-1",
        airflow_try_number=airflow_try,
    )


def request(
    execution_id: str = "run-1",
    attempt: int = 1,
    token: str = "worker-a:1:x",
    ti: str = "etl/run/provision/-1",
) -> BeginRequest:
    return BeginRequest("acme", execution_id, "provision", "ecs", attempt, token, ti)


def refused(code: ErrorCode, *args: object) -> ComputeOperationError:
    with pytest.raises(ComputeOperationError) as caught:
        decide_begin(*args)  # type: ignore[arg-type]
    assert caught.value.error.code is code
    return caught.value


def test_a_free_tenant_may_begin() -> None:
    free = tenant(TenantStatus.READY, held=False)
    assert decide_begin(free, request("run-2"), None) is BeginDecision.START
    gave_up = tenant(TenantStatus.RETRY_PENDING, held=False)
    assert decide_begin(gave_up, request("run-2"), None) is BeginDecision.START


def test_the_holders_running_try_is_already_begun() -> None:
    running = tenant(TenantStatus.OPERATION_IN_PROGRESS)
    assert decide_begin(running, request(), op(1, OperationStatus.IN_PROGRESS)) is BeginDecision.ALREADY_BEGUN


def test_the_same_airflow_try_in_another_process_takes_the_try_over() -> None:
    running = tenant(TenantStatus.OPERATION_IN_PROGRESS)
    second = request(token="worker-b:7:y")
    assert decide_begin(running, second, op(1, OperationStatus.IN_PROGRESS)) is BeginDecision.TAKE_OVER
    # the first process recorded its outcome but Airflow never heard: the rerun still takes over
    assert decide_begin(running, second, op(1, OperationStatus.FAILED)) is BeginDecision.TAKE_OVER


def test_the_holders_next_try_starts() -> None:
    for status in (TenantStatus.OPERATION_IN_PROGRESS, TenantStatus.RETRY_PENDING):
        assert (
            decide_begin(tenant(status), request(attempt=2), op(1, OperationStatus.IN_PROGRESS))
            is BeginDecision.START
        )


def test_any_begin_after_the_try_finished_is_the_next_try() -> None:
    """The store numbers tries: Airflow's try number restarting at 1 in a new DAG run of the same
    execution id, or a dag.test() rerun that never bumps it, is still the execution's next try."""
    waiting = tenant(TenantStatus.RETRY_PENDING)
    done = op(3, OperationStatus.FAILED, finished=True)
    assert decide_begin(waiting, request(attempt=1, ti="etl/run-2/provision/-1"), done) is BeginDecision.START
    assert decide_begin(waiting, request(attempt=1), done) is BeginDecision.START


def test_investigation_refuses_everyone_as_tenant_state_conflict() -> None:
    held = tenant(TenantStatus.NEEDS_INVESTIGATION, held=False)
    for who in ("run-1", "run-2"):
        exc = refused(ErrorCode.TENANT_STATE_CONFLICT, held, request(who, 2), None)
        assert exc.error.classification is Classification.REQUIRES_MANUAL_INTERVENTION
        assert (exc.error.tenant_id, exc.error.execution_id, exc.error.attempt) == ("acme", who, 2)


def test_another_holder_is_a_retriable_conflict() -> None:
    for status in (TenantStatus.OPERATION_IN_PROGRESS, TenantStatus.RETRY_PENDING):
        exc = refused(ErrorCode.CONFLICT, tenant(status), request("run-2"), None)
        assert exc.error.classification is Classification.RETRIABLE
        assert exc.error.root_cause.reason == "held_by_another_execution"


@pytest.mark.parametrize(
    ("code", "will_retry", "expected"),
    [
        (None, False, (TenantStatus.READY, False)),
        (None, True, (TenantStatus.READY, False)),
        (ErrorCode.PROVIDER_THROTTLED, True, (TenantStatus.RETRY_PENDING, True)),
        (ErrorCode.INVALID_CONFIGURATION, True, (TenantStatus.RETRY_PENDING, True)),
        (ErrorCode.PROVIDER_THROTTLED, False, (TenantStatus.RETRY_PENDING, False)),
        (ErrorCode.INVALID_CONFIGURATION, False, (TenantStatus.NEEDS_INVESTIGATION, False)),
        (ErrorCode.UNKNOWN_PROVIDER_ERROR, False, (TenantStatus.NEEDS_INVESTIGATION, False)),
        (ErrorCode.TENANT_STATE_CONFLICT, False, (TenantStatus.NEEDS_INVESTIGATION, False)),
    ],
)
def test_finish_target(code: ErrorCode | None, will_retry: bool, expected: tuple[TenantStatus, bool]) -> None:
    outcome = error(code) if code else None
    assert finish_target(outcome, will_retry) == expected


def test_every_code_without_a_retry_follows_its_classification() -> None:
    for code in ErrorCode:
        status, held = finish_target(error(code), will_retry=False)
        retriable = code.classification is Classification.RETRIABLE
        assert status is (TenantStatus.RETRY_PENDING if retriable else TenantStatus.NEEDS_INVESTIGATION)
        assert held is False


def test_a_partial_failure_of_retriable_units_stays_retriable() -> None:
    units = UnitsReport(failed=[UnitReport(index=0, error=error(ErrorCode.INSUFFICIENT_CAPACITY))])
    assert finish_target(error(ErrorCode.PARTIAL_FAILURE, units=units), will_retry=False) == (
        TenantStatus.RETRY_PENDING,
        False,
    )
