"""EcsComputeOperator end to end: real Airflow (``dag.test()``), the moto ECS endpoint, the
fault proxy on the wire, and the tenant state store on SQLite.

moto stands in for the AWS cloud itself, which cannot run here; everything between the DAG and
the ECS API (Airflow, the Amazon provider's hooks, botocore, HTTP) is real. moto ignores
``clientToken``, so the idempotency tests below prove adoption through find-before-launch.
"""

from __future__ import annotations

import dataclasses
import re
import signal
from typing import Any

import pytest

from airflow_compute_provider.hooks import ecs as ecs_hook
from airflow_compute_provider.hooks.ecs_retry import LAUNCH_RETRY
from airflow_compute_provider.hooks.ecs_tags import GENERATION_TAG, TENANT_ID_TAG, UNIT_INDEX_TAG
from airflow_compute_provider.state.config import open_state_store
from airflow_compute_provider.state.status import ResourceStatus, TenantStatus
from tests.harness.ecs import CLUSTER_NAME
from tests.harness.ecs_script import (
    OOM_KILLED,
    RUNS_FOREVER,
    SPOT_INTERRUPTED,
    TaskScript,
    exited,
    image_not_found,
)
from tests.harness.proxy_faults import Reset, ecs_error, ecs_throttle, ecs_unavailable
from tests.integration.ecs_dags import Code, ecs_dag

pytestmark = pytest.mark.airflow


def _tasks_of(ecs_env: Any, tenant_id: str) -> list[dict[str, Any]]:
    """Every task (running or stopped) that carries the tenant's tag, read from moto directly."""
    arns: list[str] = []
    for desired in ("RUNNING", "STOPPED"):
        arns += ecs_env.ecs.list_tasks(cluster=CLUSTER_NAME, desiredStatus=desired)["taskArns"]
    if not arns:
        return []
    tasks = ecs_env.ecs.describe_tasks(cluster=CLUSTER_NAME, tasks=arns, include=["TAGS"])["tasks"]
    return [t for t in tasks if {"key": TENANT_ID_TAG, "value": tenant_id} in t.get("tags", [])]


def _tag(task: dict[str, Any], key: str) -> str:
    return next(t["value"] for t in task["tags"] if t["key"] == key)


def _run(airflow_env: Any, ecs_env: Any, dag_id: str, **kwargs: Any) -> Any:
    source = ecs_dag(dag_id, network_configuration=ecs_env.network_configuration, **kwargs)
    return airflow_env.run_dag(source, dag_id)


# -- success ----------------------------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_completion_returns_every_unit_and_frees_the_tenant(airflow_env, ecs_env, deferrable) -> None:
    tenant = f"ok-{int(deferrable)}"
    run = _run(
        airflow_env, ecs_env, f"ecs_ok_{int(deferrable)}", tenant_id=tenant, count=2, deferrable=deferrable
    )

    assert run.state() == "success"
    result = run.xcom("provision")
    assert result["execution_id"] == f"ecs_ok_{int(deferrable)}:{run.run_id}:provision:-1"
    assert [(u["index"], u["status"], u["exit_code"]) for u in result["units"]] == [
        (0, "succeeded", 0),
        (1, "succeeded", 0),
    ]
    assert {u["resource_id"] for u in result["units"]} == {t["taskArn"] for t in _tasks_of(ecs_env, tenant)}
    store = open_state_store()
    assert store.get_tenant(tenant).status is TenantStatus.READY
    assert {e.status for e in store.list_resources(tenant_id=tenant)} == {ResourceStatus.SUCCEEDED}


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_wait_for_running_returns_while_the_tasks_keep_running(airflow_env, ecs_env, deferrable) -> None:
    ecs_env.default_script = RUNS_FOREVER
    tenant = f"running-{int(deferrable)}"
    run = _run(
        airflow_env,
        ecs_env,
        f"ecs_running_{int(deferrable)}",
        tenant_id=tenant,
        wait_for="running",
        deferrable=deferrable,
    )

    assert run.state() == "success"
    assert [u["status"] for u in run.xcom("provision")["units"]] == ["running"]
    assert [t["lastStatus"] for t in _tasks_of(ecs_env, tenant)] == ["RUNNING"]


# -- idempotency --------------------------------------------------------------------------------


