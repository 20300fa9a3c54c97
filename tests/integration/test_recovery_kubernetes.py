"""Recovery on Kubernetes end to end: the compute operator leaves loose ends through real Airflow
(``dag.test()``), and the maintenance DAG built by ``create_maintenance_dag`` follows them to the
end against the real API server, with the node simulator in the kubelet's place and the fault
proxy on the wire.

Nothing is mocked: pods are created, refused by a real ResourceQuota, scheduled and deleted by
the real control plane; the simulator writes the statuses a kubelet would, following each pod's
``sim.compute.test/script`` annotation (a test changes what a running pod does by patching it).
Each test has a tenant state store of its own behind ``AIRFLOW_CONN_COMPUTE_STATE_DEFAULT``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.hooks.base import ExecutionRef, LaunchPlan, UnitLaunch
from airflow_compute_provider.hooks.kubernetes import KubernetesComputeHook
from airflow_compute_provider.plugins.summary import health_summary
from airflow_compute_provider.state import ResourceUpdate, SqlTenantStateStore
from airflow_compute_provider.state.status import (
    OperationStatus,
    ResourceStatus,
    TenantEvent,
    TenantStatus,
)
from tests.harness.kube import wait_for_pod
from tests.harness.nodesim import SCRIPT_ANNOTATION
from tests.harness.proxy import FaultProxy
from tests.harness.proxy_faults import kube_unavailable
from tests.integration.kubernetes_dags import Code, KubeEnv

pytestmark = [pytest.mark.kube, pytest.mark.airflow]

_MAINTENANCE = """\
from datetime import timedelta

from airflow_compute_provider.dags import create_maintenance_dag

