"""Kubernetes normalizers, rule by rule.

API errors go through real ``ApiException`` objects of both clients (``kube_objects``); Status
bodies are the test cluster's own (tests/fixtures/kube_observed/, saved from the real
kube-apiserver) or quoted from the source named above each case. Pods are fed three ways: the
API's JSON, a ``V1Pod`` of each client, and (when nothing depends on metadata) the status alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.normalize import kubernetes as k8s
from airflow_compute_provider.normalize.kubernetes_rules import API_RULES, CONTAINER_RULES, POD_RULES
from tests.unit.normalize.kube_objects import (
    async_api_exception,
    async_v1pod,
    sync_api_exception,
    sync_v1pod,
)

C = ErrorCode
OBSERVED = Path(__file__).resolve().parents[2] / "fixtures" / "kube_observed"


def observed(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((OBSERVED / name).read_text())
    return result


def status_body(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


API_ERRORS = [
    # The test cluster's kube-apiserver (tests/fixtures/kube_observed/).
    pytest.param(
        403, "Forbidden", observed("quota_exceeded_403.json"), C.QUOTA_EXCEEDED, id="observed-quota"
    ),
    pytest.param(
        404, "Not Found", observed("namespace_not_found_404.json"), C.RESOURCE_NOT_FOUND, id="observed-404"
    ),
    pytest.param(
        422,
        "Unprocessable Entity",
        observed("invalid_label_422.json"),
        C.INVALID_CONFIGURATION,
        id="observed-422",
    ),
    pytest.param(409, "Conflict", observed("duplicate_pod_409.json"), C.CONFLICT, id="observed-409"),
    # RBAC (a user with no binding, one allowed to read only) and the ServiceAccount admission plugin.
    pytest.param(
        403,
        "Forbidden",
        observed("rbac_create_forbidden_403.json"),
        C.PERMISSION_DENIED,
        id="observed-rbac-create",
    ),
    pytest.param(
        403,
        "Forbidden",
        observed("rbac_delete_forbidden_403.json"),
        C.PERMISSION_DENIED,
        id="observed-rbac-delete",
    ),
    pytest.param(
        403,
        "Forbidden",
        observed("service_account_not_found_403.json"),
        C.RESOURCE_NOT_FOUND,
        id="observed-service-account-missing",
    ),
    # https://kubernetes.io/docs/reference/access-authn-authz/rbac/ (the 403 an RBAC denial gives)
    pytest.param(
        403,
        "Forbidden",
        status_body(
            403,
            "Forbidden",
            'pods is forbidden: User "system:serviceaccount:airflow:worker" cannot create resource '
            '"pods" in API group "" in the namespace "batch"',
            kind="pods",
        ),
        C.PERMISSION_DENIED,
        id="rbac",
    ),
    # https://github.com/kubernetes/kubernetes/issues/ (serviceaccount admission plugin)
    pytest.param(
        403,
        "Forbidden",
        status_body(
            403,
            "Forbidden",
            'pods "job-1" is forbidden: error looking up service account batch/runner: '
            'serviceaccount "runner" not found',
        ),
        C.RESOURCE_NOT_FOUND,
        id="service-account-missing",
    ),
    # https://kubernetes.io/docs/concepts/policy/resource-quotas/ ("must specify limits")
    pytest.param(
        403,
        "Forbidden",
        status_body(
            403,
            "Forbidden",
            'pods "p" is forbidden: failed quota: compute: must specify limits.cpu for: main',
        ),
        C.INVALID_CONFIGURATION,
        id="quota-needs-limits",
    ),
    # https://kubernetes.io/docs/concepts/security/pod-security-admission/
    pytest.param(
        403,
        "Forbidden",
        status_body(
            403,
            "Forbidden",
            'pods "p" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation '
            '!= false (container "main" must set securityContext.allowPrivilegeEscalation=false)',
        ),
        C.INVALID_CONFIGURATION,
        id="pod-security",
    ),
    # https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/
    pytest.param(
        400,
        "Bad Request",
        status_body(
            400,
            "BadRequest",
            'admission webhook "validation.gatekeeper.sh" denied the request: [required-labels] you '
            'must provide labels: {"owner"}',
        ),
        C.INVALID_CONFIGURATION,
        id="webhook-denied",
    ),
    pytest.param(
        500,
        "Internal Server Error",
        status_body(
            500,
            "InternalError",
            'Internal error occurred: failed calling webhook "validate.kyverno.svc-fail": failed to call '
            'webhook: Post "https://kyverno-svc.kyverno.svc:443/validate/fail?timeout=10s": context '
            "deadline exceeded",
        ),
        C.PROVIDER_TEMPORARILY_UNAVAILABLE,
        id="webhook-unreachable",
    ),
    pytest.param(
        403,
        "Forbidden",
        status_body(
            403,
            "Forbidden",
            'pods "p" is forbidden: unable to create new content in namespace batch because it is '
            "being terminated",
        ),
        C.RESOURCE_NOT_FOUND,
        id="namespace-terminating",
    ),
    # https://github.com/kubernetes-client/python/issues/455 (SecurityContextDeny admission)
    pytest.param(
        403,
        "Forbidden",
        status_body(
            403, "Forbidden", 'pods "jupyter" is forbidden: pod.Spec.SecurityContext.RunAsUser is forbidden'
        ),
        C.INVALID_CONFIGURATION,
        id="admission-403-not-rbac",
    ),
    # https://kubernetes.io/docs/concepts/scheduling-eviction/pod-priority-preemption/
    pytest.param(
        403,
        "Forbidden",
        status_body(403, "Forbidden", 'pods "p" is forbidden: no PriorityClass with name urgent was found'),
        C.RESOURCE_NOT_FOUND,
        id="priority-class-missing",
    ),
    # https://kubernetes.io/docs/concepts/security/pod-security-policy/ (nothing granted vs violated)
    pytest.param(
        403,
        "Forbidden",
        status_body(
            403,
            "Forbidden",
            'pods "pause" is forbidden: unable to validate against any pod security policy: []',
        ),
        C.PERMISSION_DENIED,
        id="psp-none-granted",
    ),
    pytest.param(
        403,
        "Forbidden",
        status_body(
            403,
            "Forbidden",
            'pods "p" is forbidden: unable to validate against any pod security policy: '
            "[spec.containers[0].securityContext.privileged: Invalid value: true: Privileged containers "
            "are not allowed]",
        ),
        C.INVALID_CONFIGURATION,
        id="psp-violated",
    ),
    pytest.param(403, "Forbidden", "", C.PERMISSION_DENIED, id="bare-403"),
    # https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/
    pytest.param(
        401,
        "Unauthorized",
        status_body(401, "Unauthorized", "Unauthorized"),
        C.AUTHENTICATION_FAILED,
        id="401",
    ),
    pytest.param(
        500,
        "Internal Server Error",
        status_body(500, "InternalError", "etcdserver: request timed out"),
        C.PROVIDER_TEMPORARILY_UNAVAILABLE,
        id="etcd",
    ),
    pytest.param(
        503,
        "Service Unavailable",
        status_body(503, "ServiceUnavailable", "the server is currently unable to handle the request"),
        C.PROVIDER_TEMPORARILY_UNAVAILABLE,
        id="503",
    ),
    pytest.param(
        504,
        "Gateway Timeout",
        status_body(
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline exceeded",
        ),
        C.PROVIDER_TEMPORARILY_UNAVAILABLE,
        id="504",
    ),
    pytest.param(
        409,
        "Conflict",
        status_body(
            409,
            "Conflict",
            'Operation cannot be fulfilled on pods "p": the object has been modified; please apply your '
            "changes to the latest version and try again",
        ),
        C.CONFLICT,
        id="modified",
    ),
    pytest.param(
        410,
        "Gone",
        status_body(410, "Expired", "too old resource version: 1234 (5678)"),
        C.CONFLICT,
        id="410",
    ),
    pytest.param(
        400,
        "Bad Request",
        "the server rejected our request for an unknown reason",
        C.UNKNOWN_PROVIDER_ERROR,
        id="400-plain",
    ),
    pytest.param(418, "I'm a teapot", "", C.UNKNOWN_PROVIDER_ERROR, id="unknown-status"),
]


@pytest.mark.parametrize("build", [sync_api_exception, async_api_exception], ids=["sync", "asyncio"])
@pytest.mark.parametrize(("status", "reason", "body", "expected"), API_ERRORS)
def test_api_errors(build: Any, status: int, reason: str, body: Any, expected: ErrorCode) -> None:
    error = k8s.from_api_exception(build(status, reason, body, {"Audit-Id": "a1b2"}))
    assert error.code is expected
    assert error.provider == "kubernetes"
    root = error.root_cause
    assert (root.provider, root.http_status, root.request_id) == ("kubernetes", status, "a1b2")
    if isinstance(body, dict):
        assert (root.provider_code, root.provider_message) == (body["reason"], body["message"])


@pytest.mark.parametrize("build", [sync_api_exception, async_api_exception], ids=["sync", "asyncio"])
def test_429_keeps_the_retry_hint(build: Any) -> None:
    # https://kubernetes.io/docs/concepts/cluster-administration/flow-control/ (429 + Retry-After)
    body = status_body(
        429, "TooManyRequests", "Too many requests, please try again later.", retryAfterSeconds=1
    )
    from_header = k8s.from_api_exception(build(429, "Too Many Requests", body, {"Retry-After": "3"}))
    assert (from_header.code, from_header.retry_after_seconds) == (C.PROVIDER_THROTTLED, 3.0)
    from_details = k8s.from_api_exception(build(429, "Too Many Requests", body))
    assert from_details.retry_after_seconds == 1.0


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # https://github.com/stackabletech/stackablectl/issues/370
        ("storage is (re)initializing", C.PROVIDER_THROTTLED),
        # https://kubernetes.io/docs/concepts/scheduling-eviction/api-eviction/
        ("Cannot evict pod as it would violate the pod's disruption budget.", C.CONFLICT),
    ],
)
def test_429_is_throttling_unless_a_disruption_budget_refused_an_eviction(
    message: str, expected: ErrorCode
) -> None:
    body = status_body(429, "TooManyRequests", message)
    assert k8s.from_api_exception(sync_api_exception(429, "Too Many Requests", body)).code is expected


def test_status_zero_is_the_client_failing_to_connect() -> None:
    # kubernetes/client/rest.py wraps urllib3's SSLError as ApiException(status=0, reason=...)
    exc = ApiException(
        status=0, reason="SSLError\n[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
    )
    assert k8s.from_api_exception(exc).code is C.PROVIDER_UNREACHABLE


def test_resource_named_in_the_status_is_the_root_cause_resource() -> None:
    error = k8s.from_api_exception(sync_api_exception(409, "Conflict", observed("duplicate_pod_409.json")))
    assert error.root_cause.resource_id == "pods/twice"


# --- pods -------------------------------------------------------------------------------------


def container(name: str = "main", **state: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "imageID": "", "ready": False, "restartCount": 0, **state}


def waiting(why: str, message: str | None = None, **last: Any) -> dict[str, Any]:
    """A waiting container state; ``last`` is the lastState.terminated it restarts after."""
    result: dict[str, Any] = {
        "state": {"waiting": {"reason": why, **({"message": message} if message else {})}}
    }
    if last:
        result["lastState"] = {"terminated": last}
    return result


def terminated(exit_code: int, reason: str = "Error", message: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": exit_code, "reason": reason}
    if message:
        state["message"] = message
    return {"state": {"terminated": state}}


def pod(phase: str, *containers: dict[str, Any], restart: str = "Never", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "job-1", "namespace": "batch"},
        "spec": {
            "restartPolicy": restart,
            "containers": [{"name": c["name"], "image": "busybox"} for c in containers],
        },
        "status": {
            "phase": phase,
            **({"containerStatuses": list(containers)} if containers else {}),
            **status,
        },
    }


def unschedulable(message: str) -> dict[str, Any]:
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
    return pod("Pending", conditions=[condition])


HEALTHY_PODS = [
    pytest.param(
        pod("Running", container(state={"running": {"startedAt": "2024-01-01T00:00:00Z"}})), id="running"
    ),
    pytest.param(pod("Succeeded", container(**terminated(0, "Completed"))), id="succeeded"),
    pytest.param(pod("Pending", container(**waiting("ContainerCreating"))), id="creating"),
    pytest.param(pod("Pending"), id="not-scheduled-yet"),
    pytest.param(
        pod("Pending", conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]),
        id="scheduling-gated",
    ),
    # A restartable container that terminated in a running pod is about to be restarted.
    pytest.param(pod("Running", container(**terminated(1)), restart="Always"), id="restarting"),
]


@pytest.mark.parametrize("data", HEALTHY_PODS)
def test_healthy_pods(data: dict[str, Any]) -> None:
    assert k8s.from_pod(data) is None
    assert k8s.from_pod(sync_v1pod(data)) is None


FAILING_PODS = [
    # tests/fixtures/kube_observed/: the test cluster's real scheduler and real kubelet 1.20 with
    # containerd 1.6 (scripts/record-kube-observed re-records them).
    pytest.param(
        {"status": observed("unschedulable_pod_status.json")},
        C.INSUFFICIENT_CAPACITY,
        None,
        id="observed-unschedulable",
    ),
    # No registry is reachable there: containerd's pull fails on the name lookup, which is a
    # failed pull (retriable), not a missing image.
    pytest.param(
        {"status": observed("image_pull_pod_status.json")},
        C.IMAGE_PULL_FAILED,
        None,
        id="observed-image-pull-no-registry",
    ),
    pytest.param({"status": observed("oom_killed_pod_status.json")}, C.OUT_OF_MEMORY, 137, id="observed-oom"),
    pytest.param(
        {"status": observed("exit_code_pod_status.json")}, C.CONTAINER_FAILED, 3, id="observed-exit-3"
    ),
    pytest.param(
        {"status": observed("config_error_pod_status.json")},
        C.INVALID_CONFIGURATION,
        None,
        id="observed-missing-config-map-key",
    ),
    pytest.param(
        {"status": observed("deadline_exceeded_pod_status.json")},
        C.DEADLINE_EXCEEDED,
        None,
        id="observed-active-deadline",
    ),
    # Evicted for its own ephemeral-storage limit (eviction under node pressure cannot be made
    # for real on a shared test machine; its wording is in the cases below).
    pytest.param(
        {"status": observed("evicted_pod_status.json")},
        C.CONTAINER_FAILED,
        None,
        id="observed-evicted-own-storage-limit",
    ),
    # https://kubernetes.io/docs/concepts/scheduling-eviction/ (scheduler messages)
    pytest.param(
        unschedulable(
            "0/3 nodes are available: 1 node(s) had untolerated taint "
            "{node-role.kubernetes.io/control-plane: }, "
            "2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: "
            "3 Preemption is not helpful for scheduling."
        ),
        C.INVALID_CONFIGURATION,
        None,
        id="placement-only",
    ),
    pytest.param(
        unschedulable(
            "0/4 nodes are available: 1 Insufficient example.com/gpu, 1 node(s) didn't match Pod's node "
            "affinity/selector, 1 node(s) had untolerated taint(s)."
        ),
        C.INSUFFICIENT_CAPACITY,
        None,
        id="placement-and-room",
    ),
    pytest.param(
        unschedulable(
            "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
        ),
        C.INSUFFICIENT_CAPACITY,
        None,
        id="node-not-ready-taint",
    ),
    pytest.param(
        unschedulable("0/2 nodes are available: 2 Too many pods."),
        C.INSUFFICIENT_CAPACITY,
        None,
        id="too-many-pods",
    ),
    pytest.param(
        unschedulable('0/2 nodes are available: persistentvolumeclaim "data" not found.'),
        C.RESOURCE_NOT_FOUND,
        None,
        id="pvc-missing",
    ),
    # https://github.com/kubernetes/kubernetes/issues/49896 (older schedulers count every reason)
    pytest.param(
        unschedulable("0/10 nodes are available: 10 node(s) didn't match node selector, 4 Insufficient cpu."),
        C.INVALID_CONFIGURATION,
        None,
        id="selector-rules-out-every-node",
    ),
    pytest.param(
        unschedulable("0/10 nodes are available: 6 node(s) didn't match node selector, 4 Insufficient cpu."),
        C.INSUFFICIENT_CAPACITY,
        None,
        id="some-matching-nodes-are-full",
    ),
    # https://kubernetes.io/docs/concepts/containers/images/#imagepullbackoff and the runtimes' errors
    pytest.param(
        pod(
            "Pending",
            container(**waiting("ImagePullBackOff", 'Back-off pulling image "registry.local/app:9"')),
        ),
        C.IMAGE_PULL_FAILED,
        None,
        id="backoff-no-detail",
    ),
    pytest.param(
        pod(
            "Pending",
            container(
                **waiting(
                    "ErrImagePull",
                    'failed to pull and unpack image "docker.io/acme/private:1": failed to resolve reference '
                    '"docker.io/acme/private:1": pull access denied, repository does not exist or '
                    "may require "
                    "authorization: server message: insufficient_scope: authorization failed",
                )
            ),
        ),
        C.PERMISSION_DENIED,
        None,
        id="pull-access-denied",
    ),
    pytest.param(
        pod(
            "Pending",
            container(
                **waiting(
                    "ErrImagePull",
                    "rpc error: code = Unknown desc = failed to pull and unpack image "
                    '"docker.io/library/nginx:1.25": '
                    "failed to copy: httpReadSeeker: failed open: failed to do request: Get "
                    '"https://registry-1.docker.io'
                    '/v2/": dial tcp 54.236.113.205:443: i/o timeout',
                )
            ),
        ),
        C.IMAGE_PULL_FAILED,
        None,
        id="pull-io-timeout",
    ),
    pytest.param(
        pod(
            "Pending",
            container(
                **waiting(
                    "ErrImagePull",
                    "failed to pull and unpack image: 429 Too Many Requests - Server message: "
                    "toomanyrequests: "
                    "You have reached your pull rate limit.",
                )
            ),
        ),
        C.IMAGE_PULL_FAILED,
        None,
        id="pull-rate-limit",
    ),
    pytest.param(
        pod(
            "Pending",
            container(
                **waiting(
                    "ErrImagePull", "manifest for acme/app:9 not found: manifest unknown: manifest unknown"
                )
            ),
        ),
        C.IMAGE_NOT_FOUND,
        None,
        id="manifest-unknown",
    ),
    pytest.param(
        pod(
            "Pending",
            container(
                **waiting(
                    "InvalidImageName",
                    'Failed to apply default image tag "Acme/App": couldn\'t parse image reference',
                )
            ),
        ),
        C.INVALID_CONFIGURATION,
        None,
        id="invalid-image-name",
    ),
    pytest.param(
        pod(
            "Pending",
            container(
                **waiting(
                    "ErrImageNeverPull", 'Container image "app:dev" is not present with pull policy of Never'
                )
            ),
        ),
        C.IMAGE_NOT_FOUND,
        None,
        id="never-pull",
    ),
    # https://kubernetes.io/docs/concepts/configuration/secret/ (CreateContainerConfigError)
    pytest.param(
        pod(
            "Pending", container(**waiting("CreateContainerConfigError", 'secret "db-credentials" not found'))
        ),
        C.INVALID_CONFIGURATION,
        None,
        id="secret-missing",
    ),
    pytest.param(
        pod("Pending", container(**waiting("CreateContainerError", "failed to reserve container name"))),
        C.CONTAINER_START_FAILED,
        None,
        id="create-container-error",
    ),
    pytest.param(
        pod(
            "Failed",
            container(
                **terminated(
                    128,
                    "StartError",
                    "failed to create containerd task: failed to create shim task: OCI runtime "
                    'create failed: exec: "app": '
                    "executable file not found in $PATH: unknown",
                )
            ),
        ),
        C.CONTAINER_START_FAILED,
        128,
        id="start-error",
    ),
    pytest.param(
        pod("Failed", container(**terminated(127, "ContainerCannotRun"))),
        C.CONTAINER_START_FAILED,
        127,
        id="cannot-run",
    ),
    # https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#container-restarts
    pytest.param(
        pod(
            "Running",
            container(
                **waiting(
                    "CrashLoopBackOff",
                    "back-off 5m0s restarting failed container",
                    exitCode=3,
                    reason="Error",
                )
            ),
            restart="Always",
        ),
        C.CONTAINER_FAILED,
        3,
        id="crash-loop",
    ),
    pytest.param(
        pod(
            "Running",
            container(**waiting("CrashLoopBackOff", exitCode=137, reason="OOMKilled")),
            restart="Always",
        ),
        C.OUT_OF_MEMORY,
        137,
        id="crash-loop-oom",
    ),
    pytest.param(pod("Failed", container(**terminated(137))), C.CONTAINER_FAILED, 137, id="137-without-oom"),
    pytest.param(pod("Failed", container(**terminated(1))), C.CONTAINER_FAILED, 1, id="exit-1"),
    pytest.param(
        pod("Failed", container("main", **terminated(2)), container("sidecar", **terminated(137))),
        C.CONTAINER_FAILED,
        2,
        id="own-failure-before-the-kill",
    ),
    pytest.param(
        pod("Failed", container("main", **terminated(137)), container("big", **terminated(137, "OOMKilled"))),
        C.OUT_OF_MEMORY,
        137,
        id="oom-in-the-second-container",
    ),
    pytest.param(
        pod("Failed", initContainerStatuses=[container("init", **terminated(1))]),
        C.CONTAINER_FAILED,
        1,
        id="init-container",
    ),
    pytest.param(
        pod("Running", container(**terminated(1))), C.CONTAINER_FAILED, 1, id="restart-never-one-failed"
    ),
    # https://kubernetes.io/docs/concepts/workloads/controllers/job/ (activeDeadlineSeconds)
    pytest.param(
        pod(
            "Failed",
            reason="DeadlineExceeded",
            message="Pod was active on the node longer than the specified deadline",
        ),
        C.DEADLINE_EXCEEDED,
        None,
        id="deadline",
    ),
    # https://kubernetes.io/docs/concepts/scheduling-eviction/node-pressure-eviction/
    pytest.param(
        pod(
            "Failed",
            container(**terminated(137)),
            reason="Evicted",
            message="The node was low on resource: ephemeral-storage.",
        ),
        C.INFRASTRUCTURE_INTERRUPTED,
        None,
        id="evicted",
    ),
    pytest.param(
        pod(
            "Failed",
            reason="Evicted",
            message="Pod ephemeral local storage usage exceeds the total limit of containers 1Gi.",
        ),
        C.CONTAINER_FAILED,
        None,
        id="evicted-own-storage-limit",
    ),
    pytest.param(
        pod("Failed", reason="Evicted", message='Usage of EmptyDir volume "data" exceeds the limit "1Gi". '),
        C.CONTAINER_FAILED,
        None,
        id="evicted-own-emptydir-limit",
    ),
    # https://kubernetes.io/docs/concepts/workloads/pods/disruptions/#pod-disruption-conditions
    pytest.param(
        pod(
            "Failed",
            container(**terminated(143)),
            conditions=[
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "PreemptionByScheduler",
                    "message": "batch/hi: preempting to accommodate a higher priority pod",
                }
            ],
        ),
        C.INFRASTRUCTURE_INTERRUPTED,
        None,
        id="preempted",
    ),
    pytest.param(
        pod(
            "Unknown",
            reason="NodeLost",
            message="Node sim-node-1 which was running pod job-1 is unresponsive",
        ),
        C.INFRASTRUCTURE_INTERRUPTED,
        None,
        id="node-lost",
    ),
    # https://github.com/kubernetes/kubernetes/issues/97131
    pytest.param(
        pod(
            "Failed",
            reason="UnexpectedAdmissionError",
            message="Pod Allocate failed due to device plugin GetPreferredAllocation rpc failed with err: "
            "rpc error: code = Unknown desc = Unable to retrieve list of available devices: error creating "
            "nvml.Device 5: nvml: GPU is lost, which is unexpected",
        ),
        C.INFRASTRUCTURE_INTERRUPTED,
        None,
        id="gpu-lost",
    ),
    # https://github.com/ray-project/kuberay/issues/1414
    pytest.param(
        pod(
            "Failed",
            reason="UnexpectedAdmissionError",
            message="Pod Allocate failed due to pod d65f09ad container wait-gcs-ready unable to find GPU "
            "device allocation by scheduler, which is unexpected",
        ),
        C.INSUFFICIENT_CAPACITY,
        None,
        id="gpu-allocation",
    ),
    # https://kubernetes.io/docs/concepts/cluster-administration/node-shutdown/
    pytest.param(
        pod(
            "Failed", reason="Terminated", message="Pod was terminated in response to imminent node shutdown."
        ),
        C.INFRASTRUCTURE_INTERRUPTED,
        None,
        id="node-shutdown",
    ),
    pytest.param(
        pod("Failed", reason="NodeAffinity", message="Pod Predicate NodeAffinity failed"),
        C.INFRASTRUCTURE_INTERRUPTED,
        None,
        id="node-affinity",
    ),
    pytest.param(
        pod(
            "Failed",
            reason="UnexpectedAdmissionError",
            message="Allocate failed due to requested number of devices unavailable for nvidia.com/gpu. "
            "Requested: 1, Available: 0, which is unexpected",
        ),
        C.INSUFFICIENT_CAPACITY,
        None,
        id="devices-unavailable",
    ),
    pytest.param(
        pod(
            "Failed",
            reason="OutOfcpu",
            message="Pod Node didn't have enough resource: cpu, requested: 4000, used: 1000, capacity: 4000",
        ),
        C.INSUFFICIENT_CAPACITY,
        None,
        id="out-of-cpu",
    ),
    pytest.param(
        pod(
            "Failed",
            reason="OutOfmemory",
            message="Pod Node didn't have enough resource: memory, requested: 8Gi",
        ),
        C.INSUFFICIENT_CAPACITY,
        None,
        id="out-of-memory-admission-is-not-oom",
    ),
    pytest.param(
        pod("Failed", reason="SomethingNew", message="?"), C.UNKNOWN_PROVIDER_ERROR, None, id="failed-unknown"
    ),
]


@pytest.mark.parametrize(("data", "expected", "exit_code"), FAILING_PODS)
def test_failing_pods(data: dict[str, Any], expected: ErrorCode, exit_code: int | None) -> None:
    results = [k8s.from_pod(data), k8s.from_pod(data["status"])]
    if "metadata" in data:
        results += [k8s.from_pod(sync_v1pod(data)), k8s.from_pod(async_v1pod(data))]
    for error in results:
        assert isinstance(error, ComputeError)
        assert error.code is expected
        assert error.provider == "kubernetes"
        assert error.root_cause.exit_code == exit_code
    if "metadata" in data:
        assert results[0].root_cause.resource_id == "batch/job-1"  # type: ignore[union-attr]


def deleting(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "metadata": {**data["metadata"], "deletionTimestamp": "2024-05-01T10:00:00Z"}}


def test_a_pod_deleted_before_it_finished_was_cancelled() -> None:
    running = deleting(pod("Running", container(state={"running": {}})))
    killed = deleting(pod("Failed", container(**terminated(143))))
    for data in (running, killed, sync_v1pod(running), sync_v1pod(killed)):
        error = k8s.from_pod(data)
        assert error is not None
        assert error.code is C.CANCELLED


def test_a_deleted_pod_that_had_failed_on_its_own_keeps_its_failure() -> None:
    assert (
        k8s.from_pod(deleting(pod("Failed", container(**terminated(137, "OOMKilled"))))).code
        is C.OUT_OF_MEMORY
    )  # type: ignore[union-attr]
    assert k8s.from_pod(deleting(pod("Succeeded", container(**terminated(0, "Completed"))))) is None


def test_pod_message_names_pod_and_container() -> None:
    error = k8s.from_pod({**pod("Failed", container(**terminated(137, "OOMKilled")))})
    assert error is not None
    assert (
        error.message
        == "Kubernetes pod batch/job-1 container main ran out of memory (exit code 137): OOMKilled"
    )


@pytest.mark.parametrize("table", [API_RULES, POD_RULES, CONTAINER_RULES])
def test_every_rule_says_which_code_it_gives(table: tuple[Any, ...]) -> None:
    assert table
    assert all(rule.code is None or isinstance(rule.code, ErrorCode) for rule in table)
