"""Recovery on ECS end to end: the compute operator leaves loose ends through real Airflow
(``dag.test()``), and the maintenance DAG (``create_maintenance_dag``, and the repository's
``dags/compute_maintenance.py``) follows them to the end against the moto ECS endpoint, with the
fault proxy on the wire.

moto stands in for the AWS cloud itself, which cannot run here; the scripted task outcomes
(``tests/harness/ecs_script.py``) play what ECS would report. Each test has a tenant state
store of its own (a SQLite file behind ``AIRFLOW_CONN_COMPUTE_STATE_DEFAULT``), so an
unfiltered maintenance run sees only what the test made.
"""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_compute_provider.errors import ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.hooks import ecs as ecs_hook
from airflow_compute_provider.hooks.base import (
    ComputeBackend,
    ExecutionRef,
    LaunchPlan,
    Unit,
    UnitLaunch,
    UnitStatus,
)
from airflow_compute_provider.hooks.ecs import EcsComputeHook
from airflow_compute_provider.hooks.ecs_retry import STOP_RETRY
from airflow_compute_provider.hooks.ecs_tags import TENANT_ID_TAG
from airflow_compute_provider.plugins.summary import health_summary
from airflow_compute_provider.recovery import Reconciler, RecoverySettings
from airflow_compute_provider.recovery.backends import BackendKey, build_backend
from airflow_compute_provider.state import ResourceUpdate, SqlTenantStateStore
from airflow_compute_provider.state.cli import main as state_cli
from airflow_compute_provider.state.status import (
    OperationStatus,
    ResourceStatus,
    TenantEvent,
    TenantStatus,
)
from tests.harness.ecs import CLUSTER_NAME, FAKE_CREDENTIALS, REGION, TASK_FAMILY
from tests.harness.ecs_script import OOM_KILLED, RUNS_FOREVER, SPOT_INTERRUPTED, SUCCEEDED, exited
from tests.harness.proxy_faults import ecs_error, ecs_unavailable
from tests.integration.ecs_dags import Code, ecs_dag
from tests.unit.state.support import state_url_fixture

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
MAINTENANCE_FILE = REPO / "dags" / "compute_maintenance.py"

_MAINTENANCE = """\
from datetime import timedelta

from airflow_compute_provider.dags import create_maintenance_dag

dag = create_maintenance_dag({dag_id!r}, schedule=None, {arguments})
"""


def _aws_connection(endpoint_url: str) -> str:
    # botocore's own retries off, so a fault costs our bounded retries only (fast tests).
    return json.dumps(
        {
            "conn_type": "aws",
            "login": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "password": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "extra": {
                "endpoint_url": endpoint_url,
                "region_name": REGION,
                "config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}},
            },
        }
    )


