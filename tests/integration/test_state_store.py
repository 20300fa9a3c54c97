"""The tenant state store's behaviour, the same tests on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from datetime import UTC

import pytest

from airflow_compute_provider.errors import (
    Classification,
    ComputeConfigError,
    ComputeOperationError,
    ErrorCode,
)
from airflow_compute_provider.errors.model import UnitReport, UnitsReport
from airflow_compute_provider.state import (
    IllegalTransitionError,
    OperationStatus,
    ResourceStatus,
    ResourceUpdate,
    SqlTenantStateStore,
    TenantEvent,
    TenantNotFoundError,
    TenantStatus,
    newest_generations,
)
from tests.unit.state.support import EXEC, OTHER_EXEC, error, snapshot, state_url_fixture, store_fixture

state_url = state_url_fixture()
store = store_fixture()

LOCATOR = {"region": "eu-west-1", "cluster": "batch"}


def begin(store: SqlTenantStateStore, tenant: str = "acme", execution: str = EXEC, attempt: int = 1):
    return store.begin_operation(tenant, execution, "provision", "ecs", attempt)


def intend(store: SqlTenantStateStore, unit: int, generation: int = 1, execution: str = EXEC):
    return store.record_intent(
        "acme",
        execution,
        provider="ecs",
        conn_id="aws_default",
        locator=LOCATOR,
        unit_index=unit,
        generation=generation,
        idempotency_token=f"cx0-u{unit}-g{generation}",
    )


# -- begin ----------------------------------------------------------------------------------------


def test_begin_creates_the_tenant_on_first_sight(store: SqlTenantStateStore) -> None:
    assert store.get_tenant("acme") is None
    op = begin(store)
    tenant = store.get_tenant("acme")
    assert tenant is not None
    assert (tenant.status, tenant.execution_id, tenant.attempt, tenant.held) == (
        TenantStatus.OPERATION_IN_PROGRESS,
        EXEC,
        1,
        True,
    )
    assert (op.tenant_id, op.execution_id, op.attempt, op.status) == (
        "acme",
        EXEC,
        1,
        OperationStatus.IN_PROGRESS,
    )
    assert op.started_at.tzinfo is not None
    assert op.started_at.utcoffset() == UTC.utcoffset(None)
    [move] = store.transitions("acme")
    assert (move.event, move.from_status, move.to_status) == (
        TenantEvent.BEGIN,
        TenantStatus.READY,
        TenantStatus.OPERATION_IN_PROGRESS,
    )


def test_begin_is_idempotent_for_the_same_execution_and_attempt(
    store: SqlTenantStateStore, state_url: str
) -> None:
    first = begin(store)
    before = snapshot(state_url)
    again = begin(store)
    assert again == first
    assert snapshot(state_url) == before


def test_two_tenants_may_use_the_same_execution_id(store: SqlTenantStateStore) -> None:
    begin(store, "acme")
    begin(store, "globex")
    store.finish_operation("acme", EXEC, error(ErrorCode.CONTAINER_FAILED), will_retry=False)
    globex = store.get_tenant("globex")
    assert globex is not None
    assert globex.status is TenantStatus.OPERATION_IN_PROGRESS
    assert store.last_error("globex", EXEC) is None
    store.finish_operation("globex", EXEC, None, will_retry=False)
    assert [t.status for t in store.list_tenants()] == [TenantStatus.NEEDS_INVESTIGATION, TenantStatus.READY]


def test_another_execution_is_refused_with_a_retriable_conflict_and_nothing_written(
    store: SqlTenantStateStore, state_url: str
) -> None:
    begin(store)
    before = snapshot(state_url)
    with pytest.raises(ComputeOperationError) as refused:
        begin(store, execution=OTHER_EXEC)
    e = refused.value.error
    assert (e.code, e.classification) == (ErrorCode.CONFLICT, Classification.RETRIABLE)
    assert (e.tenant_id, e.execution_id, e.attempt) == ("acme", OTHER_EXEC, 1)
    assert EXEC in e.message
    assert snapshot(state_url) == before


@pytest.mark.parametrize("execution", [EXEC, OTHER_EXEC], ids=["same-execution", "other-execution"])
def test_a_tenant_needing_investigation_refuses_every_begin(
    store: SqlTenantStateStore, state_url: str, execution: str
) -> None:
    begin(store)
    store.finish_operation("acme", EXEC, error(ErrorCode.PERMISSION_DENIED), will_retry=False)
    before = snapshot(state_url)
    with pytest.raises(ComputeOperationError) as refused:
        begin(store, execution=execution, attempt=2)
    e = refused.value.error
    assert e.code is ErrorCode.TENANT_STATE_CONFLICT
    assert (e.tenant_id, e.execution_id) == ("acme", execution)
    assert "release" in e.message
    assert snapshot(state_url) == before


def test_the_next_try_of_the_holder_is_its_retry(store: SqlTenantStateStore) -> None:
    begin(store)
    store.finish_operation("acme", EXEC, error(ErrorCode.PROVIDER_THROTTLED), will_retry=True)
    with pytest.raises(ComputeOperationError) as refused:
        begin(store, execution=OTHER_EXEC)  # the retry is due: the tenant is still EXEC's
    assert refused.value.error.code is ErrorCode.CONFLICT
    second = begin(store, attempt=2)
    assert second.attempt == 2
    tenant = store.get_tenant("acme")
    assert tenant is not None
    assert (tenant.status, tenant.attempt) == (TenantStatus.OPERATION_IN_PROGRESS, 2)


def test_a_try_whose_worker_died_is_abandoned_when_the_next_try_begins(store: SqlTenantStateStore) -> None:
    begin(store)
    begin(store, attempt=2)  # try 1 never finished
    ops = store.operations("acme")
    assert [(o.attempt, o.status) for o in ops] == [
        (2, OperationStatus.IN_PROGRESS),
        (1, OperationStatus.ABANDONED),
    ]
    assert ops[1].finished_at is not None


def test_a_repeated_airflow_try_after_its_finish_is_the_next_try(store: SqlTenantStateStore) -> None:
    """The store numbers tries (more in test_state_tries.py): Airflow's try 1 again (a dag.test
    rerun, a new DAG run of the same execution id) is the execution's try 2, not a refusal."""
    begin(store)
    store.finish_operation("acme", EXEC, error(ErrorCode.PROVIDER_UNREACHABLE), will_retry=True)
    again = begin(store, attempt=1)
    assert (again.attempt, again.airflow_try_number) == (2, 1)
    assert [o.attempt for o in store.operations("acme")] == [2, 1]