def test_a_launch_whose_answer_was_lost_is_found_not_launched_twice(
    airflow_env, ecs_env, fault_proxy
) -> None:
    proxy = fault_proxy(ecs_env.endpoint_url)
    ecs_env.route_through(proxy.url)
    # Every RunTask reaches ECS, but no answer ever comes back (botocore's own retries carry the
    # same clientToken, so ECS starts the task once). The try must look for the task it never
    # heard of and wait for it: launching again, or failing with the task left running, would
    # both be wrong.
    proxy.add_rule(Reset(forward_first=True), operation="RunTask")

    run = _run(airflow_env, ecs_env, "ecs_idem", tenant_id="idem", retries=2)

    assert run.state() == "success"
    assert run.try_numbers()["provision"] == 1
    (task,) = _tasks_of(ecs_env, "idem")
    assert [u["resource_id"] for u in run.xcom("provision")["units"]] == [task["taskArn"]]
    assert proxy.counts["RunTask"] >= 1
    assert proxy.counts.passed.get("RunTask", 0) == 0
    (row,) = open_state_store().list_resources(tenant_id="idem")
    assert (row.resource_id, row.status) == (task["taskArn"], ResourceStatus.SUCCEEDED)


def test_worker_killed_after_run_task_leaves_exactly_one_task(airflow_env, ecs_env, fault_proxy) -> None:
    proxy = fault_proxy(ecs_env.endpoint_url)
    ecs_env.route_through(proxy.url)
    ecs_env.default_script = RUNS_FOREVER
    source = ecs_dag(
        "ecs_crash",
        network_configuration=ecs_env.network_configuration,
        tenant_id="crash",
        wait_for="running",
    )
    from datetime import UTC, datetime

    when = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
    child = airflow_env.run_dag_in_subprocess(source, "ecs_crash", logical_date=when)
    proxy.after_forward(lambda info, status: child.kill(), operation="RunTask")
    child.wait()
    assert child.popen.returncode == -signal.SIGKILL
    assert len(_tasks_of(ecs_env, "crash")) == 1  # launched; the worker died before recording it

    proxy.reset()
    rerun = airflow_env.run_dag_in_subprocess(source, "ecs_crash", logical_date=when)
    assert rerun.wait() == 0, rerun.log_text()
    assert rerun.record.state() == "success"
    assert len(_tasks_of(ecs_env, "crash")) == 1, "the next try adopted the task of the killed one"
    assert proxy.counts["RunTask"] == 0


# -- partial launch -------------------------------------------------------------------------------


def test_partial_launch_rolls_back_by_default(airflow_env, ecs_env) -> None:
    ecs_env.default_script = RUNS_FOREVER
    ecs_env.script_next_run_task(failures=[{"reason": "RESOURCE:MEMORY"}])
    run = _run(airflow_env, ecs_env, "ecs_rollback", tenant_id="rollback", count=3)

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert error["code"] == "PARTIAL_FAILURE"
    units = error["units"]
    launched = units["pending"] + units["running"] + units["succeeded"]
    assert len(launched) == 2
    assert [u["error"]["code"] for u in units["failed"]] == ["INSUFFICIENT_CAPACITY"]
    assert error["cleanup"]["action"] == "rolled_back"
    assert sorted(error["cleanup"]["resources"]) == sorted(u["resource_id"] for u in launched)
    tasks = _tasks_of(ecs_env, "rollback")
    assert len(tasks) == 2
    assert {t["desiredStatus"] for t in tasks} == {"STOPPED"}
    ledger = open_state_store().list_resources(tenant_id="rollback")
    assert sorted(e.status.value for e in ledger) == ["failed", "stopped", "stopped"]


def test_partial_launch_with_retry_failed_relaunches_only_the_failed_unit(airflow_env, ecs_env) -> None:
    ecs_env.script_next_run_task(failures=[{"reason": "RESOURCE:CPU"}])
    run = _run(
        airflow_env,
        ecs_env,
        "ecs_retry_failed",
        tenant_id="retry-failed",
        count=3,
        on_partial_failure="retry_failed",
        retries=1,
    )

    assert run.state() == "success"
    assert run.try_numbers()["provision"] == 2
    tasks = _tasks_of(ecs_env, "retry-failed")
    assert len(tasks) == 3, "two kept from try 1, one relaunched in try 2"
    by_unit = {int(_tag(t, UNIT_INDEX_TAG)): int(_tag(t, GENERATION_TAG)) for t in tasks}
    assert sorted(by_unit.values()) == [1, 1, 2]
    assert sorted(by_unit) == [0, 1, 2]


