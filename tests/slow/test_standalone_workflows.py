"""ComputeRetryPolicy and ComputeErrorBranchOperator on a real Airflow stack.

``airflow standalone`` (scheduler, LocalExecutor workers, triggerer, api-server, PostgreSQL
metadata database) runs the DAGs of ``tests/slow/dags/slow_compute_workflows.py``; each test
triggers one over the REST API and reads the outcome back through it: run and task states, the
tries of a task, XComs, and the task logs, where Airflow's worker writes the policy's decision
("Retry policy decision") and the triggerer writes what a trigger did. Two things the public
API of Airflow 3.3 does not return are read where the stack keeps them: the stored retry delay
and reason (``task_instance_history`` of the metadata database) and the tenant state store the
workers write (SQLite in the stack's home).

The stack reaches ECS through a fault proxy in front of the moto server; moto stands in for the
AWS cloud, which cannot run here. Airflow asks the policy on the worker, stores its decision
with the task instance, and the scheduler acts on it; nothing of that is simulated.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from airflow_compute_provider.hooks.ecs_retry import LAUNCH_RETRY
from airflow_compute_provider.state.status import TenantStatus
from tests.harness.airflow_env import StandaloneHandle
from tests.harness.ecs import CLUSTER_NAME, EcsEnv
from tests.harness.ecs_script import RUNS_FOREVER, TaskScript
from tests.harness.proxy_faults import ecs_throttle
from tests.slow.stack_runs import DAGS, StackRun, StackWorkflows, parse_time

pytestmark = pytest.mark.slow

DAG_IDS = ("slow_policy_throttled", "slow_policy_invalid", "slow_policy_timeout", "slow_branch_quota")
DECISION = "Retry policy decision"  # what Airflow's task runner logs after asking the policy
ABORTED = "not retried (non_retriable errors abort by default)"


@pytest.fixture(scope="module")
def stack_with_dags(airflow_standalone: StandaloneHandle) -> StandaloneHandle:
    airflow_standalone.add_dag(DAGS / "slow_compute_workflows.py")
    for dag_id in DAG_IDS:
        airflow_standalone.client.wait_for_dag(dag_id)
    return airflow_standalone


@pytest.fixture
def workflows(
    stack_with_dags: StandaloneHandle, ecs_env: EcsEnv, fault_proxy: Any
) -> Iterator[StackWorkflows]:
    proxy = fault_proxy(ecs_env.moto_url)
    flows = StackWorkflows(stack_with_dags, ecs_env, proxy)
    flows.point_aws_connection_at(proxy.url)
    yield flows
    flows.close()


def decisions_logged(run: StackRun, try_number: int) -> list[tuple[str, str]]:
    return [(e["action"], e["reason"]) for e in run.logged("provision", try_number, DECISION)]


def triggerer_lines(run: StackRun, try_number: int) -> list[str]:
    """The lines the triggerer wrote into this try's log about its trigger: ``trigger
    <dag>/<run>/<task>/<map index>/<try> (ID n) starting``, then usually ``Trigger fired event``
    and ``trigger completed`` (those two may be lost when the triggerer closes the trigger's log
    first, so only the start is relied on)."""
    name = f"{run.dag_id}/{run.run_id}/provision/-1/{try_number} (ID "
    return [
        str(e["event"])
        for e in run.log_events("provision", try_number)
        if str(e.get("event", "")).startswith(f"trigger {name}") or str(e.get("name", "")).startswith(name)
    ]


def tenant_status(workflows: StackWorkflows, tenant_id: str) -> TenantStatus:
    tenant = workflows.store().get_tenant(tenant_id)
    assert tenant is not None, f"the state store has no tenant {tenant_id!r}"
    return tenant.status


def launched_tasks(ecs_env: EcsEnv) -> list[str]:
    """Every ECS task of the test's cluster, running or stopped, read from moto directly."""
    return [
        arn
        for desired in ("RUNNING", "STOPPED")
        for arn in ecs_env.ecs.list_tasks(cluster=CLUSTER_NAME, desiredStatus=desired)["taskArns"]
    ]