# -- finish -----------------------------------------------------------------------------------------


def test_success_makes_the_tenant_ready(store: SqlTenantStateStore) -> None:
    begin(store)
    tenant = store.finish_operation("acme", EXEC, None, will_retry=False)
    assert (tenant.status, tenant.held) == (TenantStatus.READY, False)
    [op] = store.operations("acme")
    assert (op.status, op.error, op.tenant_status_after) == (
        OperationStatus.SUCCEEDED,
        None,
        TenantStatus.READY,
    )
    begin(store, execution=OTHER_EXEC)  # free for the next execution


@pytest.mark.parametrize(
    ("code", "will_retry", "status", "held"),
    [
        (ErrorCode.PROVIDER_THROTTLED, True, TenantStatus.RETRY_PENDING, True),
        (ErrorCode.CONTAINER_FAILED, True, TenantStatus.RETRY_PENDING, True),
        (ErrorCode.CONTAINER_FAILED, False, TenantStatus.NEEDS_INVESTIGATION, False),
        (ErrorCode.PERMISSION_DENIED, False, TenantStatus.NEEDS_INVESTIGATION, False),
        (ErrorCode.OPERATION_TIMEOUT, False, TenantStatus.RETRY_PENDING, False),
    ],
)
def test_a_failure_moves_the_tenant_by_classification_and_airflows_decision(
    store: SqlTenantStateStore, code: ErrorCode, will_retry: bool, status: TenantStatus, held: bool
) -> None:
    begin(store)
    tenant = store.finish_operation("acme", EXEC, error(code), will_retry=will_retry)
    assert (tenant.status, tenant.held) == (status, held)
    [op] = store.operations("acme")
    assert (op.status, op.error_code, op.will_retry) == (OperationStatus.FAILED, code, will_retry)
    if status is TenantStatus.RETRY_PENDING and not held:
        begin(store, execution=OTHER_EXEC)  # the workflow gave up: a new execution may take over


