"""The Kubernetes test harness against the real API server: the errors it returns (among them
RBAC's and the ServiceAccount admission plugin's 403s), the scheduler's verdict on a pod that fits
nowhere, the real node (containerd and a kubelet) running pods to their end, and the node
simulator doing what the real node cannot (eviction under node pressure).

``scripts/record-kube-observed`` (``UPDATE_KUBE_OBSERVED=1``) rewrites the payloads under
``tests/fixtures/kube_observed/`` from this run: the API server's errors and the real kubelet's pod
statuses, the eviction among them (a pod over its own ephemeral-storage limit: eviction under
node pressure is the simulator's, and records nothing). They feed the normalizer's unit tests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_compute_provider.errors import ErrorCode
from airflow_compute_provider.normalize.kubernetes import from_pod
from tests.harness.kube import KubeAirflowConnection, read_log, wait_for, wait_for_pod, wait_for_quota
from tests.harness.kubecluster import ADMIN_USER, RESTRICTED_USER, KubeCluster
from tests.harness.nodesim import (
    SCRIPT_ANNOTATION,
    ContainerMoment,
    NodeSimulator,
    ScriptError,
    moment,
    normalize_image,
    parse_script,
)
from tests.harness.realnode import IMAGE, RealNode
from tests.integration.kubernetes_dags import FOREVER, on_node, sh_command

OBSERVED = Path(__file__).resolve().parents[1] / "fixtures" / "kube_observed"


def _record(name: str, payload: Any) -> None:
    if os.environ.get("UPDATE_KUBE_OBSERVED") == "1":
        OBSERVED.mkdir(parents=True, exist_ok=True)
        (OBSERVED / f"{name}.json").write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _pod(name: str, script: str | None = None, cpu: str = "100m", **labels: str) -> dict[str, Any]:
    annotations = {SCRIPT_ANNOTATION: script} if script else {}
    return {
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
                }
            ],
        },
    }


def _status_body(err: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.body)
    return body


@pytest.mark.kube
def test_invalid_label_value_is_a_real_422(kube_core: Any, kube_namespace: str) -> None:
    from kubernetes.client.rest import ApiException

    with pytest.raises(ApiException) as caught:
        kube_core.create_namespaced_pod(kube_namespace, _pod("bad-label", app="not a valid value!"))
    body = _status_body(caught.value)
    _record("invalid_label_422", body)
    assert caught.value.status == 422
    assert body["kind"] == "Status"
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.labels"
    assert "a valid label must be" in body["message"]


@pytest.mark.kube
def test_duplicate_pod_name_is_a_real_409(kube_core: Any, kube_namespace: str) -> None:
    from kubernetes.client.rest import ApiException

    kube_core.create_namespaced_pod(kube_namespace, _pod("twice"))
    with pytest.raises(ApiException) as caught:
        kube_core.create_namespaced_pod(kube_namespace, _pod("twice"))
    body = _status_body(caught.value)
    _record("duplicate_pod_409", body)
    assert caught.value.status == 409
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'pods "twice" already exists'


@pytest.mark.kube
def test_missing_namespace_is_a_real_404(kube_core: Any, kube_cluster: KubeCluster) -> None:
    from kubernetes.client.rest import ApiException

    with pytest.raises(ApiException) as caught:
        kube_core.create_namespaced_pod("no-such-namespace", _pod("orphan"))
    body = _status_body(caught.value)
    _record("namespace_not_found_404", body)
    assert caught.value.status == 404
    assert body["reason"] == "NotFound"
    assert body["message"] == 'namespaces "no-such-namespace" not found'


@pytest.mark.kube
def test_resource_quota_refusal_is_a_real_403(kube_core: Any, kube_namespace: str) -> None:
    from kubernetes.client.rest import ApiException

    quota = {"metadata": {"name": "small"}, "spec": {"hard": {"requests.cpu": "1", "requests.memory": "1Gi"}}}
    kube_core.create_namespaced_resource_quota(kube_namespace, quota)
    # The controller manager's quota controller must have computed usage first.
    wait_for_quota(kube_core, kube_namespace, "small")
    with pytest.raises(ApiException) as caught:
        kube_core.create_namespaced_pod(kube_namespace, _pod("greedy", cpu="2"))
    body = _status_body(caught.value)
    _record("quota_exceeded_403", body)
    assert caught.value.status == 403
    assert body["reason"] == "Forbidden"
    assert 'pods "greedy" is forbidden: exceeded quota: small' in body["message"]
    assert "requested: requests.cpu=2" in body["message"]


@pytest.mark.kube
def test_rbac_refuses_the_restricted_user_until_granted(
    kube_cluster: KubeCluster, kube_core: Any, kube_namespace: str
) -> None:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    restricted = client.CoreV1Api(config.new_client_from_config(str(kube_cluster.restricted_kubeconfig)))
    with pytest.raises(ApiException) as caught:
        restricted.create_namespaced_pod(kube_namespace, _pod("refused"))
    body = _status_body(caught.value)
    _record("rbac_create_forbidden_403", body)
    assert caught.value.status == 403
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        f'pods is forbidden: User "{RESTRICTED_USER}" cannot create resource "pods" in API group "" '
        f'in the namespace "{kube_namespace}"'
    )
    assert caught.value.headers["Audit-Id"], "audited: the response names its request"

    kube_core.create_namespaced_pod(kube_namespace, _pod("kept"))  # the admin may
    kube_cluster.grant(kube_namespace, ["get", "list"])
    assert [p.metadata.name for p in restricted.list_namespaced_pod(kube_namespace).items] == ["kept"]
    with pytest.raises(ApiException) as caught:
        restricted.delete_namespaced_pod("kept", kube_namespace)
    body = _status_body(caught.value)
    _record("rbac_delete_forbidden_403", body)
    assert caught.value.status == 403
    assert body["message"] == (
        f'pods "kept" is forbidden: User "{RESTRICTED_USER}" cannot delete resource "pods" in API group "" '
        f'in the namespace "{kube_namespace}"'
    )
    # A kubeconfig for any user, e.g. to go through a proxy; an unknown user is a mistake.
    assert json.loads(kube_cluster.kubeconfig_for(ADMIN_USER).read_text())["users"][0]["name"] == ADMIN_USER
    with pytest.raises(KeyError):
        kube_cluster.kubeconfig_for("nobody")


@pytest.mark.kube
def test_the_service_account_admission_plugin_is_on(kube_core: Any, kube_namespace: str) -> None:
    from kubernetes.client.rest import ApiException

    pod = _pod("runner")
    pod["spec"]["serviceAccountName"] = "builder"
    with pytest.raises(ApiException) as caught:
        kube_core.create_namespaced_pod(kube_namespace, pod)
    body = _status_body(caught.value)
    _record("service_account_not_found_403", body)
    assert caught.value.status == 403
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        f'pods "runner" is forbidden: error looking up service account {kube_namespace}/builder: '
        'serviceaccount "builder" not found'
    )
    # A fresh namespace is ready for pods: its default account exists and is mounted.
    admitted = kube_core.create_namespaced_pod(kube_namespace, _pod("plain"))
    assert admitted.spec.service_account_name == "default"
    assert any(v.secret for v in admitted.spec.volumes), "the account's token is mounted"


@pytest.mark.kube
def test_oversized_pod_is_unschedulable_by_the_real_scheduler(
    kube_core: Any, kube_namespace: str, node_simulator: NodeSimulator
) -> None:
    kube_core.create_namespaced_pod(kube_namespace, _pod("huge", cpu="64"))

    def unschedulable(pod: Any) -> bool:
        return any(
            c.type == "PodScheduled" and c.reason == "Unschedulable" for c in pod.status.conditions or []
        )

    pod = wait_for_pod(kube_core, kube_namespace, "huge", unschedulable)
    _record("unschedulable_pod_status", kube_core.api_client.sanitize_for_serialization(pod.status))
    (cond,) = [c for c in pod.status.conditions if c.type == "PodScheduled"]
    assert pod.status.phase == "Pending"
    assert cond.status == "False"
    # With the real node up (it is tainted: this pod does not tolerate it) there are three.
    assert cond.message in (
        "0/2 nodes are available: 2 Insufficient cpu.",
        "0/3 nodes are available: 1 node(s) had taint {compute.test/real-kubelet: true}, "
        "that the pod didn't tolerate, 2 Insufficient cpu.",
    )
    assert pod.spec.node_name is None


@pytest.mark.kube
def test_node_simulator_drives_pods_to_success_and_oom(
    kube_core: Any, kube_namespace: str, node_simulator: NodeSimulator
) -> None:
    kube_core.create_namespaced_pod(kube_namespace, _pod("fine", "run:1s,exit:0"))
    kube_core.create_namespaced_pod(kube_namespace, _pod("oom", "run:1s,exit:137,reason:OOMKilled"))

    def finished(pod: Any) -> bool:
        return pod.status.phase in ("Succeeded", "Failed")

    fine = wait_for_pod(kube_core, kube_namespace, "fine", finished)
    oom = wait_for_pod(kube_core, kube_namespace, "oom", finished)

    assert fine.spec.node_name in {n.name for n in node_simulator.nodes}
    assert fine.status.phase == "Succeeded"
    done = fine.status.container_statuses[0].state.terminated
    assert (done.exit_code, done.reason) == (0, "Completed")

    assert oom.status.phase == "Failed"
    killed = oom.status.container_statuses[0].state.terminated
    assert (killed.exit_code, killed.reason) == (137, "OOMKilled")
    ready = [c for c in oom.status.conditions if c.type == "Ready"]
    assert ready[0].status == "False"
    assert node_simulator.errors == []


@pytest.mark.kube
def test_node_simulator_image_pull_eviction_and_graceful_delete(
    kube_core: Any, kube_namespace: str, node_simulator: NodeSimulator
) -> None:
    from kubernetes.client.rest import ApiException

    pull = _pod("pull", "waiting:ErrImagePull")
    pull["spec"]["containers"][0]["image"] = "nosuch"
    kube_core.create_namespaced_pod(kube_namespace, pull)
    kube_core.create_namespaced_pod(kube_namespace, _pod("evicted", "run:500ms,evict"))
    kube_core.create_namespaced_pod(kube_namespace, _pod("sleeper", "run:forever"))

    def waiting(pod: Any) -> bool:
        statuses = pod.status.container_statuses or []
        return bool(statuses) and statuses[0].state.waiting is not None

    pulled = wait_for_pod(kube_core, kube_namespace, "pull", waiting)
    state = pulled.status.container_statuses[0].state.waiting
    assert pulled.status.phase == "Pending"
    assert state.reason == "ErrImagePull"
    assert 'failed to pull and unpack image "docker.io/library/nosuch:latest"' in state.message
    assert state.message.startswith("rpc error: code = NotFound")

    evicted = wait_for_pod(kube_core, kube_namespace, "evicted", lambda p: p.status.phase == "Failed")
    assert evicted.status.reason == "Evicted"
    assert evicted.status.message.startswith("The node was low on resource: memory.")

    running = wait_for_pod(kube_core, kube_namespace, "sleeper", lambda p: p.status.phase == "Running")
    assert [c.status for c in running.status.conditions if c.type == "Ready"] == ["True"]
    # Without a kubelet a bound pod would stay Terminating forever; the simulator finishes it.
    kube_core.delete_namespaced_pod("sleeper", kube_namespace)

    def gone() -> bool:
        try:
            kube_core.read_namespaced_pod("sleeper", kube_namespace)
        except ApiException as err:
            return bool(err.status == 404)
        return False

    wait_for(gone, 30, "the deleted pod to disappear")


@pytest.mark.kube
def test_airflow_connection_reaches_the_cluster(
    kube_airflow_conn: KubeAirflowConnection, kube_core: Any
) -> None:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    kube_core.create_namespaced_pod(kube_airflow_conn.namespace, _pod("seen-by-airflow"))
    hook = KubernetesHook(conn_id=kube_airflow_conn.conn_id)
    assert hook.get_namespace() == kube_airflow_conn.namespace
    pods = hook.core_v1_client.list_namespaced_pod(hook.get_namespace()).items
    assert [p.metadata.name for p in pods] == ["seen-by-airflow"]


def test_script_timeline() -> None:
    oom = parse_script("pending:500ms,run:2s,exit:137,reason:OOMKilled")
    assert moment(oom, 0.2) == ContainerMoment("waiting", "ContainerCreating", since=0.0)
    assert moment(oom, 1.0) == ContainerMoment("running", since=0.5, started_at=0.5)
    assert moment(oom, 9.0) == ContainerMoment("terminated", "OOMKilled", 137, since=2.5, started_at=0.5)
    # A finite run with no exit step exits 0; a finite wait with nothing after it stays.
    assert moment(parse_script("run:1s"), 5).state == "terminated"
    assert moment(parse_script("run:1s"), 5).exit_code == 0
    pull = parse_script("waiting:ErrImagePull:1s,waiting:ImagePullBackOff:1s")
    assert moment(pull, 0.5).reason == "ErrImagePull"
    assert moment(pull, 60).reason == "ImagePullBackOff"
    assert moment(parse_script("run:forever"), 1e6).state == "running"
    assert moment(parse_script("run:1s,evict:ephemeral-storage"), 2) == ContainerMoment(
        "evicted", "ephemeral-storage", 137, since=1.0, started_at=0.0
    )


@pytest.mark.parametrize("bad", ["", "run:soon", "exit:x", "reason:OOMKilled", "waiting:", "jump:1s"])
def test_malformed_scripts_are_refused(bad: str) -> None:
    with pytest.raises(ScriptError):
        parse_script(bad)


def test_image_names_are_normalized_like_containerd() -> None:
    assert normalize_image("busybox") == "docker.io/library/busybox:latest"
    assert normalize_image("org/app:1.0") == "docker.io/org/app:1.0"
    assert normalize_image("registry.example:5000/app") == "registry.example:5000/app:latest"
    assert normalize_image("busybox@sha256:abc") == "docker.io/library/busybox@sha256:abc"


# -- the real node -------------------------------------------------------------------------------


def _real_pod(node: RealNode, name: str, sh: str, **container: Any) -> dict[str, Any]:
    """A pod for the real node running ``sh -c SH`` in the busybox image (restartPolicy Never)."""
    main = {
        "name": "main",
        "image": IMAGE,
        "command": sh_command(sh),
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}},
        **container,
    }
    return on_node(
        {"metadata": {"name": name}, "spec": {"restartPolicy": "Never", "containers": [main]}}, node
    )


def _finished(pod: Any) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


def _waiting_with(*reasons: str) -> Any:
    def check(pod: Any) -> bool:
        statuses = pod.status.container_statuses or []
        return (
            bool(statuses)
            and statuses[0].state.waiting is not None
            and statuses[0].state.waiting.reason in reasons
        )

    return check


def _status(kube_core: Any, pod: Any) -> dict[str, Any]:
    status: dict[str, Any] = kube_core.api_client.sanitize_for_serialization(pod.status)
    return status


@pytest.mark.kube
def test_the_real_node_registers_as_a_node_with_its_own_credentials(
    kube_core: Any, real_node: RealNode
) -> None:
    node = kube_core.read_node(real_node.name)
    assert node.metadata.labels["compute.test/real-kubelet"] == "true"
    # (The node lifecycle controller's not-ready taint may linger a moment after Ready.)
    ours = [(t.key, t.effect) for t in node.spec.taints or [] if t.key.startswith("compute.test/")]
    assert ours == [("compute.test/real-kubelet", "NoSchedule")]
    assert node.status.node_info.kubelet_version == "v1.20.2"
    assert node.status.node_info.container_runtime_version.startswith("containerd://1.6")
    assert node.status.daemon_endpoints.kubelet_endpoint.port == real_node.kubelet_port
    assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["True"]


@pytest.mark.kube
def test_the_real_node_runs_the_command_its_output_and_exit_code(
    kube_core: Any, kube_namespace: str, real_node: RealNode
) -> None:
    kube_core.create_namespaced_pod(
        kube_namespace, _real_pod(real_node, "says", "echo out; echo err >&2; exit 3")
    )

    pod = wait_for_pod(kube_core, kube_namespace, "says", _finished, timeout=60)
    _record("exit_code_pod_status", _status(kube_core, pod))
    assert pod.spec.node_name == real_node.name
    assert pod.status.phase == "Failed"
    done = pod.status.container_statuses[0].state.terminated
    assert (done.exit_code, done.reason) == (3, "Error")
    assert done.container_id.startswith("containerd://")
    # stdout and stderr, from the container's log file, through the API server and the kubelet
    # (two pipes: containerd may write either line first).
    assert sorted(read_log(kube_core, kube_namespace, "says").splitlines()) == ["err", "out"]
    error = from_pod(kube_core.api_client.sanitize_for_serialization(pod))
    assert error is not None
    assert (error.code, error.root_cause.exit_code) == (ErrorCode.CONTAINER_FAILED, 3)


@pytest.mark.kube
def test_the_real_node_oom_kills_a_container_at_its_memory_limit(
    kube_core: Any, kube_namespace: str, real_node: RealNode
) -> None:
    # busybox tail keeps a stream with no newline in memory: it grows until the cgroup kills it.
    limits = {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "32Mi"}}
    hog = _real_pod(real_node, "hog", "echo filling; exec tail /dev/zero", resources=limits)
    kube_core.create_namespaced_pod(kube_namespace, hog)

    pod = wait_for_pod(kube_core, kube_namespace, "hog", _finished, timeout=60)
    _record("oom_killed_pod_status", _status(kube_core, pod))
    assert pod.status.phase == "Failed"
    killed = pod.status.container_statuses[0].state.terminated
    assert (killed.exit_code, killed.reason) == (137, "OOMKilled")
    assert read_log(kube_core, kube_namespace, "hog") == "filling\n"
    error = from_pod(kube_core.api_client.sanitize_for_serialization(pod))
    assert error is not None
    assert error.code is ErrorCode.OUT_OF_MEMORY


@pytest.mark.kube
def test_the_real_node_cannot_pull_an_image_nobody_built(
    kube_core: Any, kube_namespace: str, real_node: RealNode
) -> None:
    # No registry is reachable from this machine, and ".invalid" never resolves (RFC 2606).
    missing = _real_pod(real_node, "missing", "true", image="compute-test.invalid/not-built:1")
    kube_core.create_namespaced_pod(kube_namespace, missing)

    pod = wait_for_pod(kube_core, kube_namespace, "missing", _waiting_with("ErrImagePull"), timeout=60)
    _record("image_pull_pod_status", _status(kube_core, pod))
    waiting = pod.status.container_statuses[0].state.waiting
    assert pod.status.phase == "Pending"
    assert 'failed to pull and unpack image "compute-test.invalid/not-built:1"' in waiting.message
    error = from_pod(kube_core.api_client.sanitize_for_serialization(pod))
    assert error is not None
    assert error.code is ErrorCode.IMAGE_PULL_FAILED, waiting.message


@pytest.mark.kube
def test_the_real_node_refuses_a_container_whose_config_map_key_is_missing(
    kube_core: Any, kube_namespace: str, real_node: RealNode
) -> None:
    kube_core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "settings"}, "data": {"a": "1"}}
    )
    env = [{"name": "TOKEN", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "token"}}}]
    kube_core.create_namespaced_pod(kube_namespace, _real_pod(real_node, "configured", "true", env=env))

    pod = wait_for_pod(
        kube_core, kube_namespace, "configured", _waiting_with("CreateContainerConfigError"), timeout=60
    )
    _record("config_error_pod_status", _status(kube_core, pod))
    waiting = pod.status.container_statuses[0].state.waiting
    assert waiting.message == f"couldn't find key token in ConfigMap {kube_namespace}/settings"
    error = from_pod(kube_core.api_client.sanitize_for_serialization(pod))
    assert error is not None
    assert error.code is ErrorCode.INVALID_CONFIGURATION


@pytest.mark.kube
def test_the_real_node_stops_a_pod_at_its_active_deadline(
    kube_core: Any, kube_namespace: str, real_node: RealNode
) -> None:
    pod = _real_pod(real_node, "late", FOREVER)
    pod["spec"]["activeDeadlineSeconds"] = 2
    kube_core.create_namespaced_pod(kube_namespace, pod)

    failed = wait_for_pod(kube_core, kube_namespace, "late", lambda p: p.status.phase == "Failed", timeout=60)
    _record("deadline_exceeded_pod_status", _status(kube_core, failed))
    assert failed.status.reason == "DeadlineExceeded"
    assert failed.status.message == "Pod was active on the node longer than the specified deadline"
    error = from_pod(kube_core.api_client.sanitize_for_serialization(failed))
    assert error is not None
    assert error.code is ErrorCode.DEADLINE_EXCEEDED


@pytest.mark.kube
def test_the_real_node_stops_a_deleted_pod_with_sigterm(
    kube_core: Any, kube_namespace: str, real_node: RealNode
) -> None:
    kube_core.create_namespaced_pod(kube_namespace, _real_pod(real_node, "sleeper", FOREVER))
    wait_for_pod(kube_core, kube_namespace, "sleeper", lambda p: p.status.phase == "Running", timeout=60)
    kube_core.delete_namespaced_pod("sleeper", kube_namespace)

    def stopped(pod: Any) -> bool:
        return pod.status.container_statuses[0].state.terminated is not None

    # The shell's TERM trap answers the kubelet's SIGTERM (exit 143). The pod object itself goes
    # once the kubelet's container garbage collection (once a minute in 1.20) removed its sandbox.
    pod = wait_for_pod(kube_core, kube_namespace, "sleeper", stopped, timeout=30)
    assert pod.metadata.deletion_timestamp is not None
    assert pod.status.container_statuses[0].state.terminated.exit_code == 143


@pytest.mark.kube
def test_the_real_node_evicts_a_pod_over_its_ephemeral_storage_limit(
    kube_core: Any, kube_namespace: str, real_node: RealNode
) -> None:
    # A real eviction one machine can afford: the kubelet's eviction manager (every 10 s) finds
    # the container's writable layer over the pod's own limit. Node pressure stays simulated.
    resources = {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"ephemeral-storage": "1Mi"}}
    filler = f"dd if=/dev/zero of=/tmp/fill bs=1M count=8; {FOREVER}"
    kube_core.create_namespaced_pod(
        kube_namespace, _real_pod(real_node, "filler", filler, resources=resources)
    )

    pod = wait_for_pod(kube_core, kube_namespace, "filler", lambda p: p.status.phase == "Failed", timeout=90)
    _record("evicted_pod_status", _status(kube_core, pod))
    assert pod.status.reason == "Evicted"
    assert pod.status.message.startswith(
        "Pod ephemeral local storage usage exceeds the total limit of containers 1Mi."
    )
    error = from_pod(kube_core.api_client.sanitize_for_serialization(pod))
    assert error is not None
    assert error.code is ErrorCode.CONTAINER_FAILED, "its own limit: not an infrastructure interruption"