def test_throttled_launch_is_retried_with_the_policys_delays_and_reasons(workflows: StackWorkflows) -> None:
    """RunTask is throttled through the first two tries (each try's attempts, all of them: the
    hook retries a throttled RunTask ``LAUNCH_RETRY.attempts`` times, botocore's retries are off):
    PROVIDER_THROTTLED, retried after 1s then 2s (initial_delay 1s, backoff 2, no jitter), and
    the third try launches. Airflow's own retry_delay (10 minutes) never applies."""
    workflows.proxy.add_rule(ecs_throttle(), operation="RunTask", times=2 * LAUNCH_RETRY.attempts)

    run = workflows.run("slow_policy_throttled")

    assert run.state == "success"
    tries = run.tries("provision")
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "failed"), (2, "failed"), (3, "success")]
    stored = {d.try_number: (d.retry_delay, d.retry_reason) for d in run.policy_decisions("provision")}
    assert stored[1] == (1.0, "PROVIDER_THROTTLED (retriable): attempt 1 of 4, next in 1s")
    assert stored[2] == (2.0, "PROVIDER_THROTTLED (retriable): attempt 2 of 4, next in 2s")
    assert decisions_logged(run, 2) == [("retry", stored[2][1])]
    # The scheduler held each retry back for the policy's delay (a bound, never a duration).
    for earlier, later, delay in ((tries[0], tries[1], 1), (tries[1], tries[2], 2)):
        assert parse_time(later["start_date"]) - parse_time(earlier["end_date"]) >= timedelta(seconds=delay)

    assert workflows.proxy.counts.faulted["RunTask"] == 2 * LAUNCH_RETRY.attempts
    assert workflows.proxy.counts.passed["RunTask"] == 1, "only the third try's RunTask reached ECS"
    assert len(launched_tasks(workflows.ecs_env)) == 1
    store = workflows.store()
    operations = store.operations("slow-throttled")
    assert [(op.attempt, op.error_code and op.error_code.value) for op in operations] == [
        (3, None),
        (2, "PROVIDER_THROTTLED"),
        (1, "PROVIDER_THROTTLED"),
    ]
    assert tenant_status(workflows, "slow-throttled") is TenantStatus.READY


def test_invalid_configuration_fails_on_the_first_try_with_retries_left(workflows: StackWorkflows) -> None:
    """An EC2 launch into a cluster with no container instances: ECS answers
    InvalidParameterException, which is INVALID_CONFIGURATION (non_retriable). The policy gave
    the task two retries, and Airflow asked it: it said fail, so there is one try."""
    run = workflows.run("slow_policy_invalid")

    assert run.state == "failed"
    tries = run.tries("provision")
    assert [(t["try_number"], t["state"], t["max_tries"]) for t in tries] == [(1, "failed", 2)]
    assert decisions_logged(run, 1) == [
        (
            "fail",
            f"INVALID_CONFIGURATION (non_retriable): attempt 1, {ABORTED}",
        )
    ]
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("INVALID_CONFIGURATION", "non_retriable")
    assert error["root_cause"]["provider_code"] == "InvalidParameterException"
    assert workflows.proxy.counts["RunTask"] == 1
    assert tenant_status(workflows, "slow-invalid") is TenantStatus.NEEDS_INVESTIGATION