def test_a_partial_failure_is_judged_by_its_most_severe_unit(store: SqlTenantStateStore) -> None:
    units = UnitsReport(
        succeeded=[UnitReport(index=0, resource_id="task/0")],
        failed=[UnitReport(index=1, resource_id="task/1", error=error(ErrorCode.OUT_OF_MEMORY))],
    )
    begin(store)
    tenant = store.finish_operation(
        "acme", EXEC, error(ErrorCode.PARTIAL_FAILURE, units=units), will_retry=False
    )
    assert tenant.status is TenantStatus.NEEDS_INVESTIGATION


def test_the_error_is_kept_with_the_operation_in_context(store: SqlTenantStateStore) -> None:
    begin(store)
    store.finish_operation("acme", EXEC, error(ErrorCode.IMAGE_NOT_FOUND, "no such tag"), will_retry=False)
    kept = store.last_error("acme", EXEC)
    assert kept is not None
    assert (kept.code, kept.message) == (ErrorCode.IMAGE_NOT_FOUND, "no such tag")
    assert (kept.tenant_id, kept.execution_id, kept.attempt, kept.provider, kept.operation) == (
        "acme",
        EXEC,
        1,
        "ecs",
        "provision",
    )
    assert store.last_error("acme", OTHER_EXEC) is None


def test_last_error_is_the_newest_trys_never_an_older_one(store: SqlTenantStateStore) -> None:
    begin(store)
    store.finish_operation("acme", EXEC, error(ErrorCode.PROVIDER_THROTTLED), will_retry=True)
    begin(store, attempt=2)
    assert store.last_error("acme", EXEC) is None  # try 2 has recorded nothing yet
    store.record_outcome("acme", EXEC, error(ErrorCode.OUT_OF_MEMORY))
    kept = store.last_error("acme", EXEC)
    assert kept is not None
    assert (kept.code, kept.attempt) == (ErrorCode.OUT_OF_MEMORY, 2)


def test_record_outcome_keeps_the_error_but_leaves_the_tenant_for_finish(store: SqlTenantStateStore) -> None:
    begin(store)
    op = store.record_outcome("acme", EXEC, error(ErrorCode.INSUFFICIENT_CAPACITY))
    assert (op.status, op.error_code, op.finished_at) == (
        OperationStatus.FAILED,
        ErrorCode.INSUFFICIENT_CAPACITY,
        None,
    )
    tenant = store.get_tenant("acme")
    assert tenant is not None
    assert tenant.status is TenantStatus.OPERATION_IN_PROGRESS
    assert store.last_error("acme", EXEC) == op.error
    store.finish_operation("acme", EXEC, op.error, will_retry=True)
    with pytest.raises(IllegalTransitionError, match="already finished"):
        store.record_outcome("acme", EXEC, None)


def test_finishing_twice_the_same_way_changes_nothing(store: SqlTenantStateStore, state_url: str) -> None:
    begin(store)
    store.finish_operation("acme", EXEC, error(ErrorCode.PROVIDER_THROTTLED), will_retry=True)
    before = snapshot(state_url)
    store.finish_operation("acme", EXEC, error(ErrorCode.PROVIDER_THROTTLED), will_retry=True)
    assert snapshot(state_url) == before
    with pytest.raises(IllegalTransitionError, match="already finished"):
        store.finish_operation("acme", EXEC, None, will_retry=False)
    assert snapshot(state_url) == before


def test_finishing_what_never_began_is_an_illegal_transition(store: SqlTenantStateStore) -> None:
    with pytest.raises(TenantNotFoundError):
        store.finish_operation("acme", EXEC, None, will_retry=False)
    begin(store)
    with pytest.raises(IllegalTransitionError, match="never began"):
        store.finish_operation("acme", OTHER_EXEC, None, will_retry=False)