# -- timeouts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_timeout_leaves_the_task_running_and_the_next_try_reattaches(
    airflow_env, ecs_env, deferrable
) -> None:
    # ~10 polls fit into the first try's 2 s; the task finishes during the second (10 s) try,
    # which leaves room for a loaded machine's slower polls.
    ecs_env.default_script = TaskScript(running=16)
    tenant = f"timeout-{int(deferrable)}"
    run = _run(
        airflow_env,
        ecs_env,
        f"ecs_timeout_{int(deferrable)}",
        tenant_id=tenant,
        timeout=Code("timedelta(seconds=2)"),
        timeout_factor=5.0,
        retries=1,
        deferrable=deferrable,
    )

    assert run.state() == "success"
    assert run.try_numbers()["provision"] == 2
    assert len(_tasks_of(ecs_env, tenant)) == 1, "the second try reattached instead of launching"
    store = open_state_store()
    operations = store.operations(tenant)
    assert operations[1].error is not None
    assert operations[1].error.code.value == "OPERATION_TIMEOUT"
    assert operations[1].error.cleanup.action == "left_running"
    execution_id = operations[0].execution_id
    assert store.timeouts_so_far(tenant, execution_id) == 1
    assert store.get_tenant(tenant).status is TenantStatus.READY


def test_timeout_with_no_retry_fails_retriable_and_keeps_the_work(airflow_env, ecs_env) -> None:
    ecs_env.default_script = RUNS_FOREVER
    run = _run(
        airflow_env,
        ecs_env,
        "ecs_timeout_final",
        tenant_id="timeout-final",
        timeout=Code("timedelta(seconds=1)"),
    )

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("OPERATION_TIMEOUT", "retriable")
    assert [t["lastStatus"] for t in _tasks_of(ecs_env, "timeout-final")] == ["RUNNING"]
    tenant = open_state_store().get_tenant("timeout-final")
    assert tenant.status is TenantStatus.RETRY_PENDING  # retriable, given up: valid for a retry


# -- stopped tasks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "code", "exit_code", "reason"),
    [
        (exited(1), "CONTAINER_FAILED", 1, None),
        (OOM_KILLED, "OUT_OF_MEMORY", 137, "OutOfMemoryError"),
        (image_not_found(), "IMAGE_NOT_FOUND", None, "CannotPullContainerError"),
        (SPOT_INTERRUPTED, "INFRASTRUCTURE_INTERRUPTED", None, "Spot"),
    ],
    ids=["exit-1", "oom", "image-not-found", "spot"],
)
def test_stopped_task_becomes_its_code_with_exit_code_and_reason(
    airflow_env, ecs_env, outcome, code, exit_code, reason
) -> None:
    ecs_env.default_script = TaskScript(outcome=outcome)
    tenant = f"stopped-{code.lower().replace('_', '-')}"
    run = _run(airflow_env, ecs_env, f"ecs_stopped_{code.lower()}", tenant_id=tenant)

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert error["code"] == code
    assert error["root_cause"]["exit_code"] == exit_code
    if reason:
        assert reason in " ".join(
            filter(None, [error["root_cause"]["reason"], error["root_cause"]["provider_message"]])
        )
    assert error["root_cause"]["resource_id"] == _tasks_of(ecs_env, tenant)[0]["taskArn"]
    assert (error["tenant_id"], error["operation"]) == (tenant, "provision")
    expected = (
        TenantStatus.RETRY_PENDING
        if error["classification"] == "retriable"
        else TenantStatus.NEEDS_INVESTIGATION
    )
    assert open_state_store().get_tenant(tenant).status is expected


# -- API errors on the wire -------------------------------------------------------------------------


def test_throttling_while_polling_does_not_fail_the_task(airflow_env, ecs_env, fault_proxy) -> None:
    proxy = fault_proxy(ecs_env.endpoint_url)
    ecs_env.route_through(proxy.url)
    proxy.add_rule(ecs_throttle(), operation="DescribeTasks", times=4)

    run = _run(airflow_env, ecs_env, "ecs_throttled", tenant_id="throttled")

    assert run.state() == "success"
    assert run.try_numbers()["provision"] == 1
    assert proxy.counts.faulted["DescribeTasks"] == 4


