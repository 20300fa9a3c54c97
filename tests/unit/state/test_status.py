"""The transition tables: every tenant move the issue names, and nothing else."""

from __future__ import annotations

import itertools

import pytest

from airflow_compute_provider.state import (
    RESOURCE_TRANSITIONS,
    TENANT_TRANSITIONS,
    IllegalTransitionError,
    ResourceStatus,
    TenantEvent,
    TenantStatus,
)
from airflow_compute_provider.state.status import check_tenant_transition, resource_move_allowed

T, E = TenantStatus, TenantEvent

#: the issue's and the architect's list, written out independently of the table
EXPECTED_MOVES = {
    (T.READY, E.BEGIN, T.OPERATION_IN_PROGRESS),
    (T.RETRY_PENDING, E.BEGIN, T.OPERATION_IN_PROGRESS),
    (T.OPERATION_IN_PROGRESS, E.BEGIN, T.OPERATION_IN_PROGRESS),
    (T.OPERATION_IN_PROGRESS, E.FINISH, T.READY),
    (T.OPERATION_IN_PROGRESS, E.FINISH, T.RETRY_PENDING),
    (T.OPERATION_IN_PROGRESS, E.FINISH, T.NEEDS_INVESTIGATION),
    # the reconciler: a try that left the tenant retry_pending turns out to need a human
    (T.RETRY_PENDING, E.FINISH, T.NEEDS_INVESTIGATION),
    # requirement 2.2: a try refused by its own argument validation holds a free tenant
    (T.READY, E.FINISH, T.NEEDS_INVESTIGATION),
    (T.NEEDS_INVESTIGATION, E.RELEASE, T.READY),
    (T.OPERATION_IN_PROGRESS, E.FORCE_RELEASE, T.READY),
    (T.RETRY_PENDING, E.FORCE_RELEASE, T.READY),
    (T.NEEDS_INVESTIGATION, E.FORCE_RELEASE, T.READY),
}


def test_tenant_status_values_are_the_issues() -> None:
    assert [s.value for s in TenantStatus] == [
        "ready",
        "operation_in_progress",
        "retry_pending",
        "needs_investigation",
    ]
    assert TenantStatus("retry_pending") == "retry_pending"  # a str enum


def test_the_table_holds_exactly_the_expected_moves() -> None:
    in_table = {(s, e, t) for (s, e), targets in TENANT_TRANSITIONS.items() for t in targets}
    assert in_table == EXPECTED_MOVES


@pytest.mark.parametrize(
    ("current", "event", "target"),
    [
        move
        for move in itertools.product(TenantStatus, TenantEvent, TenantStatus)
        if move not in EXPECTED_MOVES
    ],
    ids=str,
)
def test_every_other_move_is_illegal_with_a_clear_message(
    current: TenantStatus, event: TenantEvent, target: TenantStatus
) -> None:
    with pytest.raises(IllegalTransitionError) as illegal:
        check_tenant_transition("acme", current, event, target)
    message = str(illegal.value)
    assert "'acme'" in message
    assert current.value in message
    assert target.value in message
    assert (illegal.value.current, illegal.value.requested) == (current.value, target.value)
    assert isinstance(illegal.value, ValueError)


def test_nothing_leaves_investigation_but_a_release() -> None:
    leaving = {e for (s, e) in TENANT_TRANSITIONS if s is T.NEEDS_INVESTIGATION}
    assert leaving == {E.RELEASE, E.FORCE_RELEASE}


R = ResourceStatus


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (R.INTENDED, R.LAUNCHED),
        (R.INTENDED, R.FAILED),  # refused at launch
        (R.LAUNCHED, R.SUCCEEDED),  # a poll that missed the running phase
        (R.RUNNING, R.STOPPING),
        (R.STOPPING, R.STOPPED),
        (R.STOPPING, R.PENDING_CLEANUP),
        (R.PENDING_CLEANUP, R.CLEANED),
        (R.FAILED, R.PENDING_CLEANUP),
        (R.RUNNING, R.RUNNING),
    ],
)
def test_forward_ledger_moves_are_applied(current: ResourceStatus, target: ResourceStatus) -> None:
    assert resource_move_allowed(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (R.SUCCEEDED, R.RUNNING),
        (R.RUNNING, R.LAUNCHED),
        (R.STOPPED, R.FAILED),
        (R.CLEANED, R.PENDING_CLEANUP),
        (R.LAUNCHED, R.INTENDED),
        (R.PENDING_CLEANUP, R.RUNNING),
    ],
)
def test_backward_ledger_moves_are_stale(current: ResourceStatus, target: ResourceStatus) -> None:
    assert not resource_move_allowed(current, target)


def test_cleaned_is_final_and_every_status_has_a_row() -> None:
    assert set(RESOURCE_TRANSITIONS) == set(ResourceStatus)
    assert RESOURCE_TRANSITIONS[R.CLEANED] == frozenset()
    assert [s.value for s in ResourceStatus] == [
        "intended",
        "launched",
        "running",
        "succeeded",
        "failed",
        "stopping",
        "stopped",
        "pending_cleanup",
        "cleaned",
    ]
