"""The lifecycle's steps on the in-memory provider and a real store (SQLite file), in milliseconds.

Each step is the function the operator calls (``lifecycle/launch.py``, ``rollback.py``,
``ledger.py``, ``recovery/reconciler.py``); the provider is ``testing/memory.py``, whose contract
``test_memory_backend.py`` checks. What these steps do on real endpoints is proved in
``tests/integration`` and ``tests/reliability``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_compute_provider.errors import ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.errors.model import CleanupReport
from airflow_compute_provider.hooks.base import UnitPhase
from airflow_compute_provider.lifecycle.launch import launch_failure, reconcile_and_launch
from airflow_compute_provider.lifecycle.ledger import LaunchTimer, follow_statuses
from airflow_compute_provider.lifecycle.rollback import roll_back_left_running
from airflow_compute_provider.lifecycle.tries import Try
from airflow_compute_provider.recovery import Action, Reconciler, RecoverySettings
from airflow_compute_provider.state import ResourceStatus, SqlTenantStateStore, TenantStatus
from airflow_compute_provider.state.status import OperationStatus
from airflow_compute_provider.testing.memory import MemoryCloud, MemoryComputeBackend
from tests.model.support import EXECUTION_ID, TENANT, a_try, factory

R = ResourceStatus


def begin(store: SqlTenantStateStore, t: Try) -> Try:
    store.begin_operation(t.tenant_id, t.execution_id, "provision", t.provider, t.attempt)
    return t


def launch(store: SqlTenantStateStore, cloud: MemoryCloud, t: Try):  # type: ignore[no-untyped-def]
    return reconcile_and_launch(store, t, MemoryComputeBackend(cloud), {}, conn_id=None, timer=LaunchTimer())


def ledger(store: SqlTenantStateStore) -> list[tuple[int, int, ResourceStatus, bool]]:
    return [
        (e.unit_index, e.generation, e.status, bool(e.resource_id))
        for e in store.ledger(TENANT, EXECUTION_ID)
    ]


def test_a_launch_writes_intents_then_records_every_unit(
    store: SqlTenantStateStore, cloud: MemoryCloud
) -> None:
    result = launch(store, cloud, begin(store, a_try()))
    assert [(u.index, u.generation) for u in result.launched] == [(0, 1), (1, 1)]
    assert ledger(store) == [(0, 1, R.LAUNCHED, True), (1, 1, R.LAUNCHED, True)]


def test_a_lost_answer_the_try_could_not_check_stays_an_intent_and_the_next_try_adopts_it(
    store: SqlTenantStateStore, cloud: MemoryCloud
) -> None:
    t = begin(store, a_try())
    cloud.lose_next_answer()
    cloud.fail_next_call("find", skip=1)  # the reconcile's find works; the look for the refusal does not
    launch(store, cloud, t)
    assert ledger(store) == [(0, 1, R.INTENDED, False), (1, 1, R.LAUNCHED, True)]
    # the next try (the first died) adopts the unit its intent started: no second one
    second = launch(store, cloud, begin(store, a_try(2)))
    assert second.launched == []
    assert len(second.adopted) == 2
    assert len(cloud.units) == 2


def test_an_intent_whose_request_never_left_is_resent_with_the_same_token(
    store: SqlTenantStateStore, cloud: MemoryCloud
) -> None:
    t = begin(store, a_try(count=1))
    cloud.fail_next_call("launch")  # the request never reached the provider
    with pytest.raises(ComputeOperationError):
        launch(store, cloud, t)
    second = launch(store, cloud, begin(store, a_try(2, count=1)))
    assert [(u.index, u.generation) for u in second.launched] == [(0, 1)]
    [row] = store.ledger(TENANT, EXECUTION_ID)
    assert row.attempts == 2  # the same intent, sent twice


def test_a_lost_answer_is_found_by_the_tries_own_look(store: SqlTenantStateStore, cloud: MemoryCloud) -> None:
    cloud.lose_next_answer()
    result = launch(store, cloud, begin(store, a_try()))
    assert result.refused == []
    assert len(result.launched) == 2
    assert ledger(store) == [(0, 1, R.LAUNCHED, True), (1, 1, R.LAUNCHED, True)]


def test_the_next_try_adopts_what_runs_and_relaunches_only_what_failed(
    store: SqlTenantStateStore, cloud: MemoryCloud
) -> None:
    first = launch(store, cloud, begin(store, a_try()))
    cloud.set_phase(first.launched[0].resource_id, UnitPhase.RUNNING)
    cloud.fail(first.launched[1].resource_id)
    store.finish_operation(
        TENANT, EXECUTION_ID, ComputeError(code=ErrorCode.CONTAINER_FAILED, message="x"), will_retry=True
    )
    second = launch(store, cloud, begin(store, a_try(2)))
    assert [(s.unit.index, s.unit.generation) for s in second.adopted] == [(0, 1)]
    assert [(u.index, u.generation) for u in second.launched] == [(1, 2)]


@pytest.mark.parametrize(
    ("on_partial_failure", "left"), [("rollback", UnitPhase.FAILED), ("retry_failed", UnitPhase.PENDING)]
)
def test_a_partial_launch_is_rolled_back_or_kept_as_on_partial_failure_says(
    store: SqlTenantStateStore, cloud: MemoryCloud, on_partial_failure: str, left: UnitPhase
) -> None:
    t = begin(store, a_try(on_partial_failure=on_partial_failure))
    cloud.refuse_next(ComputeError(code=ErrorCode.INSUFFICIENT_CAPACITY, message="RESOURCE:CPU"))
    result = launch(store, cloud, t)
    error = launch_failure(store, t, MemoryComputeBackend(cloud), result)
    assert error.code is ErrorCode.PARTIAL_FAILURE
    [started] = cloud.units.values()
    assert started.phase is left


def test_retry_failed_with_no_retry_coming_rolls_back_what_it_left_running(
    store: SqlTenantStateStore, cloud: MemoryCloud
) -> None:
    t = begin(store, a_try(on_partial_failure="retry_failed"))
    result = launch(store, cloud, t)
    cloud.fail(result.launched[1].resource_id)
    error = ComputeError(
        code=ErrorCode.PARTIAL_FAILURE,
        message="1 of 2 failed",
        cleanup=CleanupReport(action="left_running", resources=[result.launched[0].resource_id]),
    )
    follow_statuses(store, t, MemoryComputeBackend(cloud).describe(result.launched), conn_id=None)
    rolled = roll_back_left_running(store, t, error, lambda: MemoryComputeBackend(cloud))
    assert rolled.cleanup is not None
    assert rolled.cleanup.action == "rolled_back"
    assert cloud.units[result.launched[0].resource_id].phase is UnitPhase.FAILED
    recorded = store.last_error(TENANT, EXECUTION_ID)
    assert recorded is not None
    assert recorded.cleanup == rolled.cleanup


def test_follow_statuses_moves_rows_forward_only(store: SqlTenantStateStore, cloud: MemoryCloud) -> None:
    t = begin(store, a_try(count=1))
    [unit] = launch(store, cloud, t).launched
    backend = MemoryComputeBackend(cloud)
    stale = backend.describe([unit])
    cloud.succeed(unit.resource_id)
    follow_statuses(store, t, backend.describe([unit]), conn_id=None)
    follow_statuses(store, t, stale, conn_id=None)  # a late poll
    assert ledger(store) == [(0, 1, R.SUCCEEDED, True)]


# -- the reconciler looks up launches the ledger does not know the fate of -------------------------


def _later() -> datetime:
    return datetime.now(UTC) + timedelta(hours=2)


def test_a_try_that_died_after_its_intent_is_found_followed_and_finished(
    store: SqlTenantStateStore, cloud: MemoryCloud
) -> None:
    """The try's worker died after the launch request left (its answer lost, the try's own look
    failed too) and no try came after it: the unit runs, and only the intent is in the ledger."""
    t = begin(store, a_try(count=1))
    cloud.lose_next_answer()
    cloud.fail_next_call("find", skip=1)  # the try's look for its refused unit
    reconcile_and_launch(store, t, MemoryComputeBackend(cloud), {}, conn_id=None, timer=LaunchTimer())
    # the worker dies here
    [unit] = cloud.units.values()
    assert ledger(store) == [(0, 1, R.INTENDED, False)]

    reconciler = Reconciler(store, backend_factory=factory(cloud), clock=_later)
    report = reconciler.run(RecoverySettings())
    assert ledger(store) == [(0, 1, R.LAUNCHED, True)]
    assert store.ledger(TENANT, EXECUTION_ID)[0].resource_id == unit.resource_id
    assert next(i.action for i in report.items if i.kind == "resource") is Action.FOUND
    assert store.get_tenant(TENANT).status is TenantStatus.OPERATION_IN_PROGRESS  # type: ignore[union-attr]

    cloud.succeed(unit.resource_id)
    reconciler.run(RecoverySettings())
    assert ledger(store) == [(0, 1, R.SUCCEEDED, True)]
    assert store.get_tenant(TENANT).status is TenantStatus.READY  # type: ignore[union-attr]


def test_a_refused_launch_that_did_start_is_found_and_cleaned_up_once_the_try_failed(
    store: SqlTenantStateStore, cloud: MemoryCloud
) -> None:
    """A 5xx whose request landed, the try's own look failing too: the try failed for good, its
    unit runs on. The reconciler finds it, records it and stops it (the operation failed)."""
    t = begin(store, a_try(count=1))
    unavailable = ComputeError(code=ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE, message="503")
    cloud.land_next_then_fail(unavailable)
    cloud.fail_next_call("find", skip=1)
    result = reconcile_and_launch(
        store, t, MemoryComputeBackend(cloud), {}, conn_id=None, timer=LaunchTimer()
    )
    error = launch_failure(store, t, MemoryComputeBackend(cloud), result)
    store.record_outcome(TENANT, EXECUTION_ID, error)
    store.finish_operation(TENANT, EXECUTION_ID, error, will_retry=False)
    [unit] = cloud.units.values()
    assert unit.live
    assert ledger(store) == [(0, 1, R.FAILED, False)]

    Reconciler(store, backend_factory=factory(cloud)).run(RecoverySettings())
    assert ledger(store) == [(0, 1, R.CLEANED, True)]
    assert not unit.live


def test_an_intent_that_never_launched_is_looked_up_once(
    store: SqlTenantStateStore, cloud: MemoryCloud
) -> None:
    t = begin(store, a_try(count=1))
    cloud.refuse_next(ComputeError(code=ErrorCode.PROVIDER_UNREACHABLE, message="no answer"))
    cloud.fail_next_call("find", skip=1)
    reconcile_and_launch(store, t, MemoryComputeBackend(cloud), {}, conn_id=None, timer=LaunchTimer())
    store.release(TENANT, "the worker host is gone", force=True)
    reconciler = Reconciler(store, backend_factory=factory(cloud))
    reconciler.run(RecoverySettings())
    assert ledger(store) == [(0, 1, R.FAILED, False)]
    finds = cloud.calls["find"]
    reconciler.run(RecoverySettings())
    assert cloud.calls["find"] == finds
    [op] = store.list_operations(tenant_id=TENANT)
    assert op.status is OperationStatus.ABANDONED
    assert op.eventual_status is OperationStatus.FAILED