def test_timeouts_so_far_counts_the_tries_that_timed_out(store: SqlTenantStateStore) -> None:
    outcomes = [ErrorCode.OPERATION_TIMEOUT, ErrorCode.PROVIDER_THROTTLED, ErrorCode.OPERATION_TIMEOUT]
    for attempt, code in enumerate(outcomes, start=1):
        assert store.timeouts_so_far("acme", EXEC) == outcomes[: attempt - 1].count(
            ErrorCode.OPERATION_TIMEOUT
        )
        begin(store, attempt=attempt)
        store.finish_operation("acme", EXEC, error(code), will_retry=True)
    assert store.timeouts_so_far("acme", EXEC) == 2
    assert store.timeouts_so_far("acme", OTHER_EXEC) == 0
    assert store.timeouts_so_far("globex", EXEC) == 0


# -- release ----------------------------------------------------------------------------------------


def test_release_is_the_way_out_of_investigation(store: SqlTenantStateStore) -> None:
    begin(store)
    store.finish_operation("acme", EXEC, error(ErrorCode.AUTHENTICATION_FAILED), will_retry=False)
    tenant = store.release("acme", "rotated the credentials")
    assert (tenant.status, tenant.note) == (TenantStatus.READY, "rotated the credentials")
    move = store.transitions("acme")[0]
    assert (move.event, move.from_status, move.note) == (
        TenantEvent.RELEASE,
        TenantStatus.NEEDS_INVESTIGATION,
        "rotated the credentials",
    )
    begin(store, execution=OTHER_EXEC)


def test_release_refuses_a_ready_tenant_and_a_held_one_without_force(
    store: SqlTenantStateStore, state_url: str
) -> None:
    begin(store)
    store.finish_operation("acme", EXEC, None, will_retry=False)
    with pytest.raises(IllegalTransitionError, match="ready"):
        store.release("acme", "nothing to release")
    begin(store, execution=OTHER_EXEC)
    before = snapshot(state_url)
    with pytest.raises(IllegalTransitionError, match="force"):
        store.release("acme", "worker died")
    assert snapshot(state_url) == before
    with pytest.raises(TenantNotFoundError):
        store.release("nobody", "no such tenant")


def test_a_forced_release_abandons_the_holders_try(store: SqlTenantStateStore) -> None:
    begin(store)
    tenant = store.release("acme", "the worker host is gone", force=True)
    assert (tenant.status, tenant.held) == (TenantStatus.READY, False)
    assert store.transitions("acme")[0].event is TenantEvent.FORCE_RELEASE
    assert store.operations("acme")[0].status is OperationStatus.ABANDONED
    with pytest.raises(IllegalTransitionError):
        store.finish_operation("acme", EXEC, None, will_retry=False)  # its late callback


# -- listing --------------------------------------------------------------------------------------


def test_list_tenants_filters_by_status(store: SqlTenantStateStore) -> None:
    for name, outcome in [("acme", None), ("globex", error(ErrorCode.QUOTA_EXCEEDED)), ("initech", None)]:
        begin(store, name)
        if name != "initech":
            store.finish_operation(name, EXEC, outcome, will_retry=False)
    assert [t.tenant_id for t in store.list_tenants()] == ["acme", "globex", "initech"]
    assert [t.tenant_id for t in store.list_tenants(status="needs_investigation")] == ["globex"]
    assert [t.tenant_id for t in store.list_tenants(status=TenantStatus.OPERATION_IN_PROGRESS)] == ["initech"]
    assert store.list_tenants(status=TenantStatus.RETRY_PENDING) == []


def test_operations_are_history_newest_first(store: SqlTenantStateStore) -> None:
    begin(store)
    store.finish_operation("acme", EXEC, None, will_retry=False)
    begin(store, execution=OTHER_EXEC)
    assert [(o.execution_id, o.attempt) for o in store.operations("acme")] == [(OTHER_EXEC, 1), (EXEC, 1)]
    assert [o.execution_id for o in store.list_operations(status="succeeded")] == [EXEC]


