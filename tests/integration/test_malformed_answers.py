"""One malformed 200 answer stays one unit's refusal; and a deferred try survives a malformed
trigger event.

The malformed answers are made on the wire: the fault proxy forwards the request (moto or the
API server does the work) and rewrites the body it answers with (``proxy_faults.Rewrite``). An
ECS RunTask answer whose task has no ``taskArn``, a pod read answering an object with no
metadata: the other units of the launch keep their ids, and the malformed one is refused with a
ComputeError that says what was wrong, never an exception out of the launch.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_compute_provider.errors import ErrorCode
from airflow_compute_provider.hooks.base import ExecutionRef, LaunchPlan, UnitLaunch
from airflow_compute_provider.hooks.ecs import EcsComputeHook
from airflow_compute_provider.hooks.kubernetes import KubernetesComputeHook
from airflow_compute_provider.state.config import open_state_store
from airflow_compute_provider.state.status import ResourceStatus
from tests.harness.ecs_script import RUNS_FOREVER
from tests.harness.kubecluster import KubeCluster
from tests.harness.nodesim import SCRIPT_ANNOTATION
from tests.harness.proxy import FaultProxy
from tests.harness.proxy_faults import Rewrite

EXECUTION = ExecutionRef("tenant-m", "dag_m:manual__2026-01-01T00:00:00+00:00:task:-1")


def _without_task_arn(body: bytes) -> bytes:
    answer = json.loads(body)
    for task in answer.get("tasks") or []:
        task.pop("taskArn", None)
    return json.dumps(answer).encode()


def test_an_ecs_answer_without_a_task_arn_refuses_only_its_own_unit(ecs_env: Any, fault_proxy: Any) -> None:
    proxy = fault_proxy(ecs_env.moto_url)
    ecs_env.route_through(proxy.url)
    ecs_env.default_script = RUNS_FOREVER
    proxy.add_rule(Rewrite(_without_task_arn), operation="RunTask", times=1)
    hook = EcsComputeHook(
        cluster=ecs_env.cluster_name,
        botocore_config={"retries": {"total_max_attempts": 1}},
        max_launch_concurrency=1,  # one RunTask after another: the first answer is the bad one
    )
    plan = LaunchPlan(
        execution=EXECUTION,
        units=[UnitLaunch(index=i, generation=1) for i in range(3)],
        request={
            "taskDefinition": ecs_env.task_definition_arn,
            "launchType": "FARGATE",
            "networkConfiguration": ecs_env.network_configuration,
        },
        operation="provision",
    )

    result = hook.launch(plan)

    assert proxy.counts["RunTask"] == 3
    assert sorted(u.index for u in result.launched) == [1, 2]
    assert all(u.resource_id.startswith("arn:aws:ecs:") for u in result.launched)
    ((unit, error),) = result.refused
    assert unit == UnitLaunch(index=0, generation=1)
    assert error.code is ErrorCode.UNKNOWN_PROVIDER_ERROR
    assert error.root_cause.reason == "malformed_answer"
    assert "no taskArn" in error.message
    # the task did start on ECS: the refusal says so, and the next look finds it by its tags
    assert "may have started" in error.message
    assert sorted(u.index for u in hook.find(EXECUTION)) == [0, 1, 2]


@pytest.mark.airflow
def test_ecs_operator_claims_the_unit_whose_answer_was_malformed(
    airflow_env: Any, ecs_env: Any, fault_proxy: Any
) -> None:
    """End to end: the try looks on the provider for every refused unit, finds the task the
    malformed answer hid, and adopts it; two tasks for two units, and the run succeeds."""
    from tests.integration.ecs_dags import ecs_dag

    proxy = fault_proxy(ecs_env.moto_url)
    ecs_env.route_through(proxy.url)
    proxy.add_rule(Rewrite(_without_task_arn), operation="RunTask", times=1)
    source = ecs_dag(
        "malformed_run_task",
        network_configuration=ecs_env.network_configuration,
        tenant_id="malformed",
        count=2,
        retries=0,
    )

    run = airflow_env.run_dag(source, "malformed_run_task")

    assert run.state() == "success", run.xcom("provision", key="compute_error")
    assert proxy.counts["RunTask"] == 2
    entries = open_state_store().list_resources(tenant_id="malformed")
    assert [(e.unit_index, e.status) for e in entries] == [
        (0, ResourceStatus.SUCCEEDED),
        (1, ResourceStatus.SUCCEEDED),
    ]
    assert all(e.resource_id for e in entries)


@pytest.mark.kube
def test_a_pod_read_without_metadata_refuses_only_its_own_unit(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    node_simulator: Any,
    fault_proxy: Callable[[str], FaultProxy],
    tmp_path: Path,
) -> None:
    """Unit 0's pod exists already, so its create meets 409 and the hook reads the pod to see
    whose it is: that read answers a pod with no metadata."""
    proxy = fault_proxy(kube_cluster.server)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": proxy.url}}],
        "users": [{"name": "u", "user": {"token": kube_cluster.token}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path = tmp_path / "proxied-kubeconfig"
    path.write_text(json.dumps(config))
    hook = KubernetesComputeHook(namespace=kube_namespace, config_file=str(path))
    execution = ExecutionRef("tenant-m", f"dag_m:manual__2026-01-01:task:{secrets.token_hex(4)}")
    template = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"annotations": {SCRIPT_ANNOTATION: "run:forever"}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ]
        },
    }

    def plan(indexes: list[int]) -> LaunchPlan:
        units = [UnitLaunch(i, 1) for i in indexes]
        return LaunchPlan(execution=execution, units=units, request=template, operation="provision")

    (first,) = hook.launch(plan([0])).launched
    proxy.add_rule(
        Rewrite(lambda _: b'{"kind": "Pod", "apiVersion": "v1"}'),
        method="GET",
        path=rf"/pods/{first.resource_id}$",
        times=1,
    )

    result = hook.launch(plan([0, 1, 2]))

    assert sorted(u.index for u in result.launched) == [1, 2]
    ((unit, error),) = result.refused
    assert unit == UnitLaunch(0, 1)
    assert error.code is ErrorCode.UNKNOWN_PROVIDER_ERROR
    assert error.root_cause.resource_id == first.resource_id
    assert "no pod metadata" in error.message


_MALFORMED_EVENT_DAG = """\
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_compute_provider.operators.ecs import EcsComputeOperator