def _through_proxy(ecs_env: Any, fault_proxy: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    proxy = fault_proxy(ecs_env.endpoint_url)
    ecs_env.route_through(proxy.url)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", _aws_connection(proxy.url))
    return proxy


def _run_compute(airflow_env: Any, ecs_env: Any, dag_id: str, **kwargs: Any) -> Any:
    source = ecs_dag(dag_id, network_configuration=ecs_env.network_configuration, **kwargs)
    return airflow_env.run_dag(source, dag_id)


def _maintain(airflow_env: Any, dag_id: str = "maintenance", **arguments: Any) -> Any:
    arguments.setdefault("cleanup_backoff", Code("timedelta(seconds=0.05)"))
    text = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    return airflow_env.run_dag(_MAINTENANCE.format(dag_id=dag_id, arguments=text), dag_id)


def _tasks_of(ecs_env: Any, tenant_id: str) -> list[dict[str, Any]]:
    arns: list[str] = []
    for desired in ("RUNNING", "STOPPED"):
        arns += ecs_env.ecs.list_tasks(cluster=CLUSTER_NAME, desiredStatus=desired)["taskArns"]
    if not arns:
        return []
    tasks = ecs_env.ecs.describe_tasks(cluster=CLUSTER_NAME, tasks=arns, include=["TAGS"])["tasks"]
    return [t for t in tasks if {"key": TENANT_ID_TAG, "value": tenant_id} in t.get("tags", [])]


# -- timed out, given up, finished later -----------------------------------------------------------


def test_timed_out_work_that_later_succeeds_is_recorded_and_frees_the_tenant(
    airflow_env, ecs_env, state_store
) -> None:
    ecs_env.default_script = RUNS_FOREVER
    run = _run_compute(
        airflow_env, ecs_env, "rec_timeout", tenant_id="rec-timeout", timeout=Code("timedelta(seconds=1)")
    )
    assert run.state() == "failed", "no retry: the workflow gave up"
    assert run.xcom("provision", key="compute_error")["code"] == "OPERATION_TIMEOUT"
    assert state_store.get_tenant("rec-timeout").status is TenantStatus.RETRY_PENDING
    [task] = _tasks_of(ecs_env, "rec-timeout")
    assert task["lastStatus"] == "RUNNING", "a timeout leaves the work running"

    # While the work runs there is nothing to record yet.
    early = airflow_env.run_dag(MAINTENANCE_FILE, "compute_maintenance")
    assert early.state() == "success"
    summary = early.xcom("reconcile")["summary"]
    assert (summary["operations_reconciled"], summary["operations_unsettled"]) == (0, 1)
    assert state_store.list_operations(tenant_id="rec-timeout")[0].eventual_status is None

    ecs_env.stop_task(task["taskArn"], SUCCEEDED)  # the work finishes, long after the try gave up
    later = airflow_env.run_dag(MAINTENANCE_FILE, "compute_maintenance")

    assert later.state() == "success"
    report = later.xcom("reconcile")
    assert report["summary"]["operations_reconciled"] == 1
    [op] = state_store.list_operations(tenant_id="rec-timeout")
    assert (op.status, op.error_code.value) == (OperationStatus.FAILED, "OPERATION_TIMEOUT")
    assert (op.eventual_status, op.eventual_error) == (OperationStatus.SUCCEEDED, None)
    [entry] = state_store.list_resources(tenant_id="rec-timeout")
    assert (entry.status, entry.resource_id) == (ResourceStatus.SUCCEEDED, task["taskArn"])
    tenant = state_store.get_tenant("rec-timeout")
    assert tenant.status is TenantStatus.READY
    move = state_store.transitions("rec-timeout")[0]
    assert (move.from_status, move.to_status) == (TenantStatus.RETRY_PENDING, TenantStatus.READY)
    assert "eventually succeeded" in (move.note or "")
    ready = [i for i in report["items"] if i["action"] == "tenant_ready"]
    assert [i["tenant_id"] for i in ready] == ["rec-timeout"]


def test_timed_out_work_that_later_fails_for_good_holds_the_tenant_for_investigation(
    airflow_env, ecs_env, state_store
) -> None:
    ecs_env.default_script = RUNS_FOREVER
    for tenant_id in ("rec-oom", "rec-spot"):
        run = _run_compute(
            airflow_env,
            ecs_env,
            tenant_id.replace("-", "_"),
            tenant_id=tenant_id,
            timeout=Code("timedelta(seconds=1)"),
        )
        assert run.state() == "failed", "no retry: the workflow gave up"
        assert state_store.get_tenant(tenant_id).status is TenantStatus.RETRY_PENDING
    [oom_task] = _tasks_of(ecs_env, "rec-oom")
    [spot_task] = _tasks_of(ecs_env, "rec-spot")
    # Long after the tries gave up: one task is killed for memory (non-retriable, no try is
    # coming), the other loses its Spot host (retriable: a later try may well succeed).
    ecs_env.stop_task(oom_task["taskArn"], OOM_KILLED)
    ecs_env.stop_task(spot_task["taskArn"], SPOT_INTERRUPTED)

    later = airflow_env.run_dag(MAINTENANCE_FILE, "compute_maintenance")

    assert later.state() == "success"
    report = later.xcom("reconcile")
    assert report["summary"]["operations_reconciled"] == 2
    tenant = state_store.get_tenant("rec-oom")
    assert (tenant.status, tenant.held) == (TenantStatus.NEEDS_INVESTIGATION, False)
    move = state_store.transitions("rec-oom")[0]
    assert (move.event, move.from_status, move.to_status) == (
        TenantEvent.FINISH,
        TenantStatus.RETRY_PENDING,
        TenantStatus.NEEDS_INVESTIGATION,
    )
    assert (move.note or "").startswith("compute maintenance: OUT_OF_MEMORY (non_retriable)")
    [op] = state_store.list_operations(tenant_id="rec-oom")
    assert op.error_code.value == "OPERATION_TIMEOUT"  # the try itself only timed out
    assert (op.eventual_status, op.eventual_error.code) == (OperationStatus.FAILED, ErrorCode.OUT_OF_MEMORY)
    [held] = [i for i in report["items"] if i["action"] == "tenant_held"]
    assert (held["tenant_id"], held["result"], held["error_code"]) == (
        "rec-oom",
        "needs_investigation",
        "OUT_OF_MEMORY",
    )
    assert "OUT_OF_MEMORY" in report["tenants_needing_investigation"]["rec-oom"]
    # The retriable end changes nothing: the tenant stays retry_pending, free for a later try.
    spot = state_store.get_tenant("rec-spot")
    assert (spot.status, spot.held) == (TenantStatus.RETRY_PENDING, False)
    [spot_op] = state_store.list_operations(tenant_id="rec-spot")
    assert spot_op.eventual_error.code is ErrorCode.INFRASTRUCTURE_INTERRUPTED
    assert "rec-spot" not in report["tenants_needing_investigation"]

    # What the Compute Health page and the state command line show.
    page = health_summary(state_store, now=datetime.now(UTC), window=timedelta(hours=1))
    by_tenant = {t["tenant_id"]: t for t in page["tenants"]}
    assert by_tenant["rec-oom"]["status"] == "needs_investigation"
    assert (by_tenant["rec-oom"]["last_error"]["code"], by_tenant["rec-oom"]["last_error"]["attempt"]) == (
        "OUT_OF_MEMORY",
        1,
    )
    assert page["counts"]["needs_investigation"] == 1
    out, err = io.StringIO(), io.StringIO()
    assert state_cli(["tenants", "--status", "needs_investigation"], out=out, err=err) == 0
    [row] = out.getvalue().splitlines()[1:]
    assert row.startswith("rec-oom")
    assert "OUT_OF_MEMORY" in row  # the note the move left, code first
    # Held like any tenant a final failure left: the next operation is refused until released.
    with pytest.raises(ComputeOperationError) as refused:
        state_store.begin_operation("rec-oom", "maintenance:after:1", "provision", "ecs", 1)
    assert refused.value.error.code is ErrorCode.TENANT_STATE_CONFLICT


# -- a new try racing the maintenance run ----------------------------------------------------------

state_url = state_url_fixture()  # this test on SQLite and on PostgreSQL


class _NewTryWhileAsked:
    """The real ECS backend; while a maintenance run's DescribeTasks is answered, a new
    execution begins on the tenant through a store connection of its own (another worker)."""

    def __init__(self, backend: ComputeBackend, url: str, execution: ExecutionRef) -> None:
        self._backend = backend
        self._url = url
        self._execution = execution

    def describe(self, units: list[Unit]) -> list[UnitStatus]:
        statuses = self._backend.describe(units)
        worker = SqlTenantStateStore(self._url)
        try:
            worker.begin_operation(
                self._execution.tenant_id, self._execution.execution_id, "provision", "ecs", 1
            )
        finally:
            worker.close()
        return statuses

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def test_a_new_try_that_takes_the_tenant_during_a_run_is_never_overwritten(
    airflow_env, ecs_env, state_url: str
) -> None:
    store = SqlTenantStateStore(state_url)
    try:
        ecs_env.default_script = RUNS_FOREVER
        hook = EcsComputeHook(cluster=CLUSTER_NAME)
        first = ExecutionRef("rec-race", "maintenance:race:1")
        [unit] = hook.launch(_plan(ecs_env, first, [0])).launched
        store.begin_operation(first.tenant_id, first.execution_id, "provision", "ecs", 1)
        _ledger(store, hook, first, {0: unit.resource_id})
        timeout = ComputeError(code=ErrorCode.OPERATION_TIMEOUT, message="did not settle in time")
        store.finish_operation(first.tenant_id, first.execution_id, timeout, will_retry=False)
        ecs_env.stop_task(unit.resource_id, OOM_KILLED)  # a human would be needed...
        second = ExecutionRef("rec-race", "maintenance:race:2")

        def racing(key: BackendKey) -> Any:
            return _NewTryWhileAsked(build_backend(key), state_url, second)

        report = Reconciler(store, backend_factory=racing).run(RecoverySettings(tenant_id="rec-race"))

        # ...but a new try took the tenant meanwhile: the run's hold is refused, the outcome kept.
        tenant = store.get_tenant("rec-race")
        assert (tenant.status, tenant.execution_id, tenant.held) == (
            TenantStatus.OPERATION_IN_PROGRESS,
            second.execution_id,
            True,
        )
        assert [m.event for m in store.transitions("rec-race")] == [
            TenantEvent.BEGIN,
            TenantEvent.FINISH,
            TenantEvent.BEGIN,
        ]
        first_op = next(o for o in store.operations("rec-race") if o.execution_id == first.execution_id)
        assert (first_op.eventual_status, first_op.eventual_error.code) == (
            OperationStatus.FAILED,
            ErrorCode.OUT_OF_MEMORY,
        )
        [unchanged] = [i for i in report.items if i.kind == "tenant"]
        assert unchanged.action.value == "tenant_unchanged"
        assert "moved on" in unchanged.detail
        assert report.summary()["operations_reconciled"] == 1
    finally:
        store.close()


# -- a rollback whose stop failed -------------------------------------------------------------------


def test_a_rollback_whose_stop_failed_is_cleaned_by_the_next_maintenance_run(
    airflow_env, ecs_env, fault_proxy, state_store, monkeypatch
) -> None:
    proxy = _through_proxy(ecs_env, fault_proxy, monkeypatch)
    # The hook's own StopTask retries, shortened (this test is about what outlasts them; the
    # dag.test() runs are in this process): every stop fails on the wire.
    monkeypatch.setattr(
        ecs_hook, "STOP_RETRY", dataclasses.replace(STOP_RETRY, initial_wait=0.05, max_wait=0.2)
    )
    ecs_env.default_script = RUNS_FOREVER
    ecs_env.script_next_run_task(failures=[{"reason": "RESOURCE:MEMORY"}])
    proxy.add_rule(ecs_unavailable(), operation="StopTask")

    run = _run_compute(airflow_env, ecs_env, "rec_rollback", tenant_id="rec-rollback", count=3)

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["cleanup"]["action"]) == ("CLEANUP_FAILED", "marked_for_cleanup")
    pending = state_store.list_resources(tenant_id="rec-rollback", status=ResourceStatus.PENDING_CLEANUP)
    assert sorted(e.resource_id for e in pending) == sorted(error["cleanup"]["resources"])
    assert len(pending) == 2
    assert {e.last_error.code.value for e in pending} == {"PROVIDER_TEMPORARILY_UNAVAILABLE"}
    assert [t["desiredStatus"] for t in _tasks_of(ecs_env, "rec-rollback")] == ["RUNNING", "RUNNING"]

    # StopTask still fails: each resource gets its attempts, then stays pending with its error.
    failing = _maintain(airflow_env, "rec_rollback_maint_1", cleanup_attempts=2)
    assert failing.state() == "failed"
    assert failing.xcom("reconcile", key="compute_error")["code"] == "CLEANUP_FAILED"
    report = failing.xcom("reconcile")
    assert report["summary"]["resources_pending"] == 2
    assert report["summary"]["resources_cleaned"] == 0
    assert "rec-rollback" in report["tenants_needing_investigation"]
    tried = [i for i in report["items"] if i["action"] == "cleanup_failed"]
    assert len(tried) == 2
    assert all("after 2 attempt(s)" in i["detail"] for i in tried)
    assert {i["error_code"] for i in tried} == {"PROVIDER_TEMPORARILY_UNAVAILABLE"}
    still = state_store.list_resources(tenant_id="rec-rollback", status=ResourceStatus.PENDING_CLEANUP)
    assert len(still) == 2
    assert [t["desiredStatus"] for t in _tasks_of(ecs_env, "rec-rollback")] == ["RUNNING", "RUNNING"]

    proxy.reset()  # the endpoint recovers
    cleaning = _maintain(airflow_env, "rec_rollback_maint_2")

    assert cleaning.state() == "success"
    summary = cleaning.xcom("reconcile")["summary"]
    assert (summary["resources_cleaned"], summary["resources_pending"]) == (2, 0)
    assert proxy.counts["StopTask"] == 2
    ledger = state_store.list_resources(tenant_id="rec-rollback")
    # The two stopped units, and the refused one: the reconciler looked it up on the provider
    # (a refusal may have started its unit), found nothing, and closed its row with its error.
    assert sorted(e.status.value for e in ledger) == ["cleaned", "cleaned", "cleaned"]
    [refused] = [e for e in ledger if not e.resource_id]
    assert refused.last_error is not None
    assert refused.last_error.code.value == "INSUFFICIENT_CAPACITY"
    tasks = _tasks_of(ecs_env, "rec-rollback")
    assert len(tasks) == 2
    assert {t["desiredStatus"] for t in tasks} == {"STOPPED"}
    # A human still looks at a CLEANUP_FAILED tenant: maintenance never releases it.
    assert state_store.get_tenant("rec-rollback").status is TenantStatus.NEEDS_INVESTIGATION


