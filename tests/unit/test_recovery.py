"""Recovery's decisions, settings, report and DAG, without a provider.

The pure functions of ``recovery/outcomes.py`` get the ledger rows, statuses and store records
the reconciler would read; the store additions the reconciler relies on (``release`` with an
expected version, ``finish_operation`` with a note) run on a real SQLite file; the maintenance
DAG is parsed the way Airflow's DAG processor parses it. What the reconciler does to real
providers is in ``tests/integration/test_recovery_ecs.py`` and ``test_recovery_kubernetes.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_compute_provider.errors import ComputeConfigError, ComputeError, ErrorCode
from airflow_compute_provider.hooks.base import Unit, UnitPhase, UnitStatus
from airflow_compute_provider.recovery import Action, Item, Reconciler, RecoveryReport, RecoverySettings
from airflow_compute_provider.recovery.backends import BackendKey, backend_config, group_by_backend
from airflow_compute_provider.recovery.outcomes import (
    UNSETTLED,
    eventual_outcome,
    ledger_move,
    stale_hold,
    tenant_after_eventual,
)
from airflow_compute_provider.state import (
    IllegalTransitionError,
    LedgerEntry,
    Operation,
    ResourceStatus,
    SqlTenantStateStore,
    Tenant,
    TenantEvent,
    TenantStatus,
)
from airflow_compute_provider.state.status import OperationStatus

R = ResourceStatus
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=5)
REPO = Path(__file__).resolve().parents[2]


def entry(
    index: int = 0,
    status: ResourceStatus = R.RUNNING,
    *,
    generation: int = 1,
    resource_id: str | None = "res-0",
    error: ComputeError | None = None,
    provider: str = "ecs",
    locator: dict[str, str] | None = None,
    tenant_id: str = "acme",
    execution_id: str = "dag:run:task:-1",
) -> LedgerEntry:
    return LedgerEntry(
        id=index * 100 + generation,
        tenant_id=tenant_id,
        execution_id=execution_id,
        provider=provider,
        conn_id="aws_default",
        locator=locator if locator is not None else {"region": "us-east-1", "cluster": "c"},
        unit_index=index,
        generation=generation,
        idempotency_token=f"tok-{index}-{generation}",
        resource_id=resource_id,
        status=status,
        attempts=1,
        last_error=error,
        created_at=NOW - timedelta(hours=3),
        updated_at=NOW - timedelta(hours=2),
    )


def status(phase: UnitPhase, e: LedgerEntry | None = None, **kwargs: Any) -> UnitStatus:
    e = e or entry()
    return UnitStatus(unit=Unit(e.unit_index, e.generation, str(e.resource_id)), phase=phase, **kwargs)


def error(code: ErrorCode = ErrorCode.CONTAINER_FAILED, message: str = "exit 1") -> ComputeError:
    return ComputeError(code=code, message=message)


def operation(
    *,
    attempt: int = 1,
    err: ComputeError | None = None,
    finished: bool = True,
    execution_id: str = "dag:run:task:-1",
    idle: timedelta = timedelta(hours=2),
) -> Operation:
    err = err if err is not None else error(ErrorCode.OPERATION_TIMEOUT, "timed out")
    last = NOW - idle
    return Operation(
        id=attempt,
        tenant_id="acme",
        execution_id=execution_id,
        attempt=attempt,
        operation="provision",
        provider="ecs",
        status=OperationStatus.FAILED if finished else OperationStatus.IN_PROGRESS,
        error=err if finished else None,
        will_retry=False if finished else None,
        tenant_status_after=TenantStatus.RETRY_PENDING if finished else None,
        started_at=last - timedelta(minutes=1),
        outcome_at=last if finished else None,
        finished_at=last if finished else None,
    )


def tenant(
    status_: TenantStatus = TenantStatus.RETRY_PENDING,
    *,
    held: bool = False,
    execution_id: str = "dag:run:task:-1",
    attempt: int = 1,
) -> Tenant:
    return Tenant(
        tenant_id="acme",
        status=status_,
        execution_id=execution_id,
        attempt=attempt,
        held=held,
        note=None,
        version=4,
        created_at=NOW - timedelta(days=1),
        updated_at=NOW - timedelta(hours=2),
    )


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"provider": "azure"}, "provider"),
        ({"tenant_id": "Not A Tenant"}, "tenant_id"),
        ({"cleanup_attempts": 0}, "cleanup_attempts"),
        ({"cleanup_attempts": True}, "cleanup_attempts"),
        ({"stale_after": timedelta(seconds=-1)}, "stale_after"),
        ({"cleanup_backoff": 5}, "cleanup_backoff"),
        ({"dry_run": "yes"}, "dry_run"),
    ],
)
def test_settings_refuse_bad_values_naming_the_argument(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ComputeConfigError) as refused:
        RecoverySettings(**kwargs)
    assert refused.value.argument == argument


def test_backoff_doubles_from_the_first_wait_up_to_the_cap() -> None:
    settings = RecoverySettings(
        cleanup_backoff=timedelta(seconds=2), cleanup_max_backoff=timedelta(seconds=5)
    )
    assert [settings.backoff(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 5.0, 5.0]


def test_scope_covers_only_the_tenant_and_provider_asked_for() -> None:
    assert RecoverySettings().covers("acme", "kubernetes")
    assert not RecoverySettings(tenant_id="acme").covers("acme-2", "ecs")
    assert not RecoverySettings(provider="ecs").covers("acme", "kubernetes")


# -- backends --------------------------------------------------------------------------------------


def test_rows_group_by_provider_connection_and_locator() -> None:
    a = entry(0, locator={"region": "us-east-1", "cluster": "c"})
    b = entry(1, locator={"cluster": "c", "region": "us-east-1"})  # same place, other key order
    c = entry(2, locator={"region": "us-east-1", "cluster": "other"})
    d = entry(3, provider="kubernetes", locator={"namespace": "team-a"})
    groups = group_by_backend([a, b, c, d], lambda e: e)
    assert [[e.unit_index for e in rows] for rows in groups.values()] == [[0, 1], [2], [3]]


def test_backend_config_rebuilds_the_hook_arguments_from_the_ledger() -> None:
    ecs = BackendKey.of(entry())
    assert backend_config(ecs) == {"aws_conn_id": "aws_default", "region_name": "us-east-1", "cluster": "c"}
    kube = BackendKey("kubernetes", None, (("namespace", "team-a"),))
    assert backend_config(kube) == {"kubernetes_conn_id": "kubernetes_default", "namespace": "team-a"}
    with pytest.raises(ComputeConfigError):
        backend_config(BackendKey("nomad", None, ()))
    with pytest.raises(ComputeConfigError):
        backend_config(BackendKey("ecs", None, (("region", "us-east-1"),)))


# -- ledger moves ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "phase", "extra", "expected"),
    [
        (R.LAUNCHED, UnitPhase.RUNNING, {}, R.RUNNING),
        (R.RUNNING, UnitPhase.RUNNING, {}, None),
        (R.RUNNING, UnitPhase.SUCCEEDED, {}, R.SUCCEEDED),
        (R.RUNNING, UnitPhase.FAILED, {"error": error()}, R.FAILED),
        (R.RUNNING, UnitPhase.VANISHED, {}, R.FAILED),
        (R.LAUNCHED, UnitPhase.PENDING, {}, None),
        (R.STOPPING, UnitPhase.FAILED, {}, R.STOPPED),
        (R.STOPPING, UnitPhase.VANISHED, {}, R.STOPPED),
        (R.STOPPING, UnitPhase.RUNNING, {}, None),
        (R.PENDING_CLEANUP, UnitPhase.SUCCEEDED, {}, None),  # cleanup's business
        (R.SUCCEEDED, UnitPhase.VANISHED, {}, None),
    ],
)
def test_ledger_moves_follow_what_the_provider_says(
    row: ResourceStatus, phase: UnitPhase, extra: dict[str, Any], expected: ResourceStatus | None
) -> None:
    e = entry(status=row)
    move = ledger_move(e, status(phase, e, **extra), now=NOW, stuck_grace_period=GRACE)
    assert (move.status if move else None) == expected


def test_a_vanished_unit_fails_with_the_lifecycles_own_error() -> None:
    move = ledger_move(entry(), status(UnitPhase.VANISHED), now=NOW, stuck_grace_period=GRACE)
    assert move is not None
    assert move.error is not None
    assert (move.error.code, move.error.root_cause.reason) == (ErrorCode.CANCELLED, "vanished")


def test_a_unit_stuck_pending_past_the_grace_period_is_handed_to_cleanup() -> None:
    pull = error(ErrorCode.IMAGE_PULL_FAILED, "back-off pulling image")
    stuck_long = status(UnitPhase.PENDING, error=pull, stuck_since=(NOW - GRACE * 2).isoformat())
    stuck_briefly = status(UnitPhase.PENDING, error=pull, stuck_since=(NOW - GRACE / 2).isoformat())
    move = ledger_move(entry(), stuck_long, now=NOW, stuck_grace_period=GRACE)
    assert move is not None
    assert (move.status, move.error) == (R.PENDING_CLEANUP, pull)
    assert ledger_move(entry(), stuck_briefly, now=NOW, stuck_grace_period=GRACE) is None


# -- eventual outcomes -----------------------------------------------------------------------------


def test_every_unit_succeeded_is_success() -> None:
    assert eventual_outcome([entry(0, R.SUCCEEDED), entry(1, R.SUCCEEDED, resource_id="res-1")]) is None


def test_a_unit_still_alive_leaves_the_outcome_open() -> None:
    assert eventual_outcome([entry(0, R.SUCCEEDED), entry(1, R.RUNNING)]) is UNSETTLED
    assert eventual_outcome([entry(0, R.LAUNCHED)]) is UNSETTLED


def test_one_unit_failing_gives_its_own_error() -> None:
    oom = error(ErrorCode.OUT_OF_MEMORY, "OOMKilled")
    outcome = eventual_outcome([entry(0, R.FAILED, error=oom)])
    assert outcome is not UNSETTLED
    assert outcome is not None
    assert (outcome.code, outcome.message) == (ErrorCode.OUT_OF_MEMORY, "OOMKilled")


def test_some_units_failing_is_a_partial_failure_listing_every_unit() -> None:
    outcome = eventual_outcome(
        [entry(0, R.SUCCEEDED), entry(1, R.FAILED, resource_id="res-1", error=error())]
    )
    assert outcome is not UNSETTLED
    assert outcome is not None
    assert outcome.code is ErrorCode.PARTIAL_FAILURE
    assert outcome.units is not None
    assert ([u.index for u in outcome.units.succeeded], [u.index for u in outcome.units.failed]) == ([0], [1])


def test_only_the_newest_generation_of_a_unit_counts() -> None:
    relaunched = [
        entry(0, R.FAILED, error=error()),
        entry(0, R.SUCCEEDED, generation=2, resource_id="res-0b"),
    ]
    assert eventual_outcome(relaunched) is None


def test_units_stopped_by_the_lifecycle_did_not_finish_their_work() -> None:
    outcome = eventual_outcome([entry(0, R.CLEANED)])
    assert outcome is not UNSETTLED
    assert outcome is not None
    assert (outcome.code, outcome.root_cause.reason) == (ErrorCode.CANCELLED, "cleaned")


def test_nothing_launched_is_recorded_as_never_run() -> None:
    for rows in ([], [entry(0, R.INTENDED, resource_id=None)]):
        outcome = eventual_outcome(rows)
        assert outcome is not UNSETTLED
        assert outcome is not None
        assert outcome.root_cause.reason == "never_launched"


# -- the tenant after an eventual outcome ----------------------------------------------------------


def test_eventual_success_makes_the_tenant_ready_where_the_try_left_it() -> None:
    decision = tenant_after_eventual(tenant(), operation(), None)
    assert decision.action == "ready"
    assert "OPERATION_TIMEOUT" in decision.reason


@pytest.mark.parametrize(
    "moved",
    [
        tenant(held=True),  # held for a retry
        tenant(TenantStatus.OPERATION_IN_PROGRESS, held=True, execution_id="later"),
        tenant(TenantStatus.READY),
        tenant(attempt=2),  # a later try of the same execution
        tenant(execution_id="someone-else"),
    ],
    ids=["held", "other-in-progress", "ready", "later-attempt", "other-execution"],
)
def test_a_later_move_of_the_tenant_is_never_overwritten(moved: Tenant) -> None:
    assert tenant_after_eventual(moved, operation(), None).action == "unchanged"


def test_an_eventual_failure_holds_the_tenant_only_when_it_needs_a_human_and_no_try_is_coming() -> None:
    for code in (ErrorCode.OUT_OF_MEMORY, ErrorCode.PERMISSION_DENIED):  # non-retriable, manual
        decision = tenant_after_eventual(tenant(), operation(), error(code))
        assert decision.action == "investigate"
        # The code leads the reason (it becomes the tenant's note; tables cut long cells).
        assert decision.reason.startswith(f"{code.value} (")
        assert "OPERATION_TIMEOUT" in decision.reason
        # Airflow scheduled a retry: it reconciles the same units and finishes by the same rule.
        assert tenant_after_eventual(tenant(held=True), operation(), error(code)).action == "unchanged"
    # Retriable: a later try may fix it; the tenant stays retry_pending, free.
    interrupted = error(ErrorCode.INFRASTRUCTURE_INTERRUPTED)
    assert tenant_after_eventual(tenant(), operation(), interrupted).action == "unchanged"


def test_a_try_whose_work_never_ran_leaves_the_tenant_where_its_own_error_put_it() -> None:
    nothing = eventual_outcome([])
    assert nothing is not UNSETTLED
    assert nothing is not None
    assert nothing.classification.value == "non_retriable"  # CANCELLED, yet no work to blame
    assert tenant_after_eventual(tenant(), operation(), nothing).action == "unchanged"


# -- stale holds -----------------------------------------------------------------------------------


def test_a_recently_active_hold_waits() -> None:
    held = tenant(TenantStatus.OPERATION_IN_PROGRESS, held=True)
    decision = stale_hold(
        held,
        operation(finished=False),
        [entry(0, R.SUCCEEDED)],
        idle=timedelta(minutes=10),
        stale_after=timedelta(hours=1),
    )
    assert decision.action == "wait"


def test_a_stale_hold_whose_units_still_run_is_flagged_not_broken() -> None:
    held = tenant(TenantStatus.OPERATION_IN_PROGRESS, held=True)
    decision = stale_hold(
        held, operation(finished=False), [entry(0, R.RUNNING)], idle=timedelta(hours=2), stale_after=GRACE
    )
    assert decision.action == "flag"


def test_an_unfinished_try_is_finished_with_what_its_units_did() -> None:
    held = tenant(TenantStatus.OPERATION_IN_PROGRESS, held=True)
    ok = stale_hold(
        held, operation(finished=False), [entry(0, R.SUCCEEDED)], idle=timedelta(hours=2), stale_after=GRACE
    )
    assert (ok.action, ok.outcome) == ("finish", None)
    failed = stale_hold(
        held,
        operation(finished=False),
        [entry(0, R.FAILED, error=error())],
        idle=timedelta(hours=2),
        stale_after=GRACE,
    )
    assert failed.action == "finish"
    assert failed.outcome is not None
    assert failed.outcome.code is ErrorCode.CONTAINER_FAILED


def test_a_try_that_recorded_its_outcome_is_finished_with_that_outcome() -> None:
    held = tenant(TenantStatus.OPERATION_IN_PROGRESS, held=True)
    recorded = replace(operation(finished=False), outcome_at=NOW - timedelta(hours=2), error=error())
    decision = stale_hold(held, recorded, [entry(0, R.SUCCEEDED)], idle=timedelta(hours=2), stale_after=GRACE)
    assert decision.action == "finish"
    assert decision.outcome is not None
    assert decision.outcome.code is ErrorCode.CONTAINER_FAILED


def test_a_hold_for_a_retry_that_never_came_goes_where_its_error_leads() -> None:
    held = tenant(held=True)
    units_ok = stale_hold(
        held, operation(), [entry(0, R.SUCCEEDED)], idle=timedelta(hours=2), stale_after=GRACE
    )
    assert (units_ok.action, units_ok.outcome) == ("release", None)
    interrupted = error(ErrorCode.INFRASTRUCTURE_INTERRUPTED, "spot")
    retriable = stale_hold(
        held, operation(), [entry(0, R.FAILED, error=interrupted)], idle=timedelta(hours=2), stale_after=GRACE
    )
    assert retriable.action == "release"
    assert retriable.outcome is not None
    assert retriable.outcome.code is ErrorCode.INFRASTRUCTURE_INTERRUPTED
    manual = stale_hold(
        held,
        operation(err=error(ErrorCode.PERMISSION_DENIED, "denied")),
        [entry(0, R.FAILED, error=error())],
        idle=timedelta(hours=2),
        stale_after=GRACE,
    )
    assert manual.action == "investigate"
    assert manual.outcome is not None
    assert manual.outcome.code is ErrorCode.PERMISSION_DENIED


def test_a_timed_out_try_whose_retry_never_came_ends_with_what_its_work_became() -> None:
    # The timeout (retriable) only meant the try stopped watching; its unit failed for good.
    decision = stale_hold(
        tenant(held=True),
        operation(),
        [entry(0, R.FAILED, error=error())],
        idle=timedelta(hours=2),
        stale_after=GRACE,
    )
    assert decision.action == "investigate"
    assert decision.outcome is not None
    assert decision.outcome.code is ErrorCode.CONTAINER_FAILED
    assert decision.reason.startswith("CONTAINER_FAILED (non_retriable)")


# -- the report ------------------------------------------------------------------------------------


def _report(dry_run: bool = False) -> RecoveryReport:
    report = RecoveryReport(scope={"tenant_id": None, "provider": None, "dry_run": dry_run})
    report.add(Item("operation", Action.OUTCOME_RECORDED, "acme", "ex", attempt=1, result="succeeded"))
    report.add(Item("resource", Action.CLEANED, "acme", "ex", unit_index=0, resource_id="r0"))
    stop_error = error(ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE, "503")
    report.add(
        Item(
            "resource", Action.CLEANUP_FAILED, "acme", "ex", unit_index=1, resource_id="r1", error=stop_error
        )
    )
    report.flag("acme", "resource r1 stays pending_cleanup")
    report.pending_after = 1
    return report


def test_the_summary_counts_what_the_issue_asks_for() -> None:
    data = _report().to_json()
    assert data["summary"] == {
        "operations_reconciled": 1,
        "operations_unsettled": 0,
        "resources_cleaned": 1,
        "resources_pending": 1,
        "tenants_released": 0,
        "tenants_needing_investigation": 1,
    }
    assert data["tenants_needing_investigation"] == {"acme": "resource r1 stays pending_cleanup"}
    assert data["items"][2]["error_code"] == "PROVIDER_TEMPORARILY_UNAVAILABLE"


def test_a_resource_left_pending_is_cleanup_failed_unless_it_was_a_dry_run() -> None:
    failure = _report().cleanup_error()
    assert failure is not None
    assert (failure.code, failure.classification.value) == (
        ErrorCode.CLEANUP_FAILED,
        "requires_manual_intervention",
    )
    assert failure.cleanup is not None
    assert failure.cleanup.resources == ["r1"]
    assert failure.root_cause.provider is not None
    assert _report(dry_run=True).cleanup_error() is None


# -- the reconciler on a real store, where no provider call is due ----------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlTenantStateStore]:
    s = SqlTenantStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


def _no_provider(key: BackendKey) -> Any:
    raise AssertionError(f"no provider call expected, got one for {key}")


def test_a_live_try_and_a_fresh_hold_are_left_alone(store: SqlTenantStateStore) -> None:
    store.begin_operation("acme", "ex-1", "provision", "ecs", 1)
    store.record_intent(
        "acme",
        "ex-1",
        provider="ecs",
        conn_id=None,
        locator={"region": "us-east-1", "cluster": "c"},
        unit_index=0,
        generation=1,
        idempotency_token="t",
    )
    report = Reconciler(store, backend_factory=_no_provider).run(RecoverySettings())
    assert report.items == []
    assert store.get_tenant("acme").status is TenantStatus.OPERATION_IN_PROGRESS  # type: ignore[union-attr]


def test_an_abandoned_try_that_never_launched_gets_an_outcome_without_a_provider_call(
    store: SqlTenantStateStore,
) -> None:
    store.begin_operation("acme", "ex-1", "provision", "ecs", 1)
    store.release("acme", "the worker host is gone", force=True)  # the try is abandoned
    report = Reconciler(store, backend_factory=_no_provider).run(RecoverySettings())
    [op] = store.list_operations(tenant_id="acme")
    assert (op.status, op.eventual_status) == (OperationStatus.ABANDONED, OperationStatus.FAILED)
    assert op.eventual_error is not None
    assert op.eventual_error.root_cause.reason == "never_launched"
    assert report.summary()["operations_reconciled"] == 1


# -- the store additions the reconciler relies on ---------------------------------------------------


def test_release_with_an_expected_version_refuses_a_tenant_that_moved_on(store: SqlTenantStateStore) -> None:
    store.begin_operation("acme", "ex-1", "provision", "ecs", 1)
    timeout = error(ErrorCode.OPERATION_TIMEOUT, "timed out")
    seen = store.finish_operation("acme", "ex-1", timeout, will_retry=False)
    store.begin_operation("acme", "ex-2", "provision", "ecs", 1)  # someone else takes the tenant
    with pytest.raises(IllegalTransitionError, match="moved on"):
        store.release("acme", "late reconciler", force=True, expected_version=seen.version)
    tenant_now = store.get_tenant("acme")
    assert tenant_now is not None
    assert (tenant_now.status, tenant_now.execution_id) == (TenantStatus.OPERATION_IN_PROGRESS, "ex-2")
    released = store.release("acme", "the worker died", force=True, expected_version=tenant_now.version)
    assert released.status is TenantStatus.READY


def test_finish_with_a_note_records_it_in_the_history(store: SqlTenantStateStore) -> None:
    store.begin_operation("acme", "ex-1", "provision", "ecs", 1)
    store.finish_operation("acme", "ex-1", None, will_retry=False, note="finished by maintenance")
    move = store.transitions("acme")[0]
    assert (move.event, move.to_status, move.note) == (
        TenantEvent.FINISH,
        TenantStatus.READY,
        "finished by maintenance",
    )


# -- the operator and the DAG ----------------------------------------------------------------------


def test_the_operator_refuses_a_static_mistake_at_parse_and_checks_templates_when_rendered() -> None:
    from airflow_compute_provider.operators.cleanup import ComputeReconcileOperator

    with pytest.raises(ComputeConfigError) as refused:
        ComputeReconcileOperator(task_id="r", provider="azure")
    assert refused.value.argument == "provider"
    templated = ComputeReconcileOperator(task_id="r", provider="{{ params.provider }}", dry_run="{{ x }}")
    templated.provider, templated.dry_run = "None", "true"  # as rendered
    assert (templated.settings().provider, templated.settings().dry_run) == (None, True)
    templated.dry_run = "maybe"
    with pytest.raises(ComputeConfigError, match="dry_run"):
        templated.settings()


def test_create_maintenance_dag_builds_a_scheduled_single_task_dag() -> None:
    from airflow_compute_provider.dags import create_maintenance_dag

    dag = create_maintenance_dag("maint", tenant_id="acme", dry_run=True, state_conn_id="state")
    assert dag.schedule == timedelta(minutes=10)
    assert (dag.max_active_runs, dag.catchup) == (1, False)
    [task] = dag.tasks
    assert (task.task_id, task.state_conn_id, task.retries) == ("reconcile", "state", 0)
    assert (dag.params["tenant_id"], dag.params["provider"], dag.params["dry_run"]) == ("acme", None, True)
    with pytest.raises(ComputeConfigError):
        create_maintenance_dag("bad", cleanup_attempts=0)


def test_the_repositorys_maintenance_dag_imports_cleanly_in_a_dagbag() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "compute_maintenance.py"))
    assert bag.import_errors == {}
    dag = bag.dags["compute_maintenance"]
    assert dag.schedule == timedelta(minutes=10)
    assert [t.task_id for t in dag.tasks] == ["reconcile"]
