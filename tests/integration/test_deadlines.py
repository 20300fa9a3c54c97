"""A try's deadline end to end (``dag.test()``): the task's ``execution_timeout`` bounds a deferred
try, and a unit still pending at the deadline ends it with the unit's own error.

``dag.test()`` runs the trigger in-process and enforces no trigger timeout, which is what Airflow
3.3 does for a deferred try too (apache/airflow#69678): only the deadline the try computed for
itself can end it. The same on the real scheduler and triggerer: ``tests/slow/test_deadlines_stack.py``.

ECS is moto (it cannot run here) with scripted task lifecycles (``tests/harness/ecs_script.py``);
Kubernetes is the local API server with the node simulator, whose pod annotations script
``ErrImagePull`` and whose scheduler really finds no node for 64 CPUs.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_compute_provider.state.config import open_state_store
from airflow_compute_provider.state.status import ResourceStatus, TenantStatus
from tests.harness.ecs import CLUSTER_NAME
from tests.harness.ecs_script import HOLD_PENDING, RUNS_FOREVER
from tests.integration.ecs_dags import Code, ecs_dag

pytestmark = pytest.mark.airflow

EXECUTION_TIMEOUT = "the task's execution_timeout (3s) passed before the operation settled"


def _ecs_run(airflow_env: Any, ecs_env: Any, dag_id: str, **kwargs: Any) -> Any:
    source = ecs_dag(dag_id, network_configuration=ecs_env.network_configuration, **kwargs)
    return airflow_env.run_dag(source, dag_id)


def _ecs_task_status(ecs_env: Any, arn: str) -> str:
    (task,) = ecs_env.ecs.describe_tasks(cluster=CLUSTER_NAME, tasks=[arn])["tasks"]
    return str(task["lastStatus"])


# -- execution_timeout bounds a deferred try --------------------------------------------------


def test_a_deferred_try_ends_at_its_execution_timeout_with_its_work_left_running(
    airflow_env, ecs_env
) -> None:
    """Timeout 1 minute, execution_timeout 3 s, deferred: the trigger's deadline is the try's
    start + 3 s, and the try ends there as OPERATION_TIMEOUT with the task still running."""
    ecs_env.default_script = RUNS_FOREVER
    tenant = "dl-deferred"
    run = _ecs_run(
        airflow_env,
        ecs_env,
        "deadline_deferred",
        tenant_id=tenant,
        deferrable=True,
        # a minute: long beside the execution_timeout, short enough for a test that fails
        timeout=Code("timedelta(minutes=1)"),
        execution_timeout=Code("timedelta(seconds=3)"),
        retries=0,
    )

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("OPERATION_TIMEOUT", "retriable")
    assert error["message"].startswith(EXECUTION_TIMEOUT), error["message"]
    assert error["cleanup"]["action"] == "left_running"
    (arn,) = error["cleanup"]["resources"]
    assert _ecs_task_status(ecs_env, arn) == "RUNNING"
    store = open_state_store()
    # a retriable error with no retry: the tenant is free, retry_pending (Airflow's decision)
    assert store.get_tenant(tenant).status is TenantStatus.RETRY_PENDING
    (entry,) = store.list_resources(tenant_id=tenant)
    assert entry.status in (ResourceStatus.LAUNCHED, ResourceStatus.RUNNING)


def test_a_deferred_try_at_its_execution_timeout_stops_its_work_when_asked(airflow_env, ecs_env) -> None:
    """on_kill_action="stop": as Airflow's on_kill does for a blocking try, the units stop."""
    ecs_env.default_script = RUNS_FOREVER
    tenant = "dl-deferred-stop"
    run = _ecs_run(
        airflow_env,
        ecs_env,
        "deadline_deferred_stop",
        tenant_id=tenant,
        deferrable=True,
        on_kill_action="stop",
        timeout=Code("timedelta(minutes=1)"),
        execution_timeout=Code("timedelta(seconds=3)"),
        retries=0,
    )

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert error["code"] == "OPERATION_TIMEOUT"
    assert error["message"].startswith(EXECUTION_TIMEOUT)
    assert error["cleanup"]["action"] == "rolled_back"
    (entry,) = open_state_store().list_resources(tenant_id=tenant)
    assert entry.status is ResourceStatus.STOPPED


def test_a_blocking_try_at_its_execution_timeout_ends_the_same_way(airflow_env, ecs_env) -> None:
    """Blocking, Airflow's own timer ends the try (AirflowTaskTimeout): the same error."""
    ecs_env.default_script = RUNS_FOREVER
    tenant = "dl-blocking"
    run = _ecs_run(
        airflow_env,
        ecs_env,
        "deadline_blocking",
        tenant_id=tenant,
        deferrable=False,
        timeout=Code("timedelta(hours=1)"),
        # long enough for the launch to finish first (Airflow's timer starts with execute)
        execution_timeout=Code("timedelta(seconds=10)"),
        retries=0,
    )

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("OPERATION_TIMEOUT", "retriable")
    assert error["message"].startswith(EXECUTION_TIMEOUT.replace("(3s)", "(10s)")), error["message"]
    assert error["cleanup"]["action"] == "left_running"
    (arn,) = error["cleanup"]["resources"]
    assert _ecs_task_status(ecs_env, arn) == "RUNNING"


