"""``KubernetesComputeHook`` against the real API server, scheduler and controller manager, with the
node simulator playing the kubelet (``tests/harness/kube.py``). Faults on the wire come from the
fault proxy (``tests/harness/proxy.py``), which also counts the hook's API calls.

Nothing is mocked: pods are created, refused, scheduled, run, fail and are deleted by the real
control plane; the simulator only writes the pod statuses a kubelet would write.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import tenacity

from airflow_compute_provider.errors import ComputeConfigError, ComputeOperationError, ErrorCode
from airflow_compute_provider.hooks import connection_lookup
from airflow_compute_provider.hooks.base import (
    TOKEN_HELD,
    ExecutionRef,
    LaunchPlan,
    Unit,
    UnitLaunch,
    UnitPhase,
    UnitStatus,
)
from airflow_compute_provider.hooks.kubernetes import KubernetesComputeHook
from airflow_compute_provider.hooks.kubernetes_pods import (
    ANNOTATION_EXECUTION_ID,
    ANNOTATION_TENANT_ID,
    LABEL_EXEC_KEY,
    LABEL_GENERATION,
    LABEL_TENANT_ID,
    LABEL_UNIT_INDEX,
    label_value,
    unit_pod,
)
from airflow_compute_provider.hooks.kubernetes_retry import RetrySettings, retrying
from airflow_compute_provider.registry import backend_from_config
from tests.harness.kube import KubeAirflowConnection, wait_for, wait_for_quota
from tests.harness.kubecluster import RESTRICTED_USER, KubeCluster
from tests.harness.nodesim import SCRIPT_ANNOTATION, NodeSimulator
from tests.harness.ports import LOOPBACK, free_port
from tests.harness.proxy import FaultProxy
from tests.harness.proxy_faults import Reset, kube_throttle, kube_unavailable

LIST_PODS = r"/namespaces/[^/]+/pods$"
# Rules see the query string too (a list call's label selector); counts do not.
LIST_PODS_RULE = r"/namespaces/[^/]+/pods(\?|$)"
FAST_RETRIES = RetrySettings(attempts=3, initial_wait=0.05, max_wait=2.0)


def _template(script: str = "run:forever", cpu: str = "50m", **extra_labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "labels": {"app": "hook-test", **extra_labels},
            "annotations": {SCRIPT_ANNOTATION: script},
        },
        "spec": {
            "restartPolicy": "OnFailure",  # the hook must override it
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "command": ["sh", "-c", "true"],
                    "resources": {"requests": {"cpu": cpu, "memory": "32Mi"}},
                }
            ],
        },
    }


def _execution(tenant: str = "tenant-a") -> ExecutionRef:
    # Run-id-like execution ids: characters no pod name or label value may hold.
    return ExecutionRef(tenant, f"dag.task/manual__2025-01-01T00:00:00+00:00/{secrets.token_hex(4)}")


def _plan(
    execution: ExecutionRef, indexes: list[int], template: dict[str, Any], generation: int = 1
) -> LaunchPlan:
    return LaunchPlan(
        execution=execution,
        units=[UnitLaunch(i, generation) for i in indexes],
        request=template,
        operation="provision",
    )


def _kubeconfig(path: Path, server: str, cluster: KubeCluster) -> Path:
    """A kubeconfig for ``server`` (the fault proxy speaks plain HTTP) with the cluster's token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": cluster.token}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path.write_text(json.dumps(config))
    return path


def _terminal_statuses(
    hook: KubernetesComputeHook, units: list[Unit], timeout: float = 45
) -> list[UnitStatus]:
    def check() -> list[UnitStatus] | None:
        statuses = hook.describe(units)
        return statuses if all(s.phase.terminal for s in statuses) else None

    result: list[UnitStatus] = wait_for(check, timeout, "units to finish", interval=0.3)
    return result


