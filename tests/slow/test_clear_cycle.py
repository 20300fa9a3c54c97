"""A task cleared twice on a real Airflow stack: success; clear -> a try that times out and leaves
its work running; clear -> the next try adopts that work. Counted on the provider.

``airflow standalone`` (scheduler, LocalExecutor workers, triggerer, api-server) runs the DAGs of
``tests/slow/dags/slow_clear_cycle.py``; the test triggers a run and clears its task through the
public REST API (``clearTaskInstances``), so Airflow's try number goes 1, 2, 3 as a real clear
bumps it (``dag.test()`` never does; ``tests/integration/test_tries_*.py`` cover the same cycle
there). What must hold, on the provider:

    try 1   launches generation 1 of both units; they succeed
    try 2   (first clear) the newest earlier try succeeded, so it starts fresh: generation 2 of
            both units, which outlive the try's timeout: OPERATION_TIMEOUT, left running
    try 3   (second clear) the newest earlier try failed: it adopts the two running tasks and
            launches nothing. Two protections keep it so, each enough alone: the newest-try
            rule (a fresh start only after a successful newest try; mutation ``newest-try``)
            and a fresh start's live-unit guard (``fresh-start-live``). With both removed, try 3
            saw try 1's success and launched generation 3 beside the running generation 2
            (6 units for 2), and this test fails.

ECS is the test's moto (it stands in for the AWS cloud), deferrable, so the stack's triggerer
waits; Kubernetes is the test cluster with the node simulator standing in for a kubelet,
blocking, so the worker waits. The test decides when the work ends: ECS tasks by their
DescribeTasks script, pods by their ``sim.compute.test/script`` annotation. Each DAG has its
own tenant and its own connection (removed afterwards), so the other slow tests see the shared
stack as they left it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from airflow_compute_provider.hooks.ecs_tags import GENERATION_TAG, TENANT_ID_TAG, UNIT_INDEX_TAG
from airflow_compute_provider.hooks.kubernetes_pods import (
    LABEL_GENERATION,
    LABEL_TENANT_ID,
    LABEL_UNIT_INDEX,
    label_value,
)
from airflow_compute_provider.state.status import TenantStatus
from tests.harness.airflow_env import StandaloneHandle
from tests.harness.ecs import CLUSTER_NAME, FAKE_CREDENTIALS, REGION, EcsEnv
from tests.harness.ecs_script import RUNS_FOREVER, TaskScript
from tests.harness.kubecluster import KubeCluster
from tests.harness.nodesim import SCRIPT_ANNOTATION
from tests.slow.stack_runs import DAGS, StackRun

pytestmark = pytest.mark.slow

ECS_DAG = "slow_clear_cycle_ecs"
KUBE_DAG = "slow_clear_cycle_kube"
ECS_TENANT = "slow-clear-ecs"
KUBE_TENANT = "slow-clear-kube"
TASK = "provision"
LAUNCHED = "compute units launched"  # the operator's log line: adopted and launched ids
#: a pod rescripted to this ends at the simulator's next pass (it has run longer already)
FINISH_NOW = "run:0s,exit:0"
#: (unit index, generation, status) of every unit the provider has for a tenant
Generations = list[tuple[int, int, str]]


@pytest.fixture(scope="module")
def stack(airflow_standalone: StandaloneHandle) -> StandaloneHandle:
    airflow_standalone.add_dag(DAGS / "slow_clear_cycle.py")
    for dag_id in (ECS_DAG, KUBE_DAG):
        airflow_standalone.client.wait_for_dag(dag_id)
    return airflow_standalone


class ClearCycle:
    """One DAG run of the stack, driven over REST: trigger, clear, wait for a given try."""

    def __init__(self, stack: StandaloneHandle, dag_id: str) -> None:
        self.client = stack.client
        self.dag_id = dag_id
        self.metadata_url = stack.stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        self.home = stack.stack.home
        self.run_id = ""
        self._connections: list[str] = []

    def write_connection(self, conn_id: str, conn_type: str, extra: str, **fields: str) -> None:
        entity = {"connection_id": conn_id, "conn_type": conn_type, "extra": extra, **fields}
        action = {"action": "create", "entities": [entity], "action_on_existence": "overwrite"}
        answer = self.client.request("PATCH", "/connections", json={"actions": [action]})
        if answer["create"]["errors"]:
            raise RuntimeError(f"could not write {conn_id}: {answer['create']['errors']}")
        self._connections.append(conn_id)

    def start(self, conf: dict[str, Any]) -> None:
        self.run_id = self.client.trigger(self.dag_id, conf=conf)

    def clear(self) -> None:
        """What "Clear" on the task in the UI does: the task and its run go back to the scheduler."""
        self.client.request(
            "POST",
            f"/dags/{self.dag_id}/clearTaskInstances",
            json={
                "dry_run": False,
                "dag_run_id": self.run_id,
                "task_ids": [TASK],
                "only_failed": False,
                "reset_dag_runs": True,
            },
        )

    def finish_try(
        self, try_number: int, *, each_poll: Callable[[], object] | None = None, timeout: float = 240.0
    ) -> StackRun:
        """Wait until try ``try_number`` of the task ended and the run with it."""
        deadline = time.monotonic() + timeout
        seen = "nothing read yet"
        while True:
            try:
                instance = self.client.request(
                    "GET", f"/dags/{self.dag_id}/dagRuns/{self.run_id}/taskInstances/{TASK}"
                )
                run = self.client.dag_run(self.dag_id, self.run_id)
            except requests.Timeout:
                # The api-server of a stack on a loaded machine has been seen to answer nothing
                # for 30 s; the try goes on meanwhile, so only the deadline below ends the wait.
                instance = run = None
            if instance is not None and run is not None:
                seen = f"task: try {instance['try_number']} {instance['state']}; run: {run['state']}"
                ended = instance["try_number"] == try_number and instance["state"] in ("success", "failed")
                if ended and run["state"] in ("success", "failed"):
                    return StackRun(self.client, self.dag_id, self.run_id, run["state"], self.metadata_url)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.dag_id}: try {try_number} not over after {timeout:.0f}s ({seen})")
            if each_poll is not None:
                each_poll()
            time.sleep(1.0)

    def launch_logged(self, try_number: int) -> dict[str, Any] | None:
        """The try's ``compute units launched`` line, once it wrote it."""
        run = StackRun(self.client, self.dag_id, self.run_id, "running", self.metadata_url)
        try:
            events = run.logged(TASK, try_number, LAUNCHED)
        except (RuntimeError, requests.Timeout):  # no log for that try yet, or a stalled api-server
            return None
        return events[0] if events else None

    def tries(self, run: StackRun) -> list[tuple[int, str]]:
        return [(int(t["try_number"]), t["state"]) for t in run.tries(TASK)]

    def close(self) -> None:
        for conn_id in self._connections:
            self.client.request("DELETE", f"/connections/{conn_id}")