def test_service_unavailable_at_run_task_is_retried(airflow_env, ecs_env, fault_proxy, monkeypatch) -> None:
    proxy = fault_proxy(ecs_env.endpoint_url)
    ecs_env.route_through(proxy.url)
    # The hook's own RunTask retries, shortened: this test is about Airflow's retry after them
    # (test_ecs_hook.py waits out the real ones); dag.test() runs the task in this process.
    quick = dataclasses.replace(LAUNCH_RETRY, attempts=3, initial_wait=0.05, max_wait=0.2)
    monkeypatch.setattr(ecs_hook, "LAUNCH_RETRY", quick)
    # Every attempt of both tries: the hook retries a transient RunTask failure in the try.
    proxy.add_rule(ecs_unavailable(), operation="RunTask", times=2 * quick.attempts)

    run = _run(airflow_env, ecs_env, "ecs_unavailable", tenant_id="unavailable", retries=1)

    assert run.state() == "failed"
    assert run.try_numbers()["provision"] == 2, "a retriable error is retried"
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("PROVIDER_TEMPORARILY_UNAVAILABLE", "retriable")
    assert error["root_cause"]["http_status"] == 503


def test_cluster_not_found_fails_fast_and_holds_the_tenant(airflow_env, ecs_env) -> None:
    run = _run(airflow_env, ecs_env, "ecs_no_cluster", tenant_id="no-cluster", cluster="nope", retries=3)

    assert run.state() == "failed"
    assert run.try_numbers()["provision"] == 1, "non-retriable: no retry although retries=3"
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("RESOURCE_NOT_FOUND", "non_retriable")
    assert open_state_store().get_tenant("no-cluster").status is TenantStatus.NEEDS_INVESTIGATION


def test_invalid_argument_fails_before_any_call_and_holds_the_tenant(
    airflow_env, ecs_env, fault_proxy
) -> None:
    """Requirement 2.2: invalid configuration holds the tenant for investigation, also when our
    own validation finds it, before any provider call (the tenant is created for it)."""
    proxy = fault_proxy(ecs_env.endpoint_url)
    ecs_env.route_through(proxy.url)
    run = _run(airflow_env, ecs_env, "ecs_bad_count", tenant_id="bad-count", count="{{ 0 }}", retries=2)

    assert run.state() == "failed"
    assert run.try_numbers()["provision"] == 1
    error = run.xcom("provision", key="compute_error")
    assert error["code"] == "INVALID_CONFIGURATION"
    assert "'count'" in error["message"]
    assert proxy.counts.total == 0
    tenant = open_state_store().get_tenant("bad-count")
    assert tenant is not None
    assert tenant.status is TenantStatus.NEEDS_INVESTIGATION
    assert tenant.note is not None
    assert tenant.note.startswith("INVALID_CONFIGURATION: ")
    assert "'count'" in tenant.note
    assert open_state_store().operations("bad-count") == [], "no try began"


def test_access_denied_error_json_reaches_xcom_with_the_request_id(airflow_env, ecs_env, fault_proxy) -> None:
    proxy = fault_proxy(ecs_env.endpoint_url)
    ecs_env.route_through(proxy.url)
    proxy.add_rule(
        ecs_error("AccessDeniedException", "User: arn:aws:iam::123456789012:user/x is not authorized"),
        operation="RunTask",
    )
    run = _run(airflow_env, ecs_env, "ecs_denied", tenant_id="denied")

    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("PERMISSION_DENIED", "requires_manual_intervention")
    assert re.fullmatch(r"[0-9a-f-]{8,}", error["root_cause"]["request_id"] or "")
    assert open_state_store().get_tenant("denied").status is TenantStatus.NEEDS_INVESTIGATION


# -- logs ------------------------------------------------------------------------------------------

CANARY = "canary-7f3a9c1e-s3cr3t"


def _records(text: str, event: str) -> list[str]:
    return [line for line in text.splitlines() if event in line]