def _comparable(status: UnitStatus) -> dict[str, Any]:
    data = status.to_dict()
    if data["error"]:
        data["error"].pop("occurred_at")
    return data


@pytest.fixture
def hook(kube_airflow_conn: KubeAirflowConnection) -> KubernetesComputeHook:
    """The hook on the Airflow connection (``kube_config_path`` in the extras)."""
    return KubernetesComputeHook(kube_airflow_conn.conn_id, namespace=kube_airflow_conn.namespace)


@pytest.fixture
def proxied(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    fault_proxy: Callable[[str], FaultProxy],
    tmp_path: Path,
) -> tuple[KubernetesComputeHook, FaultProxy]:
    """The hook talking through the fault proxy (kubeconfig given as ``config_file``)."""
    proxy = fault_proxy(kube_cluster.server)
    config = _kubeconfig(tmp_path / "proxied-kubeconfig", proxy.url, kube_cluster)
    return KubernetesComputeHook(namespace=kube_namespace, config_file=str(config)), proxy


# -- launch and find --------------------------------------------------------------------------------


@pytest.mark.kube
def test_launch_creates_one_labelled_pod_per_unit_and_find_returns_only_ours(
    hook: KubernetesComputeHook, kube_core: Any, kube_namespace: str
) -> None:
    execution = _execution("tenant a/with spaces:and+symbols")
    result = hook.launch(_plan(execution, [0, 1, 2], _template()))

    key = execution.key
    assert result.refused == []
    assert [u.resource_id for u in result.launched] == [f"{key}-{i}-g1" for i in range(3)]
    assert all(u.locator == {"namespace": kube_namespace} for u in result.launched)

    pod = kube_core.read_namespaced_pod(f"{key}-1-g1", kube_namespace)
    labels, annotations = pod.metadata.labels, pod.metadata.annotations
    assert labels[LABEL_EXEC_KEY] == key
    assert labels[LABEL_UNIT_INDEX] == "1"
    assert labels[LABEL_GENERATION] == "1"
    assert labels[LABEL_TENANT_ID] == label_value(execution.tenant_id)
    assert labels["app"] == "hook-test"  # the template's own labels stay
    assert annotations[ANNOTATION_TENANT_ID] == execution.tenant_id
    assert annotations[ANNOTATION_EXECUTION_ID] == execution.execution_id
    assert annotations[SCRIPT_ANNOTATION] == "run:forever"
    assert pod.spec.restart_policy == "Never"

    # Decoys: another tenant's pod carrying our exec-key label (a copied or colliding label),
    # and a pod whose exec key differs from ours only in its last characters.
    other = ExecutionRef("tenant-b", execution.execution_id)
    copied = unit_pod(_template(), other, UnitLaunch(5, 1), kube_namespace)
    copied["metadata"]["name"] = "decoy-copied-label"
    copied["metadata"]["labels"][LABEL_EXEC_KEY] = key
    kube_core.create_namespaced_pod(kube_namespace, copied)
    similar = unit_pod(_template(), execution, UnitLaunch(6, 1), kube_namespace)
    similar_key = key[:-4] + ("0000" if not key.endswith("0000") else "1111")
    similar["metadata"]["name"] = f"{similar_key}-6-g1"
    similar["metadata"]["labels"][LABEL_EXEC_KEY] = similar_key
    kube_core.create_namespaced_pod(kube_namespace, similar)

    found = hook.find(execution)
    assert found == list(result.launched)
    assert hook.find(_execution()) == []


@pytest.mark.kube
def test_a_second_launch_of_the_same_unit_adopts_its_pod(
    proxied: tuple[KubernetesComputeHook, FaultProxy], kube_core: Any, kube_namespace: str
) -> None:
    hook, proxy = proxied
    execution = _execution()
    first = hook.launch(_plan(execution, [0], _template()))
    proxy.reset_counts()

    again = hook.launch(_plan(execution, [0], _template()))

    assert again.launched == first.launched
    assert again.refused == []
    # The create really met a 409 for our own name, and the pod read behind it decided.
    assert proxy.count(method="POST", path=LIST_PODS) == 1
    assert proxy.count(method="GET", path=rf"/pods/{execution.key}-0-g1$") == 1
    assert len(kube_core.list_namespaced_pod(kube_namespace).items) == 1


