"""Chaos: 50 ECS and 50 Kubernetes operations with 20% of their provider requests faulted.

Each provider's operations run as the tasks of one DAG (``dag.test()``: real Airflow, the tasks
one after the other, retries included), mixed as ``scenarios.MIX`` says: successes, units that
keep running, container failures, missing images, partial launches rolled back or retried,
timeouts; deferrable and blocking alternate. The fault proxy between the operators and the
provider throttles, answers 5xx, resets connections (before the request arrives, and after the
work was done but before the answer), and delays, in all 20% of the requests
(``faults.add_chaos``). The retry policy of every task retries transient provider trouble.

Afterwards, for every operation: the outcome its scenario dictates (Airflow's task state, the
XCom result or ``compute_error``, the tenant's state and the try's status in the state store,
which of its units still run), and for all of them together the audit (``audit.py``): every
provider-side task and pod has its ledger row, none is duplicated, none leaked, none lost.

moto plays ECS (the AWS cloud cannot run here) and the node simulator plays the kubelet; the
API servers, Airflow, botocore, the Kubernetes clients and HTTP are real.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from airflow_compute_provider.state.status import OperationStatus
from tests.harness.ecs import CLUSTER_NAME, TASK_FAMILY
from tests.harness.kube import wait_for_quota
from tests.harness.proxy import Counts, FaultProxy
from tests.reliability import scenarios
from tests.reliability.audit import audit as audit_units
from tests.reliability.audit import ecs_inventory, kube_inventory
from tests.reliability.dags import compute_dag
from tests.reliability.faults import add_chaos
from tests.reliability.scenarios import Ended, Op, Scenario
from tests.reliability.tally import TALLY

pytestmark = [pytest.mark.reliability, pytest.mark.airflow]

FAULT_RATE = 0.2


def _ended(op: Op, run: Any, store: Any, units: Sequence[Any]) -> Ended:
    states = run.task_states()

    def xcom(key: str) -> Any:
        try:
            return run.xcom(op.task_id, key=key)
        except KeyError:
            return None

    tenant = store.get_tenant(op.tenant_id)
    tries = [o for o in store.operations(op.tenant_id) if o.execution_id == op.execution_id]
    return Ended(
        task_state=states.get(op.task_id),
        result=xcom("return_value"),
        error=xcom("compute_error"),
        tenant_status=tenant.status if tenant else None,
        last_operation=tries[0].status if tries else None,
        units=[u for u in units if u.exec_key == op.key],
    )


def _verify(
    ops: Sequence[Op], run: Any, store: Any, units: Sequence[Any], provider: str, counts: Counts
) -> None:
    wrong = [problem for op in ops for problem in scenarios.check(op, _ended(op, run, store, units))]
    result = audit_units(units, store.list_resources(), provider=provider)
    TALLY.add(operations=len(ops), faults=sum(counts.faulted.values()))
    result.record(TALLY)
    assert not wrong, "operations that did not end as their scenario dictates:\n" + "\n".join(wrong)
    assert result.clean, result.problems()
    # the audit saw the units of every op whose units are never deleted (Kubernetes deletes the
    # pods of a rollback and of a stuck unit)
    kept = [op for op in ops if op.scenario not in (Scenario.PARTIAL_ROLLBACK, Scenario.IMAGE_MISSING)]
    assert result.units >= sum(op.count for op in kept)
    # the wire really was that bad. Each rule draws from a seeded generator in request order, so
    # the share is nearly fixed per seed: the seeds are ones whose first few hundred draws fault
    # close to the rate (some seeds fall to 13%)
    share = sum(counts.faulted.values()) / counts.total
    assert 0.14 <= share <= 0.26, f"{share:.1%} of {counts.total} requests faulted"
    # every try of every op was finished, none left in progress
    assert not store.list_operations(status=OperationStatus.IN_PROGRESS)


def test_ecs_operations_under_faults_end_as_their_scenarios_dictate(
    airflow_env: Any, ecs_env: Any, ecs_proxied: FaultProxy, state_store: Any
) -> None:
    ops = scenarios.plan("ecs", "chaos-ecs")
    assert len(ops) == 50
    for op in ops:
        scenarios.ecs_setup(op, ecs_env)
    common = {
        "cluster": CLUSTER_NAME,
        "task_definition": TASK_FAMILY,
        "launch_type": "FARGATE",
        "network_configuration": ecs_env.network_configuration,
    }
    source = compute_dag("chaos_ecs", [scenarios.task_of(op, common) for op in ops])
    add_chaos(ecs_proxied, "ecs", rate=FAULT_RATE, seed=1100)

    run = airflow_env.run_dag(source, "chaos_ecs")

    counts = ecs_proxied.counts
    ecs_proxied.reset()  # no more faults: the checks below read moto directly anyway
    _verify(ops, run, state_store, ecs_inventory(ecs_env.ecs, CLUSTER_NAME), "ecs", counts)


@pytest.fixture
def quota_namespaces(kube_env: Any) -> Iterator[list[str]]:
    """Namespaces whose quota admits two pods: one per partial launch that is rolled back."""
    made: list[str] = []
    yield made
    for name in made:
        kube_env.cluster.delete_namespace(name)


def test_kubernetes_operations_under_faults_end_as_their_scenarios_dictate(
    airflow_env: Any, kube_env: Any, kube_proxied: FaultProxy, quota_namespaces: list[str], state_store: Any
) -> None:
    ops = scenarios.plan("kubernetes", "chaos-kube")
    assert len(ops) == 50
    core = kube_env.core
    tasks = []
    for op in ops:
        namespace = kube_env.namespace
        if op.scenario is Scenario.PARTIAL_ROLLBACK:
            namespace = kube_env.cluster.new_namespace("quota")
            quota_namespaces.append(namespace)
            core.create_namespaced_resource_quota(
                namespace, {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": "2"}}}
            )
        elif op.scenario is Scenario.PARTIAL_RETRY_FAILED:
            core.create_namespaced_pod(namespace, scenarios.foreign_pod(op, namespace))
        common = {
            "image": "busybox:1.36",
            "cmds": ["sh", "-c", "true"],
            "container_resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        }
        tasks.append(scenarios.task_of(op, common, namespace=namespace))
    for namespace in quota_namespaces:
        wait_for_quota(core, namespace, "pods")
    source = compute_dag("chaos_kube", tasks)
    add_chaos(kube_proxied, "kubernetes", rate=FAULT_RATE, seed=5500)

    run = airflow_env.run_dag(source, "chaos_kube")

    counts = kube_proxied.counts
    kube_proxied.reset()
    units = kube_inventory(core, [kube_env.namespace, *quota_namespaces])
    _verify(ops, run, state_store, units, "kubernetes", counts)