def test_a_retriable_stop_failure_is_retried_within_one_run(
    airflow_env, ecs_env, fault_proxy, state_store, monkeypatch
) -> None:
    proxy = _through_proxy(ecs_env, fault_proxy, monkeypatch)
    ecs_env.default_script = RUNS_FOREVER
    hook = EcsComputeHook(cluster=CLUSTER_NAME)
    execution = ExecutionRef("rec-retry", "maintenance:retry:1")
    [unit] = hook.launch(_plan(ecs_env, execution, [0])).launched
    _ledger_left_pending(state_store, hook, execution, {0: unit.resource_id})
    # A retriable error the hook itself does not retry (it retries only transient ones): the
    # first cleanup attempt fails, the second, after the backoff, goes through.
    proxy.add_rule(
        ecs_error("ConflictException", "Too many concurrent attempts to stop this task"),
        operation="StopTask",
        times=1,
    )

    run = _maintain(airflow_env, "rec_retry_maint", cleanup_attempts=3)

    assert run.state() == "success"
    [item] = [i for i in run.xcom("reconcile")["items"] if i["kind"] == "resource"]
    assert (item["action"], item["result"]) == ("cleaned", "cleaned")
    assert "after 2 attempt(s)" in item["detail"]
    assert proxy.counts["StopTask"] == 2
    assert ecs_env.describe_task(unit.resource_id)["desiredStatus"] == "STOPPED"


