"""ComputeErrorBranchOperator and ComputeRetryPolicy in real DAG runs (``dag.test()``).

Most runs use a plain TaskFlow task as the compute task, failing the way a compute operator
does (it pushes its ``ComputeError`` to XCom ``compute_error`` and raises
``ComputeOperationError``), so that any code can be scripted: what is under test is what happens
after the failure (Airflow asking the retry policy, the branch reading the error and following a
route, the watcher leaf keeping the run failed). The last test runs the real EcsComputeOperator
against the moto ECS server (moto stands in for the AWS cloud, which cannot run here) to show the
policy setting ``retries``, and the tenant's state following Airflow's decision.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_compute_provider.state.config import open_state_store
from airflow_compute_provider.state.status import TenantStatus
from tests.harness.airflow_dagrun import DagRunRecord
from tests.harness.airflow_env import AirflowEnv
from tests.harness.ecs import CLUSTER_NAME, TASK_FAMILY
from tests.harness.ecs_script import TaskScript, exited

pytestmark = pytest.mark.airflow

# Each run's dag_id names its scenario; SCRIPT is the code the compute task fails with on each
# try ("ok": succeeds, "plain": a non-compute exception).
DAG_SOURCE = """
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task
from airflow.sdk.exceptions import AirflowException

from airflow_compute_provider.errors import ComputeError, ComputeOperationError
from airflow_compute_provider.operators.base import XCOM_ERROR_KEY
from airflow_compute_provider.operators.branch import ComputeErrorBranchOperator, get_compute_error
from airflow_compute_provider.policy import ComputeRetryPolicy, Retry

SCRIPT = {script!r}
POLICY = ComputeRetryPolicy(
    max_attempts=3, initial_delay=timedelta(0), jitter="none", rules={{"CONFLICT": Retry(max_attempts=2)}}
)

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False):

    @task(retries=2, retry_delay=timedelta(0), retry_policy=POLICY)
    def provision(**context):
        ti = context["ti"]
        outcome = SCRIPT[min(ti.try_number, len(SCRIPT)) - 1]
        if outcome == "ok":
            return "provisioned"
        if outcome == "plain":
            raise RuntimeError("the worker lost its disk")
        error = ComputeError(code=outcome, message=f"try {{ti.try_number}}", attempt=ti.try_number)
        ti.xcom_push(key=XCOM_ERROR_KEY, value=error.to_json_dict())
        raise ComputeOperationError(error)

    @task
    def raise_quota(**context):
        # a TaskFlow handler reads the error it handles
        return get_compute_error(context, "provision").code.value

    @task
    def fix_config():
        return "fixed"

    @task
    def back_off():
        return "backed off"

    @task
    def report_ok():
        return "ok"

    @task
    def triage():
        return "triaged"

    @task(trigger_rule="one_failed")
    def watcher():
        # A handler ran, but the compute failed: the run must end failed.
        raise AirflowException("provision failed; see the branch's handler")

    compute = provision()
    route = ComputeErrorBranchOperator(
        task_id="route",
        compute_task_id="provision",
        routes={{"QUOTA_EXCEEDED": "raise_quota", "non_retriable": "fix_config", "retriable": "back_off"}},
        on_success="report_ok",
        default="triage",
    )
    compute >> route >> [raise_quota(), fix_config(), back_off(), report_ok(), triage()]
    compute >> watcher()
