"""A deferred try is bounded by the task's ``execution_timeout``, on the real stack.

Airflow 3.3 records no trigger timeout for a deferred try (apache/airflow#69678): left to it, a
deferred compute task with ``execution_timeout=20s`` waits on until the operation's own timeout.
The try computes its own deadline (``lifecycle/deadline.py``): the earlier of the operation's
timeout and its start + ``execution_timeout``. Here ``airflow standalone`` (scheduler,
LocalExecutor workers, triggerer) runs ``dags/slow_deadlines.py``: the trigger, in the stack's
triggerer, yields its timeout event at that deadline, and the worker ends the try as
OPERATION_TIMEOUT with the work left running; the retry adopts it (one ECS task, one pod, counted
on the provider).

The third test makes the stack's Airflow enforce the deferral's timeout the way a future Airflow
would, by writing the trigger timeout Airflow 3.3 leaves empty into the task instance's row
(``task_instance.trigger_timeout``; that one write is the only thing simulated). The scheduler's
own ``check_trigger_timeouts`` then resumes the try with ``__fail__`` / ``TaskDeferralTimeout``,
and the try ends the same way.

moto stands in for the AWS cloud and the node simulator for a kubelet; neither can run here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_compute_provider.state import SqlTenantStateStore
from airflow_compute_provider.state.status import TenantStatus
from tests.harness.airflow_env import StandaloneHandle
from tests.harness.ecs_script import RUNS_FOREVER, TaskScript
from tests.harness.proxy import FaultProxy
from tests.integration.kubernetes_dags import KubeEnv
from tests.slow.dags import slow_deadlines as dags
from tests.slow.stack_runs import StackRun, StackWorkflows, parse_time

pytestmark = [pytest.mark.slow]

DAG_IDS = ("slow_deadline_ecs", "slow_deadline_kube", "slow_deadline_enforced")
EXECUTION_TIMEOUT = timedelta(seconds=dags.EXECUTION_TIMEOUT_SECONDS)
ENDED_BY_EXECUTION_TIMEOUT = "the task's execution_timeout (20s) passed before the operation settled"
AIRFLOW_ENDED_IT = "Airflow ended the deferral at the task's execution_timeout"


@pytest.fixture
def workflows(
    airflow_standalone: StandaloneHandle, ecs_env: Any, fault_proxy: Any, tmp_path: Path
) -> Iterator[StackWorkflows]:
    airflow_standalone.add_dag(Path(dags.__file__))
    for dag_id in DAG_IDS:
        airflow_standalone.client.wait_for_dag(dag_id)
    proxy: FaultProxy = fault_proxy(ecs_env.moto_url)
    flows = StackWorkflows(airflow_standalone, ecs_env, proxy)
    flows.point_aws_connection_at(proxy.url)
    _write_connection(
        flows,
        {
            "connection_id": dags.STATE_CONN_ID,
            "conn_type": "sqlite",
            "extra": json.dumps({"sqlalchemy_url": f"sqlite:///{tmp_path / 'state.db'}"}),
        },
    )
    yield flows
    flows.close()


@pytest.fixture
def store(workflows: StackWorkflows, tmp_path: Path) -> Iterator[SqlTenantStateStore]:
    opened = SqlTenantStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


def _write_connection(flows: StackWorkflows, connection: dict[str, Any]) -> None:
    answer = flows.client.request(
        "PATCH",
        "/connections",
        json={
            "actions": [{"action": "create", "entities": [connection], "action_on_existence": "overwrite"}]
        },
    )
    assert not answer["create"]["errors"], answer


def _conf(workflows: StackWorkflows, namespace: str | None = None) -> dict[str, Any]:
    network = workflows.ecs_env.network_configuration["awsvpcConfiguration"]
    conf = {"subnet_id": network["subnets"][0], "security_group_id": network["securityGroups"][0]}
    if namespace is not None:
        conf["namespace"] = namespace
    return conf


def _wait(workflows: StackWorkflows, dag_id: str, run_id: str, **kwargs: Any) -> StackRun:
    """``workflows.wait``, with the stack's log tail in the failure when the stack stops answering."""
    try:
        return workflows.wait(dag_id, run_id, timeout=240, **kwargs)
    except (TimeoutError, OSError) as exc:
        raise AssertionError(
            f"{dag_id}: {exc}; stack log tail:\n{workflows.stack.stack.log_tail(12000)}"
        ) from exc