def test_failure_logs_carry_context_at_the_level_of_airflows_decision(
    airflow_env, ecs_env, fault_proxy
) -> None:
    proxy = fault_proxy(ecs_env.endpoint_url)
    ecs_env.route_through(proxy.url)
    proxy.add_rule(ecs_throttle(), operation="RunTask")  # every try throttled: a retry, then final
    overrides = {
        "containerOverrides": [{"name": "main", "environment": [{"name": "DB_PASSWORD", "value": CANARY}]}]
    }
    source = ecs_dag(
        "ecs_logs",
        network_configuration=ecs_env.network_configuration,
        tenant_id="logs",
        retries=1,
        overrides=overrides,
    )
    # A worker with this provider's loggers at DEBUG (Airflow's own stay at INFO: at DEBUG its
    # task-runner transport logs the MaskSecret message itself, secret included).
    debug_ours = "airflow_compute_provider=DEBUG airflow.task.hooks.airflow_compute_provider=DEBUG"
    child = airflow_env.run_dag_in_subprocess(
        source, "ecs_logs", env={"AIRFLOW__LOGGING__NAMESPACE_LEVELS": debug_ours}
    )
    child.wait()
    assert child.record.state() == "failed"
    out = child.log_text()

    retry = _records(out, "compute operation failed, retry follows")
    final = [line for line in _records(out, "compute operation failed") if "retry follows" not in line]
    assert len(retry) == 1
    assert "warning" in retry[0].split("]")[0]
    assert len(final) == 1
    assert "error" in final[0].split("]")[0]
    for line in retry + final:
        for field in (
            "tenant_id=logs",
            "operation=provision",
            "execution_id=ecs_logs:",
            "code=PROVIDER_THROTTLED",
            "classification=retriable",
        ):
            assert field in line, f"{field} missing from: {line}"
    raw = _records(out, "ECS error response")
    assert raw
    assert all("debug" in line.split("]")[0] for line in raw)
    assert "ThrottlingException" in raw[0]
    assert CANARY not in out, "a secret from the launch request reached the log"


# -- execution_timeout, on_kill and templates ------------------------------------------------------


@pytest.mark.parametrize(("on_kill_action", "desired"), [("keep", "RUNNING"), ("stop", "STOPPED")])
def test_execution_timeout_stops_units_only_when_asked(airflow_env, ecs_env, on_kill_action, desired) -> None:
    ecs_env.default_script = RUNS_FOREVER
    tenant = f"exec-timeout-{on_kill_action}"
    run = _run(
        airflow_env,
        ecs_env,
        f"ecs_exec_timeout_{on_kill_action}",
        tenant_id=tenant,
        # The task runs forever, so the try lasts exactly this long; it must outlast the launch
        # (store, client, ListTasks, RunTask) on a loaded machine: 3 s could end the try before
        # RunTask, leaving no task at all to keep or stop (the test failed once under load).
        execution_timeout=Code("timedelta(seconds=10)"),
        on_kill_action=on_kill_action,
    )

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("OPERATION_TIMEOUT", "retriable")
    assert [t["desiredStatus"] for t in _tasks_of(ecs_env, tenant)] == [desired], error
    assert open_state_store().get_tenant(tenant).status is TenantStatus.RETRY_PENDING


def test_templates_see_the_previous_tries_error(airflow_env, ecs_env) -> None:
    ecs_env.script_tasks(TaskScript(outcome=SPOT_INTERRUPTED), count=1)  # only the first task
    run = _run(
        airflow_env,
        ecs_env,
        "ecs_previous_error",
        tenant_id="previous-error",
        retries=1,
        tags={"previous-code": "{{ previous_compute_error.code if previous_compute_error else 'none' }}"},
    )

    assert run.state() == "success"
    tasks = sorted(_tasks_of(ecs_env, "previous-error"), key=lambda t: int(_tag(t, GENERATION_TAG)))
    assert [_tag(t, "previous-code") for t in tasks] == ["none", "INFRASTRUCTURE_INTERRUPTED"]


def test_timeout_fired_before_any_poll_still_lists_the_units_left_running(
    airflow_env, ecs_env, fault_proxy
) -> None:
    # The trigger's first status poll fails for good (5 throttles: every attempt the hook makes)
    # and its deadline has passed, so it fires a timeout having seen no unit at all.
    ecs_env.default_script = RUNS_FOREVER
    proxy = fault_proxy(ecs_env.endpoint_url)
    ecs_env.route_through(proxy.url)
    proxy.add_rule(ecs_throttle(), operation="DescribeTasks", times=5)
    run = _run(
        airflow_env,
        ecs_env,
        "ecs_timeout_unseen",
        tenant_id="timeout-unseen",
        deferrable=True,
        timeout=Code("timedelta(milliseconds=1)"),
    )

    error = run.xcom("provision", key="compute_error")
    assert error["code"] == "OPERATION_TIMEOUT"
    arns = [t["taskArn"] for t in _tasks_of(ecs_env, "timeout-unseen")]
    assert error["cleanup"] == {"action": "left_running", "resources": arns}
    left = error["units"]["running"] + error["units"]["pending"]
    assert [u["resource_id"] for u in left] == arns
