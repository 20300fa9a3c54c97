"""Reconcile before launch: adopt what exists, relaunch only what failed, re-send lost intents."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.errors.model import RootCause
from airflow_compute_provider.hooks.base import TOKEN_HELD, Unit, UnitLaunch, UnitPhase, UnitStatus
from airflow_compute_provider.lifecycle.reconcile import known_units, plan_units
from airflow_compute_provider.state.models import LedgerEntry
from airflow_compute_provider.state.status import ResourceStatus

T0 = datetime(2026, 11, 26, tzinfo=UTC)


def _entry(
    index: int, generation: int, status: ResourceStatus, resource_id: str | None = None
) -> LedgerEntry:
    return LedgerEntry(
        id=index * 10 + generation,
        tenant_id="acme",
        execution_id="e1",
        provider="ecs",
        conn_id="aws_default",
        locator={"region": "us-east-1", "cluster": "c"},
        unit_index=index,
        generation=generation,
        idempotency_token=f"cx-u{index}-g{generation}",
        resource_id=resource_id,
        status=status,
        attempts=1,
        last_error=None,
        created_at=T0,
        updated_at=T0,
    )


def _seen(index: int, generation: int, phase: UnitPhase) -> UnitStatus:
    return UnitStatus(unit=Unit(index, generation, f"task-{index}-{generation}"), phase=phase)


def test_nothing_known_launches_first_generations() -> None:
    plan = plan_units(3, [], [])
    assert plan.to_launch == [UnitLaunch(0, 1), UnitLaunch(1, 1), UnitLaunch(2, 1)]
    assert not plan.adopted


def test_running_and_succeeded_units_are_adopted_failed_ones_relaunched_as_next_generation() -> None:
    ledger = [
        _entry(0, 1, ResourceStatus.LAUNCHED, "task-0-1"),
        _entry(1, 1, ResourceStatus.LAUNCHED, "task-1-1"),
        _entry(2, 1, ResourceStatus.FAILED),
    ]
    seen = [_seen(0, 1, UnitPhase.RUNNING), _seen(1, 1, UnitPhase.SUCCEEDED)]
    plan = plan_units(3, ledger, seen)
    assert [s.unit.index for s in plan.adopted] == [0, 1]
    assert plan.to_launch == [UnitLaunch(2, 2)]
    assert not plan.resent


def test_unit_failed_on_the_provider_is_relaunched() -> None:
    plan = plan_units(1, [_entry(0, 1, ResourceStatus.RUNNING, "task-0-1")], [_seen(0, 1, UnitPhase.FAILED)])
    assert plan.to_launch == [UnitLaunch(0, 2)]


def test_intent_without_a_provider_unit_resends_the_same_generation() -> None:
    plan = plan_units(1, [_entry(0, 1, ResourceStatus.INTENDED)], [])
    assert plan.to_launch == [UnitLaunch(0, 1)]
    assert plan.resent == {0}


def test_unit_found_on_the_provider_but_missing_from_the_ledger_is_adopted() -> None:
    # The crash window: RunTask answered, the worker died before recording the task.
    plan = plan_units(1, [_entry(0, 1, ResourceStatus.INTENDED)], [_seen(0, 1, UnitPhase.RUNNING)])
    assert plan.to_launch == []
    assert [s.unit.resource_id for s in plan.adopted] == ["task-0-1"]


def test_succeeded_unit_forgotten_by_the_provider_is_adopted_from_the_ledger() -> None:
    ledger = [_entry(0, 1, ResourceStatus.SUCCEEDED, "task-0-1")]
    plan = plan_units(1, ledger, [_seen(0, 1, UnitPhase.VANISHED)])
    assert plan.to_launch == []
    assert plan.adopted[0].phase is UnitPhase.SUCCEEDED


def test_rolled_back_units_are_relaunched() -> None:
    ledger = [_entry(0, 1, ResourceStatus.STOPPED, "t0"), _entry(1, 2, ResourceStatus.PENDING_CLEANUP, "t1")]
    plan = plan_units(2, ledger, [])
    assert plan.to_launch == [UnitLaunch(0, 2), UnitLaunch(1, 3)]


def test_a_cleared_task_after_success_launches_new_generations() -> None:
    ledger = [_entry(0, 1, ResourceStatus.SUCCEEDED, "t0")]
    plan = plan_units(1, ledger, [_seen(0, 1, UnitPhase.SUCCEEDED)], fresh_start=True)
    assert plan.to_launch == [UnitLaunch(0, 2)]
    assert not plan.adopted


def test_a_cleared_task_after_success_adopts_a_unit_still_running() -> None:
    # wait_for="running" succeeded with unit 0 still running; the clear starts fresh, but a live
    # unit is never doubled: unit 0 is adopted, the finished unit 1 runs again.
    ledger = [_entry(0, 1, ResourceStatus.RUNNING, "t0"), _entry(1, 1, ResourceStatus.SUCCEEDED, "t1")]
    seen = [_seen(0, 1, UnitPhase.RUNNING), _seen(1, 1, UnitPhase.SUCCEEDED)]
    plan = plan_units(2, ledger, seen, fresh_start=True)
    assert [(s.unit.index, s.unit.generation) for s in plan.adopted] == [(0, 1)]
    assert plan.to_launch == [UnitLaunch(1, 2)]


def test_only_the_newest_generation_counts() -> None:
    ledger = [_entry(0, 1, ResourceStatus.FAILED), _entry(0, 2, ResourceStatus.LAUNCHED, "task-0-2")]
    plan = plan_units(1, ledger, [_seen(0, 1, UnitPhase.FAILED), _seen(0, 2, UnitPhase.RUNNING)])
    assert [s.unit.generation for s in plan.adopted] == [2]
    assert plan.to_launch == []


def test_known_units_merges_provider_and_ledger_without_duplicates() -> None:
    ledger = [_entry(0, 1, ResourceStatus.LAUNCHED, "task-0-1"), _entry(1, 1, ResourceStatus.INTENDED)]
    found = [Unit(0, 1, "task-0-1"), Unit(2, 1, "task-2-1")]
    assert [(u.index, u.resource_id) for u in known_units(ledger, found)] == [
        (0, "task-0-1"),
        (2, "task-2-1"),
    ]


def _refused_resend(index: int, generation: int) -> LedgerEntry:
    """An intent a later try re-sent (its second send) that the provider refused."""
    return dataclasses.replace(_entry(index, generation, ResourceStatus.FAILED), attempts=2)


def test_a_refused_resend_is_resent_with_its_token_where_a_refusal_frees_it() -> None:
    # Its first sender may still be on its way: a new generation would run beside the old one.
    plan = plan_units(1, [_refused_resend(0, 1)], [], refusal_frees_token=True)
    assert plan.to_launch == [UnitLaunch(0, 1)]
    assert plan.resent == {0}


def test_a_refused_resend_is_the_next_generation_where_the_provider_keeps_the_refusal() -> None:
    # ECS answers the token with its refusal again: a re-send could never start the unit.
    plan = plan_units(1, [_refused_resend(0, 1)], [], refusal_frees_token=False)
    assert plan.to_launch == [UnitLaunch(0, 2)]


def test_a_refused_resend_is_the_next_generation_where_a_stranger_holds_the_token() -> None:
    # A pod not ours under the unit's name: every re-send would be refused the same way.
    cause = RootCause(http_status=409, reason=TOKEN_HELD)
    held = ComputeError(code=ErrorCode.CONFLICT, message="pod exists", root_cause=cause)
    entry = dataclasses.replace(_refused_resend(0, 1), last_error=held)
    plan = plan_units(1, [entry], [], refusal_frees_token=True)
    assert plan.to_launch == [UnitLaunch(0, 2)]
    assert not plan.resent


def test_a_refusal_of_the_first_send_is_the_next_generation_everywhere() -> None:
    # Its only sender got the answer: no request of that token is left on its way.
    plan = plan_units(1, [_entry(0, 1, ResourceStatus.FAILED)], [], refusal_frees_token=True)
    assert plan.to_launch == [UnitLaunch(0, 2)]