def _ended_at_its_execution_timeout(run: StackRun, try_number: int) -> dict[str, Any]:
    """The try deferred, its deadline was its start + execution_timeout (not the operation's 10
    minutes), and it ended there, not before; returns its task instance try."""
    (launch,) = run.logged("provision", try_number, "compute units launched")
    assert launch["deadline_by"] == "execution_timeout", launch
    assert run.logged("provision", try_number, "Pausing task as DEFERRED. ")
    (attempt,) = [t for t in run.tries("provision") if t["try_number"] == try_number]
    started, ended = parse_time(attempt["start_date"]), parse_time(attempt["end_date"])
    # The worker's start is the moment the API server acknowledged the start it recorded: on a
    # busy machine that answer may come seconds after the recorded start, never before it.
    worker_started = parse_time(launch["try_started"])
    assert worker_started >= started
    assert parse_time(launch["deadline"]) == worker_started + EXECUTION_TIMEOUT
    assert ended - worker_started >= EXECUTION_TIMEOUT, "the try ended before its execution_timeout"
    # for the record (pytest -s): how long after its execution_timeout the try really ended
    print(
        f"{run.dag_id} try {try_number}: ended "
        f"{(ended - worker_started).total_seconds():.1f} s after its start"
    )
    assert not run.logged("provision", try_number, AIRFLOW_ENDED_IT), "Airflow 3.3 enforced it after all?"
    return attempt


def test_ecs_a_deferred_try_ends_at_its_execution_timeout_and_the_retry_adopts(
    workflows: StackWorkflows, store: SqlTenantStateStore
) -> None:
    ecs_env = workflows.ecs_env
    ecs_env.default_script = RUNS_FOREVER
    run_id = workflows.client.trigger("slow_deadline_ecs", conf=_conf(workflows))
    finishing: list[str] = []

    def let_it_finish_after_try_1() -> None:
        if finishing:
            return
        instance = workflows.task_instance("slow_deadline_ecs", run_id, "provision")
        if instance["try_number"] >= 2 or instance["state"] == "up_for_retry":
            for arn in ecs_env.launched_task_arns():
                # done at the next describe: try 2 has its own 20 s, and a loaded machine's
                # triggerer may take most of them to pick the trigger up
                ecs_env.set_script(arn, TaskScript(pending=0, running=1))
                finishing.append(arn)

    run = _wait(workflows, "slow_deadline_ecs", run_id, each_poll=let_it_finish_after_try_1)

    assert run.state == "success", (run.tries("provision"), store.operations("slow-deadline-ecs"))
    assert [(t["try_number"], t["state"]) for t in run.tries("provision")] == [(1, "failed"), (2, "success")]
    _ended_at_its_execution_timeout(run, 1)
    first, second = sorted(store.operations("slow-deadline-ecs"), key=lambda op: op.attempt)
    assert first.error is not None
    assert (first.error.code.value, first.error.classification.value) == ("OPERATION_TIMEOUT", "retriable")
    assert first.error.message.startswith(ENDED_BY_EXECUTION_TIMEOUT), first.error.message
    assert first.error.cleanup is not None
    assert (first.error.cleanup.action, first.error.cleanup.resources) == ("left_running", finishing)
    assert second.error is None
    # try 2 adopted the task try 1 left running: one RunTask in all
    (launch,) = run.logged("provision", 2, "compute units launched")
    assert (launch["adopted"], launch["launched"]) == (finishing, [])
    assert workflows.proxy.counts["RunTask"] == 1
    assert len(ecs_env.launched_task_arns()) == 1
    assert store.get_tenant("slow-deadline-ecs").status is TenantStatus.READY