def test_a_non_retriable_stop_failure_is_not_retried(
    airflow_env, ecs_env, fault_proxy, state_store, monkeypatch
) -> None:
    proxy = _through_proxy(ecs_env, fault_proxy, monkeypatch)
    ecs_env.default_script = RUNS_FOREVER
    hook = EcsComputeHook(cluster=CLUSTER_NAME)
    execution = ExecutionRef("rec-denied", "maintenance:denied:1")
    [unit] = hook.launch(_plan(ecs_env, execution, [0])).launched
    _ledger_left_pending(state_store, hook, execution, {0: unit.resource_id})
    proxy.add_rule(
        ecs_error("AccessDeniedException", "User is not authorized to perform: ecs:StopTask"),
        operation="StopTask",
    )

    run = _maintain(airflow_env, "rec_denied_maint", cleanup_attempts=3)

    assert run.state() == "failed"
    assert proxy.counts["StopTask"] == 1
    [entry] = state_store.list_resources(tenant_id="rec-denied")
    assert entry.status is ResourceStatus.PENDING_CLEANUP
    assert entry.last_error.code.value == "PERMISSION_DENIED"
    [item] = [i for i in run.xcom("reconcile")["items"] if i["kind"] == "resource"]
    assert "not retriable" in item["detail"]