def test_timeout_is_retried_with_a_longer_timeout_and_reattaches_in_the_triggerer(
    workflows: StackWorkflows,
) -> None:
    """Deferrable, timeout 2s: the task runs until try 1 has timed out (the trigger, in the
    stack's triggerer, yields a timeout event; the work is left running). Only then may it
    finish: try 2 adopts the same ECS task, waits 5 x 2s (the OPERATION_TIMEOUT rule's
    timeout_factor) in the triggerer again, and succeeds. One ECS task in all."""
    ecs_env = workflows.ecs_env
    ecs_env.default_script = RUNS_FOREVER
    run_id = workflows.start("slow_policy_timeout")
    finishing: list[str] = []

    def let_it_finish_after_try_1() -> None:
        if finishing:
            return
        instance = workflows.task_instance("slow_policy_timeout", run_id, "provision")
        if instance["try_number"] >= 2 or instance["state"] == "up_for_retry":
            # Four more describes see it running, the fifth stopped with exit code 0.
            for arn in ecs_env.launched_task_arns():
                ecs_env.set_script(arn, TaskScript(pending=0, running=4))
                finishing.append(arn)

    run = workflows.wait("slow_policy_timeout", run_id, each_poll=let_it_finish_after_try_1)

    assert run.state == "success"
    assert len(finishing) == 1
    assert launched_tasks(ecs_env) == finishing, "try 2 reattached instead of launching again"
    assert workflows.proxy.counts["RunTask"] == 1
    tries = run.tries("provision")
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "failed"), (2, "success")]
    stored = {d.try_number: (d.retry_delay, d.retry_reason) for d in run.policy_decisions("provision")}
    assert stored[1] == (
        1.0,
        "OPERATION_TIMEOUT (retriable): attempt 1 of 3, next in 1s; rule OPERATION_TIMEOUT",
    )

    # Both tries deferred, and the stack's triggerer ran their triggers: each try's log holds
    # the triggerer's own lines next to the worker's. Try 2 completed from the trigger's event:
    # the worker never asked ECS again after resuming, so the unit's state is the trigger's.
    for try_number in (1, 2):
        assert run.logged("provision", try_number, "Pausing task as DEFERRED. ")
        assert triggerer_lines(run, try_number), f"no triggerer lines in the log of try {try_number}"
    result = run.xcom("provision")
    assert [(u["resource_id"], u["status"], u["exit_code"]) for u in result["units"]] == [
        (finishing[0], "succeeded", 0)
    ]

    # Try 1 failed as OPERATION_TIMEOUT with its work left running; try 2's deadline was set
    # further out than the 2s a try without the rule gets.
    store = workflows.store()
    first, second = sorted(store.operations("slow-timeout"), key=lambda op: op.attempt)
    assert first.error is not None
    assert (first.error.code.value, first.error.message.split(";")[0]) == (
        "OPERATION_TIMEOUT",
        "operation did not settle within 2s",
    )
    assert first.error.cleanup is not None
    assert first.error.cleanup.action == "left_running"
    assert (second.attempt, second.error) == (2, None)
    assert store.timeouts_so_far("slow-timeout", second.execution_id) == 1
    (launch,) = run.logged("provision", 2, "compute units launched")
    assert launch["adopted"] == finishing
    assert launch["launched"] == []
    window = parse_time(launch["deadline"]) - parse_time(launch["timestamp"])
    assert window > timedelta(seconds=2), f"try 2 waited no longer than try 1 ({window})"
    assert tenant_status(workflows, "slow-timeout") is TenantStatus.READY


def test_quota_exceeded_goes_to_its_handler_and_the_run_stays_failed(workflows: StackWorkflows) -> None:
    """RunTask answers a concurrent-task limit in ``failures[]``: QUOTA_EXCEEDED
    (non_retriable), so the policy fails the task on try 1; the branch follows the code's route
    (raise_quota, which reads the error) and skips every other handler; the one_failed watcher
    fails, so the run ends failed although a handler succeeded."""
    workflows.ecs_env.script_next_run_task(
        failures=[{"reason": "You've reached the limit on the number of tasks you can run concurrently"}]
    )

    run = workflows.run("slow_branch_quota")

    assert run.state == "failed"
    assert run.task_states() == {
        "provision": "failed",
        "route": "success",
        "raise_quota": "success",
        "fix_config": "skipped",
        "back_off": "skipped",
        "report_ok": "skipped",
        "triage": "skipped",
        "watcher": "failed",
    }
    assert [(t["try_number"], t["max_tries"]) for t in run.tries("provision")] == [(1, 2)]
    assert decisions_logged(run, 1) == [
        (
            "fail",
            f"QUOTA_EXCEEDED (non_retriable): attempt 1, {ABORTED}",
        )
    ]
    assert run.xcom("provision", key="compute_error")["code"] == "QUOTA_EXCEEDED"
    assert run.xcom("raise_quota") == "QUOTA_EXCEEDED"
    assert tenant_status(workflows, "slow-quota") is TenantStatus.NEEDS_INVESTIGATION