def test_the_reconciler_finds_timed_out_work_and_records_how_it_ended(store: SqlTenantStateStore) -> None:
    begin(store)
    store.finish_operation("acme", EXEC, error(ErrorCode.OPERATION_TIMEOUT), will_retry=False)
    begin(store, "globex")
    store.finish_operation("globex", EXEC, error(ErrorCode.CONTAINER_FAILED), will_retry=False)
    [waiting] = store.list_operations(awaiting_eventual_outcome=True)
    assert (waiting.tenant_id, waiting.error_code) == ("acme", ErrorCode.OPERATION_TIMEOUT)
    done = store.record_eventual_outcome("acme", EXEC, 1, None)
    assert (done.eventual_status, done.eventual_error) == (OperationStatus.SUCCEEDED, None)
    assert done.status is OperationStatus.FAILED  # the try itself still timed out
    assert store.list_operations(awaiting_eventual_outcome=True) == []
    assert store.record_eventual_outcome("acme", EXEC, 1, None) == done  # seen again: no change
    with pytest.raises(IllegalTransitionError, match="already has"):
        store.record_eventual_outcome("acme", EXEC, 1, error(ErrorCode.CONTAINER_FAILED))


def _timed_out(store: SqlTenantStateStore, *, will_retry: bool = False):
    """acme as a try that timed out leaves it: retry_pending, its work left running."""
    begin(store)
    return store.finish_operation("acme", EXEC, error(ErrorCode.OPERATION_TIMEOUT), will_retry=will_retry)


@pytest.mark.parametrize(
    "code", [ErrorCode.OUT_OF_MEMORY, ErrorCode.PERMISSION_DENIED], ids=["non-retriable", "manual"]
)
def test_timed_out_work_that_eventually_needs_a_human_holds_the_tenant(
    store: SqlTenantStateStore, code: ErrorCode
) -> None:
    seen = _timed_out(store)
    eventual = error(code, "the work failed after its try gave up")
    held = store.hold_for_investigation(
        "acme", EXEC, 1, eventual, "maintenance: the work failed", expected_version=seen.version
    )
    assert (held.status, held.held, held.execution_id, held.attempt) == (
        TenantStatus.NEEDS_INVESTIGATION,
        False,
        EXEC,
        1,
    )
    assert (held.version, held.note) == (seen.version + 1, "maintenance: the work failed")
    move = store.transitions("acme")[0]
    assert (move.event, move.from_status, move.to_status, move.attempt) == (
        TenantEvent.FINISH,
        TenantStatus.RETRY_PENDING,
        TenantStatus.NEEDS_INVESTIGATION,
        1,
    )
    # In the same write: the eventual outcome, in context; the try keeps its own error.
    [op] = store.operations("acme")
    assert (op.status, op.error_code, op.tenant_status_after) == (
        OperationStatus.FAILED,
        ErrorCode.OPERATION_TIMEOUT,
        TenantStatus.RETRY_PENDING,
    )
    assert op.eventual_status is OperationStatus.FAILED
    assert op.eventual_error is not None
    assert (op.eventual_error.code, op.eventual_error.tenant_id, op.eventual_error.attempt) == (
        code,
        "acme",
        1,
    )
    assert store.list_operations(awaiting_eventual_outcome=True) == []
    # Held like any tenant a final failure left needing investigation: no new try until released.
    with pytest.raises(ComputeOperationError) as refused:
        begin(store, execution=OTHER_EXEC)
    assert refused.value.error.code is ErrorCode.TENANT_STATE_CONFLICT
    assert store.release("acme", "fixed the task role").status is TenantStatus.READY


def test_a_hold_for_a_retry_that_never_came_may_be_held_for_investigation(store: SqlTenantStateStore) -> None:
    begin(store)
    seen = store.finish_operation("acme", EXEC, error(ErrorCode.AUTHENTICATION_FAILED), will_retry=True)
    assert (seen.status, seen.held) == (TenantStatus.RETRY_PENDING, True)
    # Not a try whose work outlived it: the error that holds the tenant is the try's own.
    with pytest.raises(IllegalTransitionError, match="neither"):
        store.hold_for_investigation(
            "acme", EXEC, 1, error(ErrorCode.OUT_OF_MEMORY), "stale", expected_version=seen.version
        )
    held = store.hold_for_investigation(
        "acme", EXEC, 1, error(ErrorCode.AUTHENTICATION_FAILED), "stale", expected_version=seen.version
    )
    assert (held.status, held.held) == (TenantStatus.NEEDS_INVESTIGATION, False)
    assert store.operations("acme")[0].eventual_status is None