# -- never a decoy ----------------------------------------------------------------------------------


def test_cleanup_never_touches_a_resource_whose_tags_name_another_tenant(
    airflow_env, ecs_env, state_store
) -> None:
    ecs_env.default_script = RUNS_FOREVER
    hook = EcsComputeHook(cluster=CLUSTER_NAME)
    ours = ExecutionRef("rec-decoy", "maintenance:decoy:1")
    # Another tenant with a similar name, the same execution id and the same unit numbers.
    theirs = ExecutionRef("rec-decoy-2", "maintenance:decoy:1")
    [own_unit] = hook.launch(_plan(ecs_env, ours, [0])).launched
    [decoy] = hook.launch(_plan(ecs_env, theirs, [1])).launched
    # The ledger says unit 1 of our execution is the decoy's task (a wrong row, as a bug or a
    # hand edit could leave it): cleanup must refuse it.
    _ledger_left_pending(state_store, hook, ours, {0: own_unit.resource_id, 1: decoy.resource_id})

    run = _maintain(airflow_env, "rec_decoy_maint")

    assert run.state() == "failed"
    error = run.xcom("reconcile", key="compute_error")
    assert error["code"] == "CLEANUP_FAILED"
    assert error["cleanup"]["resources"] == [decoy.resource_id]
    by_unit = {e.unit_index: e for e in state_store.list_resources(tenant_id="rec-decoy")}
    assert by_unit[0].status is ResourceStatus.CLEANED
    assert by_unit[1].status is ResourceStatus.PENDING_CLEANUP
    assert by_unit[1].last_error.root_cause.reason == "identity_mismatch"
    assert ecs_env.describe_task(own_unit.resource_id)["desiredStatus"] == "STOPPED"
    decoy_task = ecs_env.describe_task(decoy.resource_id)
    assert (decoy_task["desiredStatus"], decoy_task["lastStatus"]) == ("RUNNING", "RUNNING")
    [refused] = [i for i in run.xcom("reconcile")["items"] if i["action"] == "refused"]
    assert refused["resource_id"] == decoy.resource_id
    assert "does not carry the identity" in refused["detail"]