dag = create_maintenance_dag({dag_id!r}, schedule=None, {arguments})
"""


def _run_compute(airflow_env: Any, kube_env: KubeEnv, dag_id: str, **kwargs: Any) -> Any:
    return airflow_env.run_dag(kube_env.dag(dag_id, **kwargs), dag_id)


def _maintain(airflow_env: Any, dag_id: str, **arguments: Any) -> Any:
    arguments.setdefault("cleanup_backoff", Code("timedelta(seconds=0.05)"))
    text = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    return airflow_env.run_dag(_MAINTENANCE.format(dag_id=dag_id, arguments=text), dag_id)


def _phase(pod: Any) -> str:
    return str(pod.status.phase)


# -- timed out, given up, finished later -----------------------------------------------------------


def test_timed_out_pod_that_later_succeeds_is_recorded_and_frees_the_tenant(
    airflow_env, kube_env, state_store
) -> None:
    run = _run_compute(
        airflow_env,
        kube_env,
        "krec_timeout",
        tenant_id="krec-timeout",
        script="run:forever",
        timeout=Code("timedelta(seconds=2)"),
    )
    assert run.state() == "failed", "no retry: the workflow gave up"
    assert run.xcom("provision", key="compute_error")["code"] == "OPERATION_TIMEOUT"
    assert state_store.get_tenant("krec-timeout").status is TenantStatus.RETRY_PENDING
    [pod] = kube_env.pods_of("krec-timeout")
    assert pod.metadata.deletion_timestamp is None, "a timeout leaves the work running"
    # (Pending at worst when the try gave up on a busy machine; it runs on all the same.)
    wait_for_pod(kube_env.core, kube_env.namespace, pod.metadata.name, lambda p: _phase(p) == "Running")

    # A run limited to ECS leaves Kubernetes work alone.
    other = _maintain(airflow_env, "krec_timeout_ecs_only", provider="ecs")
    assert other.state() == "success"
    assert other.xcom("reconcile")["summary"]["operations_reconciled"] == 0
    assert state_store.list_operations(tenant_id="krec-timeout")[0].eventual_status is None

    # The work finishes, long after the try gave up: the pod's script now ends with exit 0.
    name = pod.metadata.name
    kube_env.core.patch_namespaced_pod(
        name, kube_env.namespace, {"metadata": {"annotations": {SCRIPT_ANNOTATION: "exit:0"}}}
    )
    wait_for_pod(kube_env.core, kube_env.namespace, name, lambda p: _phase(p) == "Succeeded")

    later = _maintain(airflow_env, "krec_timeout_maint", provider="kubernetes")

    assert later.state() == "success"
    assert later.xcom("reconcile")["summary"]["operations_reconciled"] == 1
    [op] = state_store.list_operations(tenant_id="krec-timeout")
    assert (op.status, op.error_code.value) == (OperationStatus.FAILED, "OPERATION_TIMEOUT")
    assert (op.eventual_status, op.eventual_error) == (OperationStatus.SUCCEEDED, None)
    [entry] = state_store.list_resources(tenant_id="krec-timeout")
    assert (entry.status, entry.resource_id) == (ResourceStatus.SUCCEEDED, name)
    assert state_store.get_tenant("krec-timeout").status is TenantStatus.READY
    move = state_store.transitions("krec-timeout")[0]
    assert (move.from_status, move.to_status) == (TenantStatus.RETRY_PENDING, TenantStatus.READY)
    assert "eventually succeeded" in (move.note or "")


def test_timed_out_pod_that_later_fails_for_good_holds_the_tenant_for_investigation(
    airflow_env, kube_env, state_store
) -> None:
    run = _run_compute(
        airflow_env,
        kube_env,
        "krec_timeout_fail",
        tenant_id="krec-timeout-fail",
        script="run:forever",
        timeout=Code("timedelta(seconds=2)"),
    )
    assert run.state() == "failed"
    [pod] = kube_env.pods_of("krec-timeout-fail")
    name = pod.metadata.name
    kube_env.core.patch_namespaced_pod(
        name,
        kube_env.namespace,
        {"metadata": {"annotations": {SCRIPT_ANNOTATION: "exit:137,reason:OOMKilled"}}},
    )
    wait_for_pod(kube_env.core, kube_env.namespace, name, lambda p: _phase(p) == "Failed")

    later = _maintain(airflow_env, "krec_timeout_fail_maint", tenant_id="krec-timeout-fail")

    assert later.state() == "success"
    [op] = state_store.list_operations(tenant_id="krec-timeout-fail")
    assert op.eventual_status is OperationStatus.FAILED
    assert (op.eventual_error.code, op.eventual_error.root_cause.exit_code) == (ErrorCode.OUT_OF_MEMORY, 137)
    assert op.eventual_error.tenant_id == "krec-timeout-fail"
    [entry] = state_store.list_resources(tenant_id="krec-timeout-fail")
    assert entry.status is ResourceStatus.FAILED
    # No try is coming (the workflow gave up) and no retry fixes an OOM: held for a human, the
    # eventual error its last.
    tenant = state_store.get_tenant("krec-timeout-fail")
    assert (tenant.status, tenant.held, tenant.attempt) == (TenantStatus.NEEDS_INVESTIGATION, False, 1)
    move = state_store.transitions("krec-timeout-fail")[0]
    assert (move.event, move.from_status) == (TenantEvent.FINISH, TenantStatus.RETRY_PENDING)
    assert (move.note or "").startswith("compute maintenance: OUT_OF_MEMORY (non_retriable)")
    flagged = later.xcom("reconcile")["tenants_needing_investigation"]
    assert "OUT_OF_MEMORY" in flagged["krec-timeout-fail"]
    page = health_summary(state_store, now=datetime.now(UTC), window=timedelta(hours=1))
    [shown] = [t for t in page["tenants"] if t["tenant_id"] == "krec-timeout-fail"]
    assert (shown["status"], shown["last_error"]["code"]) == ("needs_investigation", "OUT_OF_MEMORY")


# -- a rollback whose delete failed ----------------------------------------------------------------


def test_a_rollback_whose_delete_failed_is_cleaned_by_the_next_maintenance_run(
    airflow_env, kube_env, fault_proxy: Callable[[str], FaultProxy], state_store
) -> None:
    proxy = fault_proxy(kube_env.cluster.server)
    kube_env.route_through(proxy.url)
    kube_env.set_quota(pods=2)  # the third pod is refused: a partial launch, rolled back
    proxy.add_rule(kube_unavailable(), method="DELETE", path=r"/pods/")  # every delete fails

    run = _run_compute(
        airflow_env, kube_env, "krec_rollback", tenant_id="krec-rollback", count=3, script="run:forever"
    )

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["cleanup"]["action"]) == ("CLEANUP_FAILED", "marked_for_cleanup")
    pending = state_store.list_resources(tenant_id="krec-rollback", status=ResourceStatus.PENDING_CLEANUP)
    assert len(pending) == 2
    assert sorted(e.resource_id for e in pending) == sorted(error["cleanup"]["resources"])
    assert len(kube_env.live_pods_of("krec-rollback")) == 2

    proxy.reset()  # the API server answers deletes again
    deletes_before = proxy.count(method="DELETE")
    cleaning = _maintain(airflow_env, "krec_rollback_maint", tenant_id="krec-rollback")

    assert cleaning.state() == "success"
    summary = cleaning.xcom("reconcile")["summary"]
    assert (summary["resources_cleaned"], summary["resources_pending"]) == (2, 0)
    assert proxy.count(method="DELETE") - deletes_before == 2
    ledger = state_store.list_resources(tenant_id="krec-rollback")
    # The two stopped units, and the refused one: the reconciler looked it up on the provider
    # (a refusal may have started its unit), found nothing, and closed its row with its error.
    assert sorted(e.status.value for e in ledger) == ["cleaned", "cleaned", "cleaned"]
    [refused] = [e for e in ledger if not e.resource_id]
    assert refused.last_error is not None
    assert refused.last_error.code.value == "QUOTA_EXCEEDED"
    kube_env.wait_until_gone("krec-rollback")


# -- never a decoy ----------------------------------------------------------------------------------


def test_cleanup_never_touches_a_pod_whose_labels_name_another_tenant(
    airflow_env, kube_env, state_store
) -> None:
    hook = KubernetesComputeHook(namespace=kube_env.namespace)
    ours = ExecutionRef("krec-decoy", "maintenance:decoy:1")
    # Another tenant with a similar name, the same execution id and the same unit numbers.
    theirs = ExecutionRef("krec-decoy-2", "maintenance:decoy:1")
    [own] = hook.launch(_plan(ours, [0])).launched
    [decoy] = hook.launch(_plan(theirs, [1])).launched
    # The ledger says unit 1 of our execution is the decoy's pod (a wrong row): refused.
    _ledger_left_pending(state_store, hook, ours, {0: own.resource_id, 1: decoy.resource_id})

    run = _maintain(airflow_env, "krec_decoy_maint")

    assert run.state() == "failed"
    assert run.xcom("reconcile", key="compute_error")["code"] == "CLEANUP_FAILED"
    by_unit = {e.unit_index: e for e in state_store.list_resources(tenant_id="krec-decoy")}
    assert by_unit[0].status is ResourceStatus.CLEANED
    assert by_unit[1].status is ResourceStatus.PENDING_CLEANUP
    assert by_unit[1].last_error.root_cause.reason == "identity_mismatch"
    kube_env.wait_until_gone("krec-decoy")
    [survivor] = kube_env.pods_of("krec-decoy-2")
    assert survivor.metadata.name == decoy.resource_id
    assert survivor.metadata.deletion_timestamp is None
    assert _phase(survivor) == "Running"


# -- stale holds -----------------------------------------------------------------------------------


def test_a_hold_for_a_retry_that_never_came_is_released_once_its_pods_succeeded(
    airflow_env, kube_env, state_store
) -> None:
    hook = KubernetesComputeHook(namespace=kube_env.namespace)
    execution = ExecutionRef("krec-stale", "maintenance:stale:1")
    [unit] = hook.launch(_plan(execution, [0], script="run:1s,exit:0")).launched
    # The try timed out and Airflow scheduled a retry that never ran (the run was marked failed
    # by hand): the tenant stays held for it.
    state_store.begin_operation(execution.tenant_id, execution.execution_id, "provision", "kubernetes", 1)
    _ledger(state_store, hook, execution, {0: unit.resource_id})
    timeout = ComputeError(code=ErrorCode.OPERATION_TIMEOUT, message="did not settle in time")
    state_store.finish_operation(execution.tenant_id, execution.execution_id, timeout, will_retry=True)
    tenant = state_store.get_tenant("krec-stale")
    assert (tenant.status, tenant.held) == (TenantStatus.RETRY_PENDING, True)
    wait_for_pod(kube_env.core, kube_env.namespace, unit.resource_id, lambda p: _phase(p) == "Succeeded")

    run = _maintain(airflow_env, "krec_stale_maint", stale_after=Code("timedelta(0)"))

    assert run.state() == "success"
    tenant = state_store.get_tenant("krec-stale")
    assert (tenant.status, tenant.held) == (TenantStatus.READY, False)
    move = state_store.transitions("krec-stale")[0]
    assert move.event is TenantEvent.FORCE_RELEASE
    assert "retry that never came" in (move.note or "")
    # Released, the execution no longer holds its tenant: its timed-out try gets its outcome.
    [op] = state_store.list_operations(tenant_id="krec-stale")
    assert op.eventual_status is OperationStatus.SUCCEEDED
    assert state_store.list_resources(tenant_id="krec-stale")[0].status is ResourceStatus.SUCCEEDED


def test_a_timed_out_hold_whose_retry_never_came_and_whose_pod_failed_needs_investigation(
    airflow_env, kube_env, state_store
) -> None:
    hook = KubernetesComputeHook(namespace=kube_env.namespace)
    execution = ExecutionRef("krec-stale-oom", "maintenance:stale-oom:1")
    [unit] = hook.launch(_plan(execution, [0], script="run:1s,exit:137,reason:OOMKilled")).launched
    # The try timed out and Airflow scheduled a retry that never ran: the tenant stays held.
    state_store.begin_operation(execution.tenant_id, execution.execution_id, "provision", "kubernetes", 1)
    _ledger(state_store, hook, execution, {0: unit.resource_id})
    timeout = ComputeError(code=ErrorCode.OPERATION_TIMEOUT, message="did not settle in time")
    state_store.finish_operation(execution.tenant_id, execution.execution_id, timeout, will_retry=True)
    wait_for_pod(kube_env.core, kube_env.namespace, unit.resource_id, lambda p: _phase(p) == "Failed")

    run = _maintain(airflow_env, "krec_stale_oom_maint", stale_after=Code("timedelta(0)"))

    assert run.state() == "success"
    # The timeout only meant the try stopped watching; what its pod became decides.
    tenant = state_store.get_tenant("krec-stale-oom")
    assert (tenant.status, tenant.held) == (TenantStatus.NEEDS_INVESTIGATION, False)
    move = state_store.transitions("krec-stale-oom")[0]
    assert (move.event, move.from_status) == (TenantEvent.FINISH, TenantStatus.RETRY_PENDING)
    assert "retry that never came" in (move.note or "")
    [op] = state_store.list_operations(tenant_id="krec-stale-oom")
    assert (op.eventual_status, op.eventual_error.code) == (OperationStatus.FAILED, ErrorCode.OUT_OF_MEMORY)
    [held] = [i for i in run.xcom("reconcile")["items"] if i["action"] == "tenant_held"]
    assert held["error_code"] == "OUT_OF_MEMORY"


# -- helpers ----------------------------------------------------------------------------------------


def _plan(execution: ExecutionRef, indexes: list[int], script: str = "run:forever") -> LaunchPlan:
    template = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"annotations": {SCRIPT_ANNOTATION: script}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "resources": {"requests": {"cpu": "20m", "memory": "16Mi"}},
                }
            ]
        },
    }
    return LaunchPlan(execution, [UnitLaunch(i, 1) for i in indexes], template, operation="provision")


def _ledger(
    store: SqlTenantStateStore,
    hook: KubernetesComputeHook,
    execution: ExecutionRef,
    resources: dict[int, str],
) -> None:
    for index in resources:
        store.record_intent(
            execution.tenant_id,
            execution.execution_id,
            provider="kubernetes",
            conn_id=hook.kubernetes_conn_id,
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
    store: SqlTenantStateStore,
    hook: KubernetesComputeHook,
    execution: ExecutionRef,
    resources: dict[int, str],
) -> None:
    store.begin_operation(execution.tenant_id, execution.execution_id, "provision", "kubernetes", 1)
    _ledger(store, hook, execution, resources)
    failure = ComputeError(code=ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE, message="delete failed")
    store.record_resources(
        execution.tenant_id,
        execution.execution_id,
        [ResourceUpdate(i, 1, ResourceStatus.PENDING_CLEANUP, error=failure) for i in resources],
    )
    error = ComputeError(code=ErrorCode.CLEANUP_FAILED, message="rollback could not delete its pods")
    store.finish_operation(execution.tenant_id, execution.execution_id, error, will_retry=False)