def test_hold_for_investigation_never_overwrites_a_tenant_a_new_try_took_over(
    store: SqlTenantStateStore, state_url: str
) -> None:
    seen = _timed_out(store)  # what the reconciler read
    store.begin_operation("acme", OTHER_EXEC, "provision", "ecs", 1)  # a new try takes the tenant
    before = snapshot(state_url)
    with pytest.raises(IllegalTransitionError, match="moved on") as refused:
        store.hold_for_investigation(
            "acme", EXEC, 1, error(ErrorCode.OUT_OF_MEMORY), "late", expected_version=seen.version
        )
    assert (refused.value.current, refused.value.requested) == (
        "operation_in_progress",
        "needs_investigation",
    )
    assert snapshot(state_url) == before  # not even the eventual outcome was written
    # Read again, the tenant is no longer where the timed-out try left it.
    now = store.get_tenant("acme")
    assert now is not None
    with pytest.raises(IllegalTransitionError, match="not retry_pending"):
        store.hold_for_investigation(
            "acme", EXEC, 1, error(ErrorCode.OUT_OF_MEMORY), "late", expected_version=now.version
        )
    assert snapshot(state_url) == before


def test_hold_for_investigation_refuses_what_a_retry_may_fix_and_anything_inconsistent(
    store: SqlTenantStateStore, state_url: str
) -> None:
    seen = _timed_out(store)
    before = snapshot(state_url)
    refusals = [
        ((EXEC, 1, error(ErrorCode.INFRASTRUCTURE_INTERRUPTED)), "retriable"),
        ((EXEC, 2, error(ErrorCode.OUT_OF_MEMORY)), "never began"),
        ((OTHER_EXEC, 1, error(ErrorCode.OUT_OF_MEMORY)), "never began"),
    ]
    for (execution, attempt, err), match in refusals:
        with pytest.raises(IllegalTransitionError, match=match):
            store.hold_for_investigation("acme", execution, attempt, err, "x", expected_version=seen.version)
    with pytest.raises(ComputeConfigError) as bad:
        store.hold_for_investigation("acme", EXEC, 1, None, "x", expected_version=seen.version)  # type: ignore[arg-type]
    assert bad.value.argument == "error"
    with pytest.raises(TenantNotFoundError):
        store.hold_for_investigation(
            "nobody", EXEC, 1, error(ErrorCode.OUT_OF_MEMORY), "x", expected_version=0
        )
    assert snapshot(state_url) == before
    # An eventual outcome already recorded must be the one that holds the tenant.
    store.record_eventual_outcome("acme", EXEC, 1, error(ErrorCode.CONTAINER_FAILED))
    with pytest.raises(IllegalTransitionError, match="already has eventual outcome"):
        store.hold_for_investigation(
            "acme", EXEC, 1, error(ErrorCode.OUT_OF_MEMORY), "x", expected_version=seen.version
        )
    held = store.hold_for_investigation(
        "acme", EXEC, 1, error(ErrorCode.CONTAINER_FAILED), "x", expected_version=seen.version
    )
    assert held.status is TenantStatus.NEEDS_INVESTIGATION
    # Nothing leaves investigation but a release: a second hold finds it moved on.
    with pytest.raises(IllegalTransitionError):
        store.hold_for_investigation(
            "acme", EXEC, 1, error(ErrorCode.CONTAINER_FAILED), "x", expected_version=held.version
        )


# -- the ledger -------------------------------------------------------------------------------------


def test_an_intent_is_recorded_before_the_launch_and_followed_to_the_end(store: SqlTenantStateStore) -> None:
    begin(store)
    entry = intend(store, 0)
    assert (entry.status, entry.resource_id, entry.attempts, entry.locator, entry.conn_id) == (
        ResourceStatus.INTENDED,
        None,
        1,
        LOCATOR,
        "aws_default",
    )
    [launched] = store.record_resources(
        "acme", EXEC, [ResourceUpdate(0, 1, "launched", resource_id="task/0")]
    )
    assert (launched.status, launched.resource_id) == (ResourceStatus.LAUNCHED, "task/0")
    failure = error(ErrorCode.CONTAINER_FAILED, root_cause={"exit_code": 3})
    [failed] = store.record_resources(
        "acme", EXEC, [ResourceUpdate(0, 1, ResourceStatus.FAILED, error=failure)]
    )
    assert (failed.status, failed.resource_id, failed.last_error) == (
        ResourceStatus.FAILED,
        "task/0",
        failure,
    )
    assert store.ledger("acme", EXEC) == [failed]