@pytest.mark.kube
def test_a_create_whose_answer_is_lost_is_retried_and_adopted(
    proxied: tuple[KubernetesComputeHook, FaultProxy], kube_core: Any, kube_namespace: str
) -> None:
    hook, proxy = proxied
    hook.retry_settings = FAST_RETRIES
    # The API server creates the pod, then the connection is reset before the answer arrives.
    proxy.add_rule(Reset(forward_first=True), method="POST", path=LIST_PODS, times=1)
    execution = _execution()

    result = hook.launch(_plan(execution, [0], _template()))

    assert [u.resource_id for u in result.launched] == [f"{execution.key}-0-g1"]
    assert result.refused == []
    assert proxy.count(method="POST", path=LIST_PODS) == 2
    assert proxy.count(method="GET", path=rf"/pods/{execution.key}-0-g1$") == 1
    assert len(kube_core.list_namespaced_pod(kube_namespace).items) == 1


@pytest.mark.kube
def test_a_foreign_pod_holding_our_name_is_a_conflict_not_an_adoption(
    hook: KubernetesComputeHook, kube_core: Any, kube_namespace: str
) -> None:
    execution = _execution()
    squatter = _template()
    squatter["metadata"]["name"] = f"{execution.key}-1-g1"
    kube_core.create_namespaced_pod(kube_namespace, squatter)

    result = hook.launch(_plan(execution, [0, 1], _template()))

    assert [u.index for u in result.launched] == [0]
    ((unit, error),) = result.refused
    assert unit == UnitLaunch(1, 1)
    assert error.code is ErrorCode.CONFLICT
    assert error.root_cause.http_status == 409
    assert error.root_cause.reason == TOKEN_HELD  # a re-send could never start it
    assert error.root_cause.resource_id == f"{execution.key}-1-g1"
    assert error.execution_id == execution.execution_id


@pytest.mark.kube
def test_a_quota_admitting_two_pods_refuses_the_third_unit(
    hook: KubernetesComputeHook, kube_core: Any, kube_namespace: str
) -> None:
    kube_core.create_namespaced_resource_quota(
        kube_namespace, {"metadata": {"name": "two-pods"}, "spec": {"hard": {"pods": "2"}}}
    )
    wait_for_quota(kube_core, kube_namespace, "two-pods")

    result = hook.launch(_plan(_execution(), [0, 1, 2], _template()))

    assert [u.index for u in result.launched] == [0, 1]
    ((unit, error),) = result.refused
    assert unit.index == 2
    assert error.code is ErrorCode.QUOTA_EXCEEDED
    assert error.root_cause.http_status == 403
    assert "exceeded quota: two-pods" in (error.root_cause.provider_message or "")


@pytest.mark.kube
def test_an_invalid_spec_refuses_every_unit_with_invalid_configuration(hook: KubernetesComputeHook) -> None:
    result = hook.launch(_plan(_execution(), [0, 1], _template(app="not a valid label value!")))

    assert result.launched == []
    assert [u.index for u, _ in result.refused] == [0, 1]
    for _, error in result.refused:
        assert error.code is ErrorCode.INVALID_CONFIGURATION
        assert error.root_cause.http_status == 422