def store_tries(cycle: ClearCycle, tenant: str) -> list[tuple[int, int | None, str, str | None]]:
    """The store's tries of the tenant, newest first: attempt, Airflow's try number, status,
    error code. The stack's workers write the SQLite store of its home."""
    from airflow_compute_provider.state.sql import SqlTenantStateStore

    store = SqlTenantStateStore(f"sqlite:///{cycle.home}/compute_state.db")
    try:
        tenant_row = store.get_tenant(tenant)
        assert tenant_row is not None
        assert tenant_row.status is TenantStatus.READY, tenant_row
        return [
            (op.attempt, op.airflow_try_number, op.status.value, op.error_code and op.error_code.value)
            for op in store.operations(tenant)
        ]
    finally:
        store.close()


# -- ECS, deferrable ---------------------------------------------------------------------------


@pytest.fixture
def ecs_cycle(stack: StandaloneHandle, ecs_env: EcsEnv) -> Iterator[ClearCycle]:
    cycle = ClearCycle(stack, ECS_DAG)
    cycle.write_connection(
        "clear_cycle_aws",
        "aws",
        json.dumps({"endpoint_url": ecs_env.moto_url, "region_name": REGION}),
        login=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        password=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    yield cycle
    cycle.close()


def ecs_generations(ecs_env: EcsEnv) -> tuple[Generations, dict[int, list[str]]]:
    """The tenant's ECS tasks, running or stopped: (unit, generation, lastStatus), and the task
    ARNs of each generation. Read from moto directly; a DescribeTasks advances a task's script,
    so the test reads only when no phase can change (every task stopped or running for good)."""
    arns = [
        arn
        for desired in ("RUNNING", "STOPPED")
        for arn in ecs_env.ecs.list_tasks(cluster=CLUSTER_NAME, desiredStatus=desired)["taskArns"]
    ]
    if not arns:
        return [], {}
    described = ecs_env.ecs.describe_tasks(cluster=CLUSTER_NAME, tasks=arns, include=["TAGS"])["tasks"]
    units: Generations = []
    by_generation: dict[int, list[str]] = {}
    for task in described:
        tags = {t["key"]: t["value"] for t in task.get("tags", [])}
        if tags.get(TENANT_ID_TAG) != ECS_TENANT:
            continue
        generation = int(tags[GENERATION_TAG])
        units.append((int(tags[UNIT_INDEX_TAG]), generation, task["lastStatus"]))
        by_generation.setdefault(generation, []).append(task["taskArn"])
    return sorted(units), by_generation


def test_ecs_deferrable_second_clear_adopts_the_timed_out_trys_tasks(
    ecs_cycle: ClearCycle, ecs_env: EcsEnv
) -> None:
    network = ecs_env.network_configuration["awsvpcConfiguration"]
    ecs_cycle.start({"subnet_id": network["subnets"][0], "security_group_id": network["securityGroups"][0]})

    # try 1: both tasks run and exit 0 (the default script)
    first = ecs_cycle.finish_try(1)
    assert first.state == "success", first.xcom(TASK, key="compute_error")
    assert ecs_generations(ecs_env)[0] == [(0, 1, "STOPPED"), (1, 1, "STOPPED")]

    # try 2: a fresh start whose tasks outlive the try
    ecs_env.default_script = RUNS_FOREVER
    ecs_cycle.clear()
    second = ecs_cycle.finish_try(2)
    assert second.state == "failed"
    error = second.xcom(TASK, key="compute_error")
    assert (error["code"], error["cleanup"]["action"]) == ("OPERATION_TIMEOUT", "left_running")
    units, by_generation = ecs_generations(ecs_env)
    assert units == [(0, 1, "STOPPED"), (0, 2, "RUNNING"), (1, 1, "STOPPED"), (1, 2, "RUNNING")]
    left_running = sorted(by_generation[2])

    # try 3: adopts them; only once it has may they finish (a few more describes each)
    finishing: list[str] = []

    def finish_once_adopted() -> None:
        if not finishing and ecs_cycle.launch_logged(3) is not None:
            for arn in left_running:
                ecs_env.set_script(arn, TaskScript(pending=0, running=2))
            finishing.extend(left_running)

    ecs_cycle.clear()
    third = ecs_cycle.finish_try(3, each_poll=finish_once_adopted)

    assert ecs_generations(ecs_env)[0] == [
        (0, 1, "STOPPED"),
        (0, 2, "STOPPED"),
        (1, 1, "STOPPED"),
        (1, 2, "STOPPED"),
    ], "one generation per clear that starts fresh, no third"
    assert third.state == "success", third.xcom(TASK, key="compute_error")
    launch = third.logged(TASK, 3, LAUNCHED)[0]
    assert (sorted(launch["adopted"]), launch["launched"]) == (left_running, [])
    assert ecs_cycle.tries(third) == [(1, "success"), (2, "failed"), (3, "success")]
    # every try deferred to the stack's triggerer
    for try_number in (1, 2, 3):
        assert third.logged(TASK, try_number, "Pausing task as DEFERRED. "), f"try {try_number}"
    assert store_tries(ecs_cycle, ECS_TENANT) == [
        (3, 3, "succeeded", None),
        (2, 2, "failed", "OPERATION_TIMEOUT"),
        (1, 1, "succeeded", None),
    ]


# -- Kubernetes, blocking ----------------------------------------------------------------------


@pytest.fixture
def kube_cycle(
    stack: StandaloneHandle, kube_cluster: KubeCluster, kube_namespace: str, node_simulator: Any
) -> Iterator[ClearCycle]:
    cycle = ClearCycle(stack, KUBE_DAG)
    cycle.write_connection(
        "clear_cycle_kube",
        "kubernetes",
        json.dumps({"kube_config_path": str(kube_cluster.kubeconfig), "namespace": kube_namespace}),
    )
    yield cycle
    cycle.close()


def kube_pods(core: Any, namespace: str) -> list[Any]:
    selector = f"{LABEL_TENANT_ID}={label_value(KUBE_TENANT)}"
    pods: list[Any] = core.list_namespaced_pod(namespace, label_selector=selector).items
    return pods


def kube_generations(core: Any, namespace: str) -> Generations:
    return sorted(
        (int(p.metadata.labels[LABEL_UNIT_INDEX]), int(p.metadata.labels[LABEL_GENERATION]), p.status.phase)
        for p in kube_pods(core, namespace)
    )


def finish_pods(core: Any, namespace: str, names: list[str]) -> None:
    """What the pods' containers do next: exit 0 now (the node simulator reads the annotation
    on every pass)."""
    patch = {"metadata": {"annotations": {SCRIPT_ANNOTATION: FINISH_NOW}}}
    for name in names:
        core.patch_namespaced_pod(name, namespace, patch)


def test_kubernetes_blocking_second_clear_adopts_the_timed_out_trys_pods(
    kube_cycle: ClearCycle, kube_namespace: str, kube_core: Any
) -> None:
    def pods_of(generation: int) -> list[str]:
        return sorted(
            p.metadata.name
            for p in kube_pods(kube_core, kube_namespace)
            if p.metadata.labels[LABEL_GENERATION] == str(generation)
        )

    kube_cycle.start({"namespace": kube_namespace})

    # try 1: the pods run until the test lets them exit 0
    finished: set[str] = set()

    def finish_generation_1() -> None:
        new = [name for name in pods_of(1) if name not in finished]
        finish_pods(kube_core, kube_namespace, new)
        finished.update(new)

    first = kube_cycle.finish_try(1, each_poll=finish_generation_1)
    assert first.state == "success", first.xcom(TASK, key="compute_error")
    assert kube_generations(kube_core, kube_namespace) == [(0, 1, "Succeeded"), (1, 1, "Succeeded")]

    # try 2: a fresh start whose pods outlive the try
    kube_cycle.clear()
    second = kube_cycle.finish_try(2)
    assert second.state == "failed"
    error = second.xcom(TASK, key="compute_error")
    assert (error["code"], error["cleanup"]["action"]) == ("OPERATION_TIMEOUT", "left_running")
    assert kube_generations(kube_core, kube_namespace) == [
        (0, 1, "Succeeded"),
        (0, 2, "Running"),
        (1, 1, "Succeeded"),
        (1, 2, "Running"),
    ]
    left_running = pods_of(2)

    # try 3: adopts them; only once it has may they finish
    finishing: list[str] = []

    def finish_once_adopted() -> None:
        if not finishing and kube_cycle.launch_logged(3) is not None:
            finish_pods(kube_core, kube_namespace, left_running)
            finishing.extend(left_running)

    kube_cycle.clear()
    third = kube_cycle.finish_try(3, each_poll=finish_once_adopted)

    assert kube_generations(kube_core, kube_namespace) == [
        (0, 1, "Succeeded"),
        (0, 2, "Succeeded"),
        (1, 1, "Succeeded"),
        (1, 2, "Succeeded"),
    ], "one generation per clear that starts fresh, no third"
    assert third.state == "success", third.xcom(TASK, key="compute_error")
    launch = third.logged(TASK, 3, LAUNCHED)[0]
    assert (sorted(launch["adopted"]), launch["launched"]) == (left_running, [])
    assert kube_cycle.tries(third) == [(1, "success"), (2, "failed"), (3, "success")]
    assert store_tries(kube_cycle, KUBE_TENANT) == [
        (3, 3, "succeeded", None),
        (2, 2, "failed", "OPERATION_TIMEOUT"),
        (1, 1, "succeeded", None),
    ]