"""

HANDLERS = ["raise_quota", "fix_config", "back_off", "report_ok", "triage"]


def run(airflow_env: AirflowEnv, dag_id: str, script: list[str]) -> DagRunRecord:
    return airflow_env.run_dag(DAG_SOURCE.format(dag_id=dag_id, script=script), dag_id)


def followed(record: DagRunRecord) -> list[str]:
    states = record.task_states()
    assert all(states[h] in ("success", "skipped") for h in HANDLERS), states
    return [h for h in HANDLERS if states[h] == "success"]


def test_quota_exceeded_routes_to_its_handler_and_the_run_stays_failed(airflow_env: AirflowEnv) -> None:
    # try 1: throttled -> the policy retries; try 2: quota -> the policy fails the task at once,
    # although the task's retries would allow a third try
    record = run(airflow_env, "branch_quota", ["PROVIDER_THROTTLED", "QUOTA_EXCEEDED"])
    states = record.task_states()
    assert states["provision"] == "failed"
    assert record.try_numbers()["provision"] == 2
    assert states["route"] == "success"
    assert followed(record) == ["raise_quota"]
    assert record.xcom("raise_quota") == "QUOTA_EXCEEDED"
    assert states["watcher"] == "failed"
    assert record.state() == "failed"
    assert [h.try_number for h in record.history("provision")] == [1]
    assert _retry_reason(record, "provision", 1).startswith(
        "PROVIDER_THROTTLED (retriable): attempt 1 of 3, next in 0s"
    )


def test_success_follows_on_success_and_the_watcher_is_skipped(airflow_env: AirflowEnv) -> None:
    record = run(airflow_env, "branch_success", ["ok"])
    states = record.task_states()
    assert followed(record) == ["report_ok"]
    assert states["watcher"] == "skipped"
    assert record.state() == "success"


@pytest.mark.parametrize(
    ("dag_id", "script", "tries", "handler"),
    [
        # a code rule cuts retries short: CONFLICT gets two tries, then its classification route
        ("branch_conflict", ["CONFLICT", "CONFLICT"], 2, "back_off"),
        # a non-retriable code with no code route: its classification's route
        ("branch_image", ["IMAGE_NOT_FOUND"], 1, "fix_config"),
        # a manual code with no route at all: default
        ("branch_manual", ["PERMISSION_DENIED"], 1, "triage"),
        # not a compute error: the policy defers to Airflow (all retries), no error -> default
        ("branch_plain", ["plain"], 3, "triage"),
    ],
)
def test_failures_route_by_code_then_classification_then_default(
    airflow_env: AirflowEnv, dag_id: str, script: list[str], tries: int, handler: str
) -> None:
    record = run(airflow_env, dag_id, script)
    assert record.try_numbers()["provision"] == tries
    assert record.task_states()["provision"] == "failed"
    assert followed(record) == [handler]
    assert record.state() == "failed"


def _retry_reason(record: DagRunRecord, task_id: str, try_number: int) -> str:
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(TaskInstanceHistory)
            .filter_by(dag_id=record.dag_id, run_id=record.run_id, task_id=task_id, try_number=try_number)
            .one()
        )
        return str(row.retry_reason)


# -- with the real ECS compute operator ------------------------------------------------------------

ECS_DAG_SOURCE = """
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task
from airflow.sdk.exceptions import AirflowException

from airflow_compute_provider.operators.branch import ComputeErrorBranchOperator
from airflow_compute_provider.operators.ecs import EcsComputeOperator
from airflow_compute_provider.policy import ComputeRetryPolicy, Retry

POLICY = ComputeRetryPolicy(
    max_attempts=3,
    initial_delay=timedelta(0),
    jitter="none",
    rules={{"CONTAINER_FAILED": Retry(max_attempts=2)}},
)

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False):
    provision = EcsComputeOperator(
        task_id="provision",
        tenant_id="{tenant}",
        operation="provision",
        cluster={cluster!r},
        task_definition={task_definition!r},
        launch_type="FARGATE",
        network_configuration={network!r},
        poll_interval=0.2,
        retry_delay=timedelta(0),
        retry_policy=POLICY,
    )
    route = ComputeErrorBranchOperator(
        task_id="route",
        compute_task_id="provision",
        routes={{"CONTAINER_FAILED": "inspect_logs"}},
        on_success="report_ok",
        default="triage",
    )

    @task
    def inspect_logs():
        return "inspected"

    @task
    def report_ok():
        return "ok"

    @task
    def triage():
        return "triaged"

    @task(trigger_rule="one_failed")
    def watcher():
        raise AirflowException("provision failed")

    provision >> route >> [inspect_logs(), report_ok(), triage()]
    provision >> watcher()
"""


def test_ecs_container_failures_follow_the_policy_the_tenant_and_the_route(
    airflow_env: AirflowEnv, ecs_env: Any
) -> None:
    """Every task exits 1 (CONTAINER_FAILED): the rule retries once, then fails although the
    task's retries (set from the policy: 2) would allow a third try; the tenant, held for the
    retry in between, ends held for investigation; the branch follows the code's route."""
    ecs_env.default_script = TaskScript(outcome=exited(1))
    tenant = "policy-container"
    source = ECS_DAG_SOURCE.format(
        dag_id="branch_ecs_policy",
        tenant=tenant,
        cluster=CLUSTER_NAME,
        task_definition=TASK_FAMILY,
        network=ecs_env.network_configuration,
    )
    record = airflow_env.run_dag(source, "branch_ecs_policy")

    (provision,) = [t for t in record.task_instances() if t.task_id == "provision"]
    assert (provision.state, provision.try_number, provision.max_tries) == ("failed", 2, 2)
    assert _retry_reason(record, "provision", 1).startswith(
        "CONTAINER_FAILED (non_retriable): attempt 1 of 2, next in 0s; rule CONTAINER_FAILED"
    )
    assert record.xcom("provision", key="compute_error")["code"] == "CONTAINER_FAILED"
    assert followed_ecs(record) == ["inspect_logs"]
    assert record.state() == "failed"
    store = open_state_store()
    assert store.get_tenant(tenant).status is TenantStatus.NEEDS_INVESTIGATION
    assert [op.attempt for op in store.operations(tenant)] == [2, 1]


def followed_ecs(record: DagRunRecord) -> list[str]:
    states = record.task_states()
    return [h for h in ("inspect_logs", "report_ok", "triage") if states[h] == "success"]