def test_a_dry_run_reports_and_changes_nothing(airflow_env, ecs_env, state_store) -> None:
    ecs_env.default_script = RUNS_FOREVER
    hook = EcsComputeHook(cluster=CLUSTER_NAME)
    execution = ExecutionRef("rec-dry", "maintenance:dry:1")
    [unit] = hook.launch(_plan(ecs_env, execution, [0])).launched
    _ledger_left_pending(state_store, hook, execution, {0: unit.resource_id})
    before = (state_store.list_resources(tenant_id="rec-dry"), state_store.transitions("rec-dry"))

    source = _MAINTENANCE.format(dag_id="rec_dry_maint", arguments="")
    run = airflow_env.run_dag(source, "rec_dry_maint", conf={"dry_run": True, "tenant_id": "rec-dry"})

    assert run.state() == "success"
    report = run.xcom("reconcile")
    assert (report["dry_run"], report["tenant_id"]) == (True, "rec-dry")
    [item] = [i for i in report["items"] if i["kind"] == "resource"]
    assert (item["action"], item["applied"]) == ("cleaned", False)
    assert (state_store.list_resources(tenant_id="rec-dry"), state_store.transitions("rec-dry")) == before
    assert ecs_env.describe_task(unit.resource_id)["desiredStatus"] == "RUNNING"