@pytest.mark.kube
def test_kubernetes_a_deferred_try_ends_at_its_execution_timeout_and_the_retry_adopts(
    workflows: StackWorkflows,
    store: SqlTenantStateStore,
    kube_env: KubeEnv,
) -> None:
    """The pod runs for ever: both tries end at their execution_timeout, and try 2 adopted the
    pod try 1 left running instead of creating another."""
    kube_cluster, kube_namespace = kube_env.cluster, kube_env.namespace
    _write_connection(
        workflows,
        {
            "connection_id": "kubernetes_default",
            "conn_type": "kubernetes",
            "extra": json.dumps(
                {"kube_config_path": str(kube_cluster.kubeconfig), "namespace": kube_namespace}
            ),
        },
    )
    run_id = workflows.client.trigger("slow_deadline_kube", conf=_conf(workflows, kube_namespace))
    run = _wait(workflows, "slow_deadline_kube", run_id)

    assert run.state == "failed"
    assert [(t["try_number"], t["state"]) for t in run.tries("provision")] == [(1, "failed"), (2, "failed")]
    (pod,) = kube_env.pods_of("slow-deadline-kube")
    assert pod.status.phase == "Running", "the pod was left running"
    for try_number in (1, 2):
        _ended_at_its_execution_timeout(run, try_number)
    (launch,) = run.logged("provision", 2, "compute units launched")
    assert (launch["adopted"], launch["launched"]) == ([pod.metadata.name], [])
    operations = sorted(store.operations("slow-deadline-kube"), key=lambda op: op.attempt)
    for op in operations:
        assert op.error is not None
        assert op.error.code.value == "OPERATION_TIMEOUT"
        assert op.error.message.startswith(ENDED_BY_EXECUTION_TIMEOUT), op.error.message
        assert op.error.cleanup is not None
        assert (op.error.cleanup.action, op.error.cleanup.resources) == ("left_running", [pod.metadata.name])
    # retriable, and no retry left: free, retry_pending (Airflow's decision, requirement 2.1)
    assert store.get_tenant("slow-deadline-kube").status is TenantStatus.RETRY_PENDING


def test_a_resume_with_task_deferral_timeout_ends_the_try_like_its_execution_timeout(
    workflows: StackWorkflows, store: SqlTenantStateStore
) -> None:
    ecs_env = workflows.ecs_env
    ecs_env.default_script = RUNS_FOREVER
    run_id = workflows.client.trigger("slow_deadline_enforced", conf=_conf(workflows))
    enforced: list[bool] = []

    def enforce_once_deferred() -> None:
        if enforced:
            return
        instance = workflows.task_instance("slow_deadline_enforced", run_id, "provision")
        if instance["state"] != "deferred":
            return
        engine = sa.create_engine(workflows.metadata_url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "UPDATE task_instance SET trigger_timeout = now() - interval '1 second' "
                        "WHERE dag_id = :dag AND run_id = :run AND task_id = 'provision'"
                    ),
                    {"dag": "slow_deadline_enforced", "run": run_id},
                )
        finally:
            engine.dispose()
        enforced.append(True)

    run = _wait(workflows, "slow_deadline_enforced", run_id, each_poll=enforce_once_deferred)

    assert enforced
    assert run.state == "failed"
    assert run.logged("provision", 1, AIRFLOW_ENDED_IT)
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("OPERATION_TIMEOUT", "retriable")
    assert error["message"].startswith("the task's execution_timeout (10m) passed"), error["message"]
    (arn,) = ecs_env.launched_task_arns()
    assert error["cleanup"] == {"action": "left_running", "resources": [arn]}
    assert workflows.proxy.counts["RunTask"] == 1
    assert store.get_tenant("slow-deadline-enforced").status is TenantStatus.RETRY_PENDING