@pytest.mark.kube
def test_a_launch_that_reaches_nothing_raises(kube_cluster: KubeCluster, tmp_path: Path) -> None:
    # Nothing listens on this port: every create is refused at the TCP level.
    config = _kubeconfig(tmp_path / "dead", f"http://{LOOPBACK}:{free_port()}", kube_cluster)
    hook = KubernetesComputeHook(namespace="anywhere", config_file=str(config))
    hook.retry_settings = FAST_RETRIES

    with pytest.raises(ComputeOperationError) as caught:
        hook.launch(_plan(_execution(), [0, 1], _template()))
    assert caught.value.error.code is ErrorCode.PROVIDER_UNREACHABLE
    units = [Unit(0, 1, f"{_execution().key}-0-g1")]
    with pytest.raises(ComputeOperationError) as caught:
        hook.describe(units)
    assert caught.value.error.code is ErrorCode.PROVIDER_UNREACHABLE
    with pytest.raises(ComputeOperationError) as caught:
        asyncio.run(hook.adescribe(units))
    assert caught.value.error.code is ErrorCode.PROVIDER_UNREACHABLE


@pytest.mark.kube
def test_a_rejected_token_fails_the_whole_launch(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    config = json.loads(_kubeconfig(tmp_path / "kc", kube_cluster.server, kube_cluster).read_text())
    config["clusters"][0]["cluster"]["certificate-authority"] = str(kube_cluster.ca_file)
    config["users"][0]["user"]["token"] = "not-the-token"
    (tmp_path / "kc").write_text(json.dumps(config))
    hook = KubernetesComputeHook(namespace=kube_namespace, config_file=str(tmp_path / "kc"))

    # The server answered: nothing was created, so every unit is refused with the answer.
    result = hook.launch(_plan(_execution(), [0, 1], _template()))
    assert result.launched == []
    assert [(u.index, e.code) for u, e in result.refused] == [
        (0, ErrorCode.AUTHENTICATION_FAILED),
        (1, ErrorCode.AUTHENTICATION_FAILED),
    ]
    assert result.refused[0][1].root_cause.http_status == 401


@pytest.mark.kube
def test_a_missing_namespace_fails_the_whole_launch(kube_airflow_conn: KubeAirflowConnection) -> None:
    missing = KubernetesComputeHook(kube_airflow_conn.conn_id, namespace="no-such-namespace")
    result = missing.launch(_plan(_execution(), [0, 1], _template()))
    assert result.launched == []
    assert [e.code for _, e in result.refused] == [ErrorCode.RESOURCE_NOT_FOUND] * 2


@pytest.mark.kube
def test_the_server_failing_mid_launch_refuses_the_rest_and_keeps_what_started(
    proxied: tuple[KubernetesComputeHook, FaultProxy],
) -> None:
    hook, proxy = proxied
    hook.retry_settings = FAST_RETRIES

    def fail_from_now_on(*_: Any) -> None:
        proxy.add_rule(kube_unavailable(), method="POST", path=LIST_PODS)

    proxy.after_forward(fail_from_now_on, method="POST", path=LIST_PODS, times=1)
    execution = _execution()
    result = hook.launch(_plan(execution, [0, 1, 2], _template()))

    assert [u.index for u in result.launched] == [0]
    assert [(u.index, e.code) for u, e in result.refused] == [
        (1, ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE),
        (2, ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE),
    ]
    assert [e.root_cause.resource_id for _, e in result.refused] == [
        f"{execution.key}-1-g1",
        f"{execution.key}-2-g1",
    ]
    # Unit 1 was tried FAST_RETRIES.attempts times; unit 2 was not hammered after it.
    assert proxy.count(method="POST", path=LIST_PODS, faulted=True) == FAST_RETRIES.attempts


# -- describe ---------------------------------------------------------------------------------------


@pytest.mark.kube
def test_describe_reports_success_oom_and_container_failure(
    hook: KubernetesComputeHook, node_simulator: NodeSimulator
) -> None:
    execution = _execution()
    units: list[Unit] = []
    for index, script in enumerate(["run:1s,exit:0", "run:1s,exit:137,reason:OOMKilled", "run:1s,exit:1"]):
        units += hook.launch(_plan(execution, [index], _template(script))).launched
    gone = Unit(3, 1, f"{execution.key}-3-g1", hook.locator())

    done, oom, failed, vanished = _terminal_statuses(hook, [*units, gone])

    assert (done.phase, done.exit_code, done.error) == (UnitPhase.SUCCEEDED, 0, None)
    assert (oom.phase, oom.exit_code) == (UnitPhase.FAILED, 137)
    assert oom.error is not None
    assert oom.error.code is ErrorCode.OUT_OF_MEMORY
    assert oom.error.root_cause.exit_code == 137
    assert oom.error.root_cause.reason == "OOMKilled"
    assert (oom.error.execution_id, oom.error.tenant_id) == (execution.execution_id, execution.tenant_id)
    assert (failed.phase, failed.exit_code) == (UnitPhase.FAILED, 1)
    assert failed.error is not None
    assert failed.error.code is ErrorCode.CONTAINER_FAILED
    assert failed.error.root_cause.exit_code == 1
    assert vanished.phase is UnitPhase.VANISHED
    assert [s.unit for s in (done, oom, failed, vanished)] == [*units, gone]


@pytest.mark.kube
def test_describe_reads_readiness_only_where_a_probe_is_defined(
    hook: KubernetesComputeHook, node_simulator: NodeSimulator
) -> None:
    execution = _execution()
    probed = _template()
    probed["spec"]["containers"][0]["readinessProbe"] = {"exec": {"command": ["true"]}}
    (plain,) = hook.launch(_plan(execution, [0], _template())).launched
    (ready,) = hook.launch(_plan(execution, [1], probed)).launched

    def both_running() -> list[UnitStatus] | None:
        statuses = hook.describe([plain, ready])
        return statuses if all(s.phase is UnitPhase.RUNNING for s in statuses) else None

    plain_status, ready_status = wait_for(both_running, 30, "both pods to run", interval=0.3)
    assert plain_status.healthy is None
    assert ready_status.healthy is True
    assert plain_status.error is None


@pytest.mark.kube
def test_an_oversized_pod_is_pending_with_insufficient_capacity_and_a_stuck_since(
    hook: KubernetesComputeHook, node_simulator: NodeSimulator
) -> None:
    (unit,) = hook.launch(_plan(_execution(), [0], _template(cpu="64"))).launched

    def stuck() -> UnitStatus | None:
        (status,) = hook.describe([unit])
        return status if status.error is not None else None

    status: UnitStatus = wait_for(stuck, 30, "the scheduler's verdict", interval=0.3)
    assert status.phase is UnitPhase.PENDING
    assert status.error is not None
    assert status.error.code is ErrorCode.INSUFFICIENT_CAPACITY
    assert "Insufficient cpu" in (status.error.root_cause.provider_message or "")
    assert status.stuck_since is not None
    assert datetime.fromisoformat(status.stuck_since.replace("Z", "+00:00")).tzinfo is not None


@pytest.mark.kube
def test_an_image_that_does_not_exist_is_pending_with_its_error_and_a_stuck_since(
    hook: KubernetesComputeHook, node_simulator: NodeSimulator
) -> None:
    template = _template("waiting:ErrImagePull")
    template["spec"]["containers"][0]["image"] = "registry.example/no-such-image:1"
    (unit,) = hook.launch(_plan(_execution(), [0], template)).launched

    def stuck() -> UnitStatus | None:
        (status,) = hook.describe([unit])
        return status if status.error is not None else None

    status: UnitStatus = wait_for(stuck, 30, "the image pull to fail", interval=0.3)
    assert status.phase is UnitPhase.PENDING
    assert status.error is not None
    assert status.error.code is ErrorCode.IMAGE_NOT_FOUND
    assert status.error.root_cause.reason == "ErrImagePull"
    assert status.stuck_since is not None


@pytest.mark.kube
def test_describe_makes_one_list_call_per_namespace(
    proxied: tuple[KubernetesComputeHook, FaultProxy], kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    hook, proxy = proxied
    units: list[Unit] = []
    for tenant in ("tenant-a", "tenant-b", "tenant-c"):
        units += hook.launch(_plan(_execution(tenant), [0, 1, 2, 3], _template())).launched
    second_namespace = kube_cluster.new_namespace()
    try:
        elsewhere = KubernetesComputeHook(namespace=second_namespace, config_file=hook.config_file)
        units += elsewhere.launch(_plan(_execution(), [0, 1], _template())).launched
        proxy.reset_counts()

        statuses = hook.describe(units)

        assert len(statuses) == 14
        assert all(s.phase is not UnitPhase.VANISHED for s in statuses)
        assert proxy.counts.total == 2
        assert proxy.count(method="GET", path=LIST_PODS) == 2
        proxy.reset_counts()
        hook.describe(units[:12])
        assert proxy.counts.total == 1
    finally:
        kube_cluster.delete_namespace(second_namespace)


@pytest.mark.kube
def test_describe_waits_out_two_throttles_and_gives_up_on_endless_ones(
    proxied: tuple[KubernetesComputeHook, FaultProxy],
) -> None:
    hook, proxy = proxied
    units = list(hook.launch(_plan(_execution(), [0, 1], _template())).launched)
    proxy.reset_counts()
    proxy.add_rule(kube_throttle(retry_after=1), method="GET", path=LIST_PODS_RULE, times=2)

    statuses = hook.describe(units)

    assert [s.unit for s in statuses] == units
    assert all(s.phase is not UnitPhase.VANISHED for s in statuses)
    assert proxy.count(method="GET", path=LIST_PODS, faulted=True) == 2
    assert proxy.count(method="GET", path=LIST_PODS, faulted=False) == 1

    hook.retry_settings = FAST_RETRIES
    proxy.reset_counts()
    proxy.add_rule(kube_throttle(retry_after=0), method="GET", path=LIST_PODS_RULE)
    with pytest.raises(ComputeOperationError) as caught:
        hook.describe(units)
    assert caught.value.error.code is ErrorCode.PROVIDER_THROTTLED
    assert proxy.count(method="GET", path=LIST_PODS) == FAST_RETRIES.attempts


@pytest.mark.kube
def test_adescribe_matches_describe(hook: KubernetesComputeHook, node_simulator: NodeSimulator) -> None:
    execution = _execution()
    units: list[Unit] = []
    for index, script in enumerate(["run:forever", "run:500ms,exit:3", "run:500ms,exit:0"]):
        units += hook.launch(_plan(execution, [index], _template(script))).launched
    units.append(Unit(9, 1, f"{execution.key}-9-g1", hook.locator()))

    def settled() -> list[UnitStatus] | None:
        statuses = hook.describe(units)
        phases = [s.phase for s in statuses]
        want = [UnitPhase.RUNNING, UnitPhase.FAILED, UnitPhase.SUCCEEDED, UnitPhase.VANISHED]
        return statuses if phases == want else None

    expected = wait_for(settled, 30, "the pods to settle", interval=0.3)
    got = asyncio.run(hook.adescribe(units))

    assert [_comparable(s) for s in got] == [_comparable(s) for s in expected]
    assert asyncio.run(hook.adescribe([])) == []


@pytest.mark.kube
def test_adescribe_retries_through_the_proxy_with_a_config_file(
    proxied: tuple[KubernetesComputeHook, FaultProxy], kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    hook, proxy = proxied
    units = list(hook.launch(_plan(_execution(), [0, 1], _template())).launched)
    proxy.reset_counts()
    proxy.add_rule(kube_throttle(retry_after=1), method="GET", path=LIST_PODS_RULE, times=2)

    statuses = asyncio.run(hook.adescribe(units))

    assert [s.unit for s in statuses] == units
    assert all(s.phase is not UnitPhase.VANISHED for s in statuses)
    assert proxy.count(method="GET", path=LIST_PODS) == 3

    # A user RBAC gives nothing: the list is refused for real.
    restricted = KubernetesComputeHook(
        namespace=kube_namespace, config_file=str(kube_cluster.kubeconfig_for(RESTRICTED_USER))
    )
    with pytest.raises(ComputeOperationError) as caught:
        asyncio.run(restricted.adescribe(units))
    assert caught.value.error.code is ErrorCode.PERMISSION_DENIED
    assert caught.value.error.root_cause.provider_message == (
        f'pods is forbidden: User "{RESTRICTED_USER}" cannot list resource "pods" in API group "" '
        f'in the namespace "{kube_namespace}"'
    )


# -- stop -------------------------------------------------------------------------------------------


@pytest.mark.kube
def test_stop_deletes_the_pods_and_a_missing_one_is_no_error(
    hook: KubernetesComputeHook, kube_core: Any, kube_namespace: str, node_simulator: NodeSimulator
) -> None:
    execution = _execution()
    units = list(hook.launch(_plan(execution, [0, 1], _template())).launched)
    never = Unit(2, 1, f"{execution.key}-2-g1", hook.locator())

    assert hook.stop([*units, never], reason="rollback") == []

    def all_gone() -> bool:
        return not kube_core.list_namespaced_pod(kube_namespace).items

    wait_for(all_gone, 30, "the pods to be deleted")
    assert [s.phase for s in hook.describe(units)] == [UnitPhase.VANISHED] * 2


@pytest.mark.kube
def test_stop_reports_every_pod_it_could_not_delete(
    hook: KubernetesComputeHook,
    kube_cluster: KubeCluster,
    kube_namespace: str,
    fault_proxy: Callable[[str], FaultProxy],
) -> None:
    units = list(hook.launch(_plan(_execution(), [0, 1, 2], _template())).launched)
    # The stopping hook's user may read pods but not delete them (RBAC, for real); the proxy
    # only counts its calls.
    kube_cluster.grant(kube_namespace, ["get", "list", "watch"])
    proxy = fault_proxy(kube_cluster.server)
    config = kube_cluster.kubeconfig_for(RESTRICTED_USER, server=proxy.url)
    restricted = KubernetesComputeHook(namespace=kube_namespace, config_file=str(config))

    failures = restricted.stop(units, reason="rollback")

    assert [u for u, _ in failures] == units
    assert {e.code for _, e in failures} == {ErrorCode.PERMISSION_DENIED}
    # Each names its own pod as the units do, the refused delete too (its Status details say
    # "pods/<name>"), so the error joins the cleanup report by id.
    assert [e.root_cause.resource_id for _, e in failures] == [u.resource_id for u in units]
    assert failures[0][1].root_cause.provider_message == (
        f'pods "{units[0].resource_id}" is forbidden: User "{RESTRICTED_USER}" cannot delete resource '
        f'"pods" in API group "" in the namespace "{kube_namespace}"'
    )
    # Forbidden is the call's failure, not one pod's: the other pods were not tried.
    assert proxy.count(method="DELETE") == 1
    assert UnitPhase.VANISHED not in {s.phase for s in hook.describe(units)}, "every pod is still there"


# -- configuration ----------------------------------------------------------------------------------


@pytest.mark.kube
def test_backend_config_rebuilds_an_equivalent_hook(hook: KubernetesComputeHook) -> None:
    execution = _execution()
    launched = list(hook.launch(_plan(execution, [0, 1], _template())).launched)

    config = json.loads(json.dumps(hook.backend_config()))
    rebuilt = backend_from_config("kubernetes", config)

    assert isinstance(rebuilt, KubernetesComputeHook)
    assert rebuilt.backend_config() == hook.backend_config()
    assert rebuilt.locator() == {"namespace": hook.namespace}
    assert rebuilt.provider == "kubernetes"
    assert rebuilt.find(execution) == launched


@pytest.mark.kube
def test_a_connection_airflow_cannot_fetch_for_a_moment_is_read_again(
    kube_airflow_conn: KubeAirflowConnection, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Airflow says "isn't defined" for a lookup its API server or database could not answer; here
    # the connection's environment variable appears only after the first lookups.
    monkeypatch.delenv("AIRFLOW_CONN_KUBE_LATE", raising=False)
    appear = threading.Timer(1.5, os.environ.__setitem__, ("AIRFLOW_CONN_KUBE_LATE", kube_airflow_conn.json))
    appear.start()
    try:
        found = KubernetesComputeHook("kube_late", namespace=kube_namespace).find(_execution())
    finally:
        appear.cancel()
        os.environ.pop("AIRFLOW_CONN_KUBE_LATE", None)
    assert found == []


def test_a_connection_that_stays_undefined_is_a_configuration_error_after_the_patience(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(connection_lookup, "LOOKUP_PATIENCE", 1.0)
    monkeypatch.delenv("AIRFLOW_CONN_KUBE_NEVER", raising=False)
    hook = KubernetesComputeHook("kube_never", namespace="ns")
    with pytest.raises(ComputeConfigError) as caught:
        hook.find(_execution())
    assert caught.value.argument == "kubernetes_conn_id"
    assert "isn't defined" in str(caught.value)


def test_a_missing_kubeconfig_is_a_configuration_error(tmp_path: Path) -> None:
    hook = KubernetesComputeHook(namespace="ns", config_file=str(tmp_path / "absent"))
    with pytest.raises(ComputeConfigError) as caught:
        hook.find(_execution())
    assert caught.value.argument == "kubernetes_conn_id"


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"namespace": "Not_A_Namespace"}, "namespace"),
        ({"namespace": "ok", "delete_grace_period_seconds": -1}, "delete_grace_period_seconds"),
    ],
)
def test_bad_arguments_are_refused_before_any_call(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ComputeConfigError) as caught:
        KubernetesComputeHook(**kwargs)
    assert caught.value.argument == argument


def test_templates_that_are_not_pods_or_aim_elsewhere_are_refused() -> None:
    execution = _execution()
    with pytest.raises(ComputeConfigError):
        unit_pod({"kind": "Job", "spec": {}}, execution, UnitLaunch(0, 1), "ns")
    elsewhere = _template()
    elsewhere["metadata"]["namespace"] = "other"
    with pytest.raises(ComputeConfigError) as caught:
        unit_pod(elsewhere, execution, UnitLaunch(0, 1), "ns")
    assert caught.value.argument == "namespace"


def test_label_values_stay_valid_and_distinct() -> None:
    assert label_value("tenant-a") == "tenant-a"
    long_a, long_b = "t" * 80 + "a", "t" * 80 + "b"
    for text in ("tenant a/with spaces", long_a, "--", "ünïcode"):
        value = label_value(text)
        assert len(value) <= 63
        assert value[0].isalnum()
        assert value[-1].isalnum()
    assert label_value(long_a) != label_value(long_b)


def test_the_wait_between_retries_is_the_servers_retry_after_capped() -> None:
    from kubernetes.client.exceptions import ApiException

    throttled = ApiException(status=429, reason="Too Many Requests")
    throttled.headers = {"Retry-After": "7"}
    throttled.body = json.dumps({"kind": "Status", "reason": "TooManyRequests", "code": 429})
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.set_exception((ApiException, throttled, None))

    assert retrying(RetrySettings(max_wait=20)).wait(state) == 7
    assert retrying(RetrySettings(max_wait=5)).wait(state) == 5
    assert retrying(RetrySettings()).retry(state)  # throttling is worth another try
    state.set_exception((ApiException, ApiException(status=422, reason="Unprocessable Entity"), None))
    assert not retrying(RetrySettings()).retry(state)