# -- stale holds -----------------------------------------------------------------------------------


def test_a_stale_hold_is_released_to_its_proper_state_once_its_units_ended(
    airflow_env, ecs_env, state_store
) -> None:
    ecs_env.default_script = RUNS_FOREVER
    hook = EcsComputeHook(cluster=CLUSTER_NAME)
    execution = ExecutionRef("rec-stale", "maintenance:stale:1")
    [unit] = hook.launch(_plan(ecs_env, execution, [0])).launched
    # What a worker that died mid-wait leaves: the try begun, its unit launched, nothing finished.
    state_store.begin_operation(execution.tenant_id, execution.execution_id, "provision", "ecs", 1)
    _ledger(state_store, hook, execution, {0: unit.resource_id})

    fresh = _maintain(airflow_env, "rec_stale_maint_1")  # stale_after: 1 hour by default
    assert fresh.state() == "success"
    assert [i for i in fresh.xcom("reconcile")["items"] if i["kind"] == "tenant"] == []
    assert state_store.get_tenant("rec-stale").status is TenantStatus.OPERATION_IN_PROGRESS

    running = _maintain(airflow_env, "rec_stale_maint_2", stale_after=Code("timedelta(0)"))
    assert running.state() == "success"
    assert "units still run" in running.xcom("reconcile")["tenants_needing_investigation"]["rec-stale"]
    assert state_store.get_tenant("rec-stale").status is TenantStatus.OPERATION_IN_PROGRESS

    ecs_env.stop_task(unit.resource_id, exited(3))  # the work fails with nobody watching
    ended = _maintain(airflow_env, "rec_stale_maint_3", stale_after=Code("timedelta(0)"))

    assert ended.state() == "success"
    tenant = state_store.get_tenant("rec-stale")
    assert (tenant.status, tenant.held) == (TenantStatus.NEEDS_INVESTIGATION, False)
    move = state_store.transitions("rec-stale")[0]
    assert move.event is TenantEvent.FINISH
    assert (move.note or "").startswith("compute maintenance: ")
    [op] = state_store.list_operations(tenant_id="rec-stale")
    assert (op.status, op.error_code.value, op.will_retry) == (
        OperationStatus.FAILED,
        "CONTAINER_FAILED",
        False,
    )
    assert op.error.root_cause.exit_code == 3
    assert state_store.list_resources(tenant_id="rec-stale")[0].status is ResourceStatus.FAILED


# -- helpers ----------------------------------------------------------------------------------------


def _plan(ecs_env: Any, execution: ExecutionRef, indexes: list[int]) -> LaunchPlan:
    request = {
        "taskDefinition": TASK_FAMILY,
        "launchType": "FARGATE",
        "networkConfiguration": ecs_env.network_configuration,
    }
    return LaunchPlan(execution, [UnitLaunch(i, 1) for i in indexes], request, operation="provision")


def _ledger(
    store: SqlTenantStateStore, hook: EcsComputeHook, execution: ExecutionRef, resources: dict[int, str]
) -> None:
    """Intent and launch of each unit, as the lifecycle writes them."""
    for index in resources:
        store.record_intent(
            execution.tenant_id,
            execution.execution_id,
            provider="ecs",
            conn_id="aws_default",
            locator=hook.locator(),
            unit_index=index,
            generation=1,
            idempotency_token=UnitLaunch(index, 1).token(execution),
        )
    store.record_resources(
        execution.tenant_id,
        execution.execution_id,
        [ResourceUpdate(i, 1, ResourceStatus.LAUNCHED, resource_id=r) for i, r in resources.items()],
    )