def test_the_same_intent_again_counts_an_attempt_and_a_launched_one_needs_a_new_generation(
    store: SqlTenantStateStore,
) -> None:
    begin(store)
    intend(store, 0)
    assert intend(store, 0).attempts == 2  # re-sent with the same token after a crash
    store.record_resources("acme", EXEC, [ResourceUpdate(0, 1, "running", resource_id="task/0")])
    with pytest.raises(IllegalTransitionError, match="generation 2"):
        intend(store, 0)
    intend(store, 0, generation=2)
    newest = newest_generations(store.ledger("acme", EXEC))
    assert {i: (e.generation, e.status) for i, e in newest.items()} == {0: (2, ResourceStatus.INTENDED)}


def test_only_the_holder_may_record_an_intent(store: SqlTenantStateStore, state_url: str) -> None:
    begin(store)
    store.finish_operation("acme", EXEC, error(ErrorCode.PROVIDER_THROTTLED), will_retry=True)
    before = snapshot(state_url)
    with pytest.raises(ComputeOperationError) as refused:
        intend(store, 0)  # between tries: nothing may be launched
    assert refused.value.error.code is ErrorCode.CONFLICT
    with pytest.raises(IllegalTransitionError, match="never began"):
        intend(store, 0, execution=OTHER_EXEC)
    assert snapshot(state_url) == before


def test_resources_need_an_intent_first_and_keep_their_resource_id(store: SqlTenantStateStore) -> None:
    begin(store)
    with pytest.raises(IllegalTransitionError, match="no intent"):
        store.record_resources("acme", EXEC, [ResourceUpdate(0, 1, "launched", resource_id="task/0")])
    intend(store, 0)
    store.record_resources("acme", EXEC, [ResourceUpdate(0, 1, "launched", resource_id="task/0")])
    with pytest.raises(IllegalTransitionError, match="task/0"):
        store.record_resources("acme", EXEC, [ResourceUpdate(0, 1, "running", resource_id="task/9")])


def test_a_stale_status_report_does_not_rewrite_history(store: SqlTenantStateStore) -> None:
    begin(store)
    intend(store, 0)
    store.record_resources("acme", EXEC, [ResourceUpdate(0, 1, "succeeded", resource_id="task/0")])
    [kept] = store.record_resources("acme", EXEC, [ResourceUpdate(0, 1, "running")])
    assert kept.status is ResourceStatus.SUCCEEDED
    assert store.ledger("acme", EXEC)[0].status is ResourceStatus.SUCCEEDED


def test_a_batch_of_updates_is_one_transaction(store: SqlTenantStateStore, state_url: str) -> None:
    begin(store)
    intend(store, 0)
    intend(store, 1)
    before = snapshot(state_url)
    with pytest.raises(IllegalTransitionError):
        store.record_resources(
            "acme",
            EXEC,
            [ResourceUpdate(0, 1, "running", resource_id="task/0"), ResourceUpdate(2, 1, "running")],
        )
    assert snapshot(state_url) == before


def test_list_resources_finds_what_needs_cleaning(store: SqlTenantStateStore) -> None:
    begin(store)
    for unit in range(3):
        intend(store, unit)
    store.record_resources(
        "acme",
        EXEC,
        [
            ResourceUpdate(0, 1, "stopped", resource_id="task/0"),
            ResourceUpdate(
                1, 1, "pending_cleanup", resource_id="task/1", error=error(ErrorCode.CLEANUP_FAILED)
            ),
            ResourceUpdate(2, 1, "running", resource_id="task/2"),
        ],
    )
    [stuck] = store.list_resources(status="pending_cleanup")
    assert (stuck.resource_id, stuck.last_error.code if stuck.last_error else None) == (
        "task/1",
        ErrorCode.CLEANUP_FAILED,
    )
    assert [r.unit_index for r in store.list_resources(tenant_id="acme")] == [0, 1, 2]
    assert store.list_resources(tenant_id="globex") == []