class EventWithoutResume(EcsComputeOperator):
    # Stands in for a trigger that broke its contract (ours never does): the event that
    # resumes the try has lost its "resume" part.
    def execute_complete(self, context, event, **kwargs):
        return super().execute_complete(context, {{"kind": event["kind"]}}, **kwargs)


with DAG("malformed_event", start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
    EventWithoutResume(
        task_id="provision",
        tenant_id="malformed-event",
        operation="provision",
        cluster={cluster!r},
        task_definition={task_definition!r},
        launch_type="FARGATE",
        network_configuration={network!r},
        deferrable=True,
        poll_interval=0.2,
        count=2,
        retries=0,
    )
"""


@pytest.mark.airflow
def test_a_trigger_event_without_its_resume_part_settles_from_the_ledger(
    airflow_env: Any, ecs_env: Any
) -> None:
    """Both tasks exit 0: the resumed try reads its units from the ledger, asks ECS once,
    and succeeds, rather than failing on a KeyError outside its own failure handling."""
    source = _MALFORMED_EVENT_DAG.format(
        cluster=ecs_env.cluster_name,
        task_definition=ecs_env.task_definition_arn,
        network=ecs_env.network_configuration,
    )

    run = airflow_env.run_dag(source, "malformed_event")

    assert run.state() == "success", run.xcom("provision", key="compute_error")
    result = run.xcom("provision")
    assert [(u["index"], u["status"]) for u in result["units"]] == [(0, "succeeded"), (1, "succeeded")]
    assert [e.status for e in open_state_store().list_resources(tenant_id="malformed-event")] == [
        ResourceStatus.SUCCEEDED,
        ResourceStatus.SUCCEEDED,
    ]