def _ledger_left_pending(
    store: SqlTenantStateStore, hook: EcsComputeHook, execution: ExecutionRef, resources: dict[int, str]
) -> None:
    """The ledger as a rollback whose stops failed leaves it, and the try finished."""
    from airflow_compute_provider.errors import ComputeError, ErrorCode

    store.begin_operation(execution.tenant_id, execution.execution_id, "provision", "ecs", 1)
    _ledger(store, hook, execution, resources)
    failure = ComputeError(code=ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE, message="StopTask failed")
    store.record_resources(
        execution.tenant_id,
        execution.execution_id,
        [ResourceUpdate(i, 1, ResourceStatus.PENDING_CLEANUP, error=failure) for i in resources],
    )
    error = ComputeError(code=ErrorCode.CLEANUP_FAILED, message="rollback could not stop its units")
    store.finish_operation(execution.tenant_id, execution.execution_id, error, will_retry=False)


def test_a_provider_that_cannot_be_asked_leaves_everything_as_it_was(
    airflow_env, ecs_env, fault_proxy, state_store, monkeypatch
) -> None:
    proxy = _through_proxy(ecs_env, fault_proxy, monkeypatch)
    ecs_env.default_script = RUNS_FOREVER
    hook = EcsComputeHook(cluster=CLUSTER_NAME)
    execution = ExecutionRef("rec-blind", "maintenance:blind:1")
    [unit] = hook.launch(_plan(ecs_env, execution, [0])).launched
    _ledger_left_pending(state_store, hook, execution, {0: unit.resource_id})
    proxy.add_rule(
        ecs_error("AccessDeniedException", "User is not authorized to perform: ecs:DescribeTasks"),
        operation="DescribeTasks",
    )

    run = _maintain(airflow_env, "rec_blind_maint")

    assert run.state() == "failed", "a resource nobody could look at is still pending"
    [item] = [i for i in run.xcom("reconcile")["items"] if i["kind"] == "resource"]
    assert (item["action"], item["error_code"]) == ("unobservable", "PERMISSION_DENIED")
    assert proxy.counts["StopTask"] == 0
    [entry] = state_store.list_resources(tenant_id="rec-blind")
    assert entry.status is ResourceStatus.PENDING_CLEANUP
    assert ecs_env.describe_task(unit.resource_id)["desiredStatus"] == "RUNNING"


def test_a_later_operation_on_the_tenant_is_never_undone(airflow_env, ecs_env, state_store) -> None:
    ecs_env.default_script = RUNS_FOREVER
    hook = EcsComputeHook(cluster=CLUSTER_NAME)
    first = ExecutionRef("rec-later", "maintenance:later:1")
    [unit] = hook.launch(_plan(ecs_env, first, [0])).launched
    # The first execution timed out and gave up; a second one has begun on the tenant since.
    from airflow_compute_provider.errors import ComputeError, ErrorCode

    state_store.begin_operation(first.tenant_id, first.execution_id, "provision", "ecs", 1)
    _ledger(state_store, hook, first, {0: unit.resource_id})
    timeout = ComputeError(code=ErrorCode.OPERATION_TIMEOUT, message="did not settle in time")
    state_store.finish_operation(first.tenant_id, first.execution_id, timeout, will_retry=False)
    state_store.begin_operation(first.tenant_id, "maintenance:later:2", "provision", "ecs", 1)
    moves_before = len(state_store.transitions("rec-later"))
    ecs_env.stop_task(unit.resource_id, SUCCEEDED)

    run = _maintain(airflow_env, "rec_later_maint")

    assert run.state() == "success"
    first_op = next(
        op
        for op in state_store.list_operations(tenant_id="rec-later")
        if op.execution_id == first.execution_id
    )
    assert first_op.eventual_status is OperationStatus.SUCCEEDED
    tenant = state_store.get_tenant("rec-later")
    assert (tenant.status, tenant.execution_id) == (TenantStatus.OPERATION_IN_PROGRESS, "maintenance:later:2")
    assert len(state_store.transitions("rec-later")) == moves_before