_ENFORCED_DAG = """\
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_compute_provider.operators.ecs import EcsComputeOperator


class AirflowEnforcesTheDeferralTimeout(EcsComputeOperator):
    # dag.test() enforces no trigger timeout: this stands in for an Airflow that does, which
    # resumes the deferred try with next method "__fail__" and the trigger-timeout reason
    # (airflow.models.trigger.TriggerFailureReason.TRIGGER_TIMEOUT) instead of its event.
    def resume_execution(self, next_method, next_kwargs, context):
        return super().resume_execution("__fail__", {{"error": "Trigger timeout"}}, context)


with DAG("deadline_enforced", start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
    AirflowEnforcesTheDeferralTimeout(
        task_id="provision",
        tenant_id="dl-enforced",
        operation="provision",
        cluster={cluster!r},
        task_definition={task_definition!r},
        launch_type="FARGATE",
        network_configuration={network!r},
        deferrable=True,
        poll_interval=0.2,
        timeout=timedelta(seconds=3),
        execution_timeout=timedelta(minutes=10),
        retries=0,
    )
"""


def test_a_resume_with_task_deferral_timeout_ends_the_try_like_its_execution_timeout(
    airflow_env, ecs_env
) -> None:
    """The try resumes with TaskDeferralTimeout and no event: its units come from the ledger, and
    it ends as at its execution_timeout: OPERATION_TIMEOUT, the task left running."""
    ecs_env.default_script = RUNS_FOREVER
    source = _ENFORCED_DAG.format(
        cluster=ecs_env.cluster_name,
        task_definition=ecs_env.task_definition_arn,
        network=ecs_env.network_configuration,
    )

    run = airflow_env.run_dag(source, "deadline_enforced")

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("OPERATION_TIMEOUT", "retriable")
    assert error["message"].startswith("the task's execution_timeout (10m) passed"), error["message"]
    assert error["cleanup"]["action"] == "left_running"
    (arn,) = error["cleanup"]["resources"]
    assert _ecs_task_status(ecs_env, arn) == "RUNNING"
    assert open_state_store().get_tenant("dl-enforced").status is TenantStatus.RETRY_PENDING


# -- a unit pending at the deadline -----------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_an_ecs_task_still_pending_at_the_deadline_is_named_pending(airflow_env, ecs_env, deferrable) -> None:
    """ECS gives no reason while a task is pending: a timeout, and the task is called pending."""
    ecs_env.default_script = HOLD_PENDING
    run = _ecs_run(
        airflow_env,
        ecs_env,
        f"deadline_ecs_pending_{int(deferrable)}",
        tenant_id=f"dl-ecs-pending-{int(deferrable)}",
        deferrable=deferrable,
        timeout=Code("timedelta(seconds=2)"),
        retries=0,
    )

    error = run.xcom("provision", key="compute_error")
    assert error["code"] == "OPERATION_TIMEOUT"
    assert "0 unit(s) left running and 1 still pending" in error["message"]
    assert error["units"]["running"] == []
    assert [u["index"] for u in error["units"]["pending"]] == [0]


@pytest.mark.kube
@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
@pytest.mark.parametrize(
    ("pod", "code", "classification", "reason"),
    [
        ({"script": "waiting:ErrImagePull"}, "IMAGE_NOT_FOUND", "non_retriable", "ErrImagePull"),
        (
            {"container_resources": {"requests": {"cpu": "64", "memory": "32Mi"}}},
            "INSUFFICIENT_CAPACITY",
            "retriable",
            "Unschedulable",
        ),
    ],
    ids=["image-not-found", "unschedulable"],
)
def test_a_pod_stuck_at_the_deadline_ends_the_try_with_its_own_error(
    airflow_env, kube_env, pod, code, classification, reason, deferrable
) -> None:
    """Timeout 4 s, the default grace period (2 minutes) far away: at the deadline the stuck
    pod's own error ends the try, with its classification (a non-retriable one is final although
    retries remain), never a bare OPERATION_TIMEOUT calling the pod running."""
    tenant = f"dl-stuck-{code.lower().replace('_', '-')}-{int(deferrable)}"
    dag_id = f"deadline_stuck_{code.lower()}_{int(deferrable)}"
    source = kube_env.dag(
        dag_id,
        tenant_id=tenant,
        deferrable=deferrable,
        timeout=Code("timedelta(seconds=4)"),
        pending_grace_period=Code("timedelta(minutes=2)"),
        retries=0,
        **pod,
    )
    run = airflow_env.run_dag(source, dag_id)

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == (code, classification)
    assert error["root_cause"]["reason"] == reason
    assert error["units"]["running"] == []
    assert "left running" not in error["message"]
    assert error["cleanup"]["action"] == "rolled_back"
    expected = (
        TenantStatus.RETRY_PENDING if classification == "retriable" else TenantStatus.NEEDS_INVESTIGATION
    )
    assert open_state_store().get_tenant(tenant).status is expected
