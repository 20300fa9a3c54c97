"""Triggerer restart: on the ``airflow standalone`` stack, the triggerer is SIGKILLed while every
compute operation of a run waits in it, and started again.

The run (``stack_dags/reliability_triggerer_restart.py``) holds deferrable operations on ECS
(moto, through a proxy) and Kubernetes (the local API server and node simulator). Once all of
them are deferred, the triggerer process and its trigger runner are killed (``psutil`` finds
them among the children of ``airflow standalone``, which never restarts a component that died),
and a new ``airflow triggerer`` is started with the stack's environment; it takes over the
orphaned triggers once the dead one's heartbeat is older than its health-check threshold. Only
then are the ECS tasks allowed to finish.

Afterwards: every operation completed (success on its first try), none launched a unit twice (the
provider holds exactly ``count`` units per tenant, the ledger the same), and the one whose unit
never ends timed out at its deadline, not before: the deadline travels with the trigger as an
absolute time and a restart does not move it. The triggerer stays dead until that deadline has
passed, so the restarted trigger fires at once, having seen nothing: the task's error must still
list the unit it left running (the operator describes what the trigger never saw). The stack
stays usable for the tests after this one: the new triggerer runs until the stack stops.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from airflow_compute_provider.state import SqlTenantStateStore
from airflow_compute_provider.state.status import ResourceStatus
from tests.harness.airflow_env import StandaloneHandle
from tests.harness.ecs import CLUSTER_NAME
from tests.harness.ecs_script import RUNS_FOREVER, TaskScript
from tests.harness.proxy import FaultProxy
from tests.reliability.audit import audit, ecs_inventory, kube_inventory
from tests.reliability.stack_dags import reliability_triggerer_restart as dag
from tests.reliability.tally import TALLY
from tests.slow.stack_runs import StackRun, StackWorkflows, parse_time

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.kube]

DAG_FILE = Path(dag.__file__)
TASKS = [*dag.ECS_COUNTS, dag.TIMEOUT_TASK, *dag.KUBE_COUNTS]
#: the new triggerer takes over triggers whose triggerer has been silent this long
TAKEOVER_SECONDS = "5"


def _tenant(task_id: str) -> str:
    return f"{dag.TENANT_PREFIX}-{task_id.replace('_', '-')}"


@pytest.fixture
def workflows(
    airflow_standalone: StandaloneHandle,
    ecs_env: Any,
    kube_env: Any,
    fault_proxy: Callable[[str], FaultProxy],
    tmp_path: Path,
) -> Iterator[StackWorkflows]:
    airflow_standalone.add_dag(DAG_FILE)
    airflow_standalone.client.wait_for_dag(dag.DAG_ID)
    proxy = fault_proxy(ecs_env.moto_url)
    flows = StackWorkflows(airflow_standalone, ecs_env, proxy)
    flows.point_aws_connection_at(proxy.url)
    _write_connection(
        flows,
        {
            "connection_id": "kubernetes_default",
            "conn_type": "kubernetes",
            "extra": json.dumps(
                {"kube_config_path": str(kube_env.cluster.kubeconfig), "namespace": kube_env.namespace}
            ),
        },
    )
    _write_connection(
        flows,
        {
            "connection_id": dag.STATE_CONN_ID,
            "conn_type": "sqlite",
            "extra": json.dumps({"sqlalchemy_url": f"sqlite:///{tmp_path / 'state.db'}"}),
        },
    )
    yield flows
    flows.close()


@pytest.fixture
def store(workflows: StackWorkflows, tmp_path: Path) -> Iterator[SqlTenantStateStore]:
    """The run's tenant state store (its own SQLite file, written by the stack's workers)."""
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


def _triggerers(stack_pid: int) -> list[psutil.Process]:
    """The triggerer process of the stack and everything it started (its trigger runner)."""
    found: list[psutil.Process] = []
    for child in psutil.Process(stack_pid).children(recursive=True):
        try:
            if "triggerer" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    descendants = [d for p in found for d in p.children(recursive=True)]
    return list({p.pid: p for p in [*found, *descendants]}.values())


def _wait_until(check: Callable[[], bool], timeout: float, what: Callable[[], str] | str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.5)


def test_triggerer_killed_while_operations_wait_every_operation_completes_once(
    workflows: StackWorkflows, store: SqlTenantStateStore, ecs_env: Any, kube_env: Any
) -> None:
    stack = workflows.stack.stack
    ecs_env.default_script = RUNS_FOREVER
    network = ecs_env.network_configuration["awsvpcConfiguration"]
    conf = {
        "subnet_id": network["subnets"][0],
        "security_group_id": network["securityGroups"][0],
        "namespace": kube_env.namespace,
    }
    run_id = workflows.client.trigger(dag.DAG_ID, conf=conf)

    def states() -> dict[str, str | None]:
        return {ti["task_id"]: ti["state"] for ti in workflows.client.task_instances(dag.DAG_ID, run_id)}

    _wait_until(
        lambda: set(states().values()) == {"deferred"} and len(states()) == len(TASKS),
        150,
        lambda: f"every task deferred: {states()}",
    )
    assert stack.pid is not None
    old = _triggerers(stack.pid)
    assert old, "no triggerer found under airflow standalone"
    killed_at = datetime.now(UTC)
    for process in old:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(old, timeout=30)
    assert not [p for p in old if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    TALLY.add(crashes=1)
    # nobody watches until the timeout task's deadline has passed: its trigger starts too late
    # to have seen its unit, and must still report it left running, and never the others early
    waiting = StackRun(workflows.client, dag.DAG_ID, run_id, "running", workflows.metadata_url)
    (launched,) = waiting.logged(dag.TIMEOUT_TASK, 1, "compute units launched")
    deadline = parse_time(launched["deadline"])
    _wait_until(lambda: datetime.now(UTC) > deadline, dag.TIMEOUT_SECONDS + 30, "the timeout task's deadline")
    assert set(states().values()) == {"deferred"}, "a task left the triggerer without it"

    new = stack.start_component(
        "triggerer", {"AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": TAKEOVER_SECONDS}
    )
    # the ECS tasks (not the timeout's) may finish now: one more describe running, then exit 0
    finishing = {_tenant(t) for t in dag.ECS_COUNTS}
    for task in ecs_inventory(ecs_env.ecs, CLUSTER_NAME):
        if task.tenant_id in finishing:
            ecs_env.set_script(task.resource_id, TaskScript(pending=0, running=1))
    run = workflows.wait(dag.DAG_ID, run_id, timeout=240)
    assert new.poll() is None, "the new triggerer died"
    # each trigger started again after the kill, in the new triggerer (the killed one's own
    # "starting" line may be lost with it: it died before its log was written out)
    for task in TASKS:
        name = f"trigger {dag.DAG_ID}/{run_id}/{task}/-1/1 (ID "
        started = [
            parse_time(e["timestamp"])
            for e in run.log_events(task, 1)
            if str(e.get("event", "")).startswith(name) and str(e["event"]).endswith("starting")
        ]
        assert started, f"no trigger of {task} ever started"
        assert max(started) > killed_at, (task, started, killed_at)
    TALLY.add(operations=len(TASKS))

    tries = {
        ti["task_id"]: (ti["state"], ti["try_number"])
        for ti in workflows.client.task_instances(dag.DAG_ID, run_id)
    }
    expected = {t: ("success", 1) for t in TASKS}
    expected[dag.TIMEOUT_TASK] = ("failed", 1)
    assert tries == expected
    ecs_units = ecs_inventory(ecs_env.ecs, CLUSTER_NAME)
    kube_units = kube_inventory(kube_env.core, [kube_env.namespace])
    for task, count in {**dag.ECS_COUNTS, **dag.KUBE_COUNTS, dag.TIMEOUT_TASK: 1}.items():
        tenant = _tenant(task)
        units = [u for u in [*ecs_units, *kube_units] if u.tenant_id == tenant]
        assert sorted((u.index, u.generation) for u in units) == [(i, 1) for i in range(count)], (task, units)
        rows = store.list_resources(tenant_id=tenant)
        assert len(rows) == count, (task, rows)
        if task != dag.TIMEOUT_TASK:
            assert {r.status for r in rows} == {ResourceStatus.SUCCEEDED}, (task, rows)
            assert sorted(u["resource_id"] for u in run.xcom(task)["units"]) == sorted(
                u.resource_id for u in units
            )

    # the timeout fired after its deadline, in the new triggerer, and names the unit it left running
    error = run.xcom(dag.TIMEOUT_TASK, key="compute_error")
    assert error["code"] == "OPERATION_TIMEOUT"
    assert parse_time(error["occurred_at"]) >= deadline
    (left,) = [u.resource_id for u in ecs_units if u.tenant_id == _tenant(dag.TIMEOUT_TASK)]
    assert error["cleanup"] == {"action": "left_running", "resources": [left]}
    assert [u["resource_id"] for u in error["units"]["running"] + error["units"]["pending"]] == [left]

    tenants = {_tenant(t) for t in TASKS}
    ledger = [e for e in store.list_resources() if e.tenant_id in tenants]
    for provider, units in (("ecs", ecs_units), ("kubernetes", kube_units)):
        result = audit(units, ledger, provider=provider, tenants=tenants)
        result.record(TALLY)
        assert result.clean, result.problems()