# -- bad input ------------------------------------------------------------------------------------

BAD_TENANT_IDS = [
    "",
    "-acme",
    "acme-",
    "Acme",
    "acme_corp",
    "acme corp",
    "a" * 64,
    "acme\n",
    "ac\x00me",
    "ac\x7fme",
    "acmé",
    None,
    42,
]


@pytest.mark.parametrize("bad", BAD_TENANT_IDS, ids=repr)
def test_a_bad_tenant_id_is_refused_naming_the_argument_and_writes_nothing(
    store: SqlTenantStateStore, state_url: str, bad: object
) -> None:
    begin(store)
    before = snapshot(state_url)
    calls = [
        lambda: store.begin_operation(bad, EXEC, "provision", "ecs", 1),  # type: ignore[arg-type]
        lambda: store.finish_operation(bad, EXEC, None, will_retry=False),  # type: ignore[arg-type]
        lambda: store.release(bad, "note"),  # type: ignore[arg-type]
        lambda: store.get_tenant(bad),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(ComputeConfigError) as refused:
            call()
        assert refused.value.argument == "tenant_id"
    assert snapshot(state_url) == before


def test_the_longest_valid_tenant_id_is_accepted(store: SqlTenantStateStore) -> None:
    name = "a" + "-" * 61 + "z"
    begin(store, name)
    assert store.get_tenant(name) is not None


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda s: s.begin_operation("acme", "", "provision", "ecs", 1), "execution_id"),
        (lambda s: s.begin_operation("acme", "x" * 1001, "provision", "ecs", 1), "execution_id"),
        (lambda s: s.begin_operation("acme", "run\r1", "provision", "ecs", 1), "execution_id"),
        (lambda s: s.begin_operation("acme", EXEC, "provision", "ecs", 0), "airflow_try_number"),
        (lambda s: s.begin_operation("acme", EXEC, "provision", "ecs", True), "airflow_try_number"),
        (lambda s: s.begin_operation("acme", EXEC, "provision", "ecs", 1, token=""), "token"),
        (lambda s: s.begin_operation("acme", EXEC, " ", "ecs", 1), "operation"),
        (lambda s: s.list_tenants(status="broken"), "status"),
        (lambda s: s.list_resources(status="gone"), "status"),
        (lambda s: s.list_operations(status="maybe"), "status"),
        (lambda s: s.list_operations(error_code="OOPS"), "error_code"),
        (lambda s: s.record_resources("acme", EXEC, [ResourceUpdate(0, 1, "exploded")]), "updates[0].status"),
        (
            lambda s: s.record_resources("acme", EXEC, [ResourceUpdate(-1, 1, "running")]),
            "updates[0].unit_index",
        ),
        (lambda s: s.finish_operation("acme", EXEC, "boom", will_retry=False), "outcome"),
        (lambda s: s.finish_operation("acme", EXEC, None, will_retry="no"), "will_retry"),
        (lambda s: s.release("acme", "   "), "note"),
        (lambda s: s.release("acme", "a\x1b[31mred"), "note"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument_and_write_nothing(
    store: SqlTenantStateStore, state_url: str, call: object, argument: str
) -> None:
    begin(store)
    intend(store, 0)
    before = snapshot(state_url)
    with pytest.raises(ComputeConfigError) as refused:
        call(store)  # type: ignore[operator]
    assert refused.value.argument == argument
    assert argument in str(refused.value)
    assert snapshot(state_url) == before


def test_an_unknown_status_in_the_database_cannot_be_written(
    store: SqlTenantStateStore, state_url: str
) -> None:
    """The status columns carry CHECK constraints: not even raw SQL stores an unknown status."""
    import sqlalchemy as sa

    begin(store)
    engine = sa.create_engine(state_url)
    try:
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.text("UPDATE compute_state_tenants SET status = 'on_fire'"))
    finally:
        engine.dispose()
    assert store.get_tenant("acme").status is TenantStatus.OPERATION_IN_PROGRESS  # type: ignore[union-attr]
