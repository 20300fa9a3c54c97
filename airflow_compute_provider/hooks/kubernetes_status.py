"""Reading a pod's state as a ``UnitStatus``; no I/O.

``unit_status(unit, pod)`` is the whole public surface. The pod phase gives the unit phase;
``normalize.kubernetes.from_pod`` decides whether the pod is in trouble (failed, or stuck
pending: unschedulable, image pull back-off, config errors), and this module adds what the
lifecycle needs around it:

    Pending    pending; when ``from_pod`` finds it stuck: its error and ``stuck_since``,
               so the lifecycle can wait out a grace period before giving up
    Running    running; ``healthy`` is False while the pod is not Ready (a container not
               running yet, or failing its readiness probe), True when it is Ready behind a
               readiness probe, None when it is Ready with no probe to vouch for it
    Succeeded  succeeded, with the exit code
    Failed     failed, with ``from_pod``'s error and the exit code
    Unknown    running but not healthy (the node stopped reporting; not over yet)
    (no pod)   vanished

Every phase also carries ``running_since``: when the pod's main container (the first one of
its spec, where the operator puts the image) first started, as the kubelet reports it; ``None``
while it has not started, or when it never did.

Pods are dicts in the API's JSON form (camelCase), as the hook's list calls return them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.errors.model import RootCause
from airflow_compute_provider.hooks.base import Unit, UnitPhase, UnitStatus
from airflow_compute_provider.hooks.kubernetes_pods import ANNOTATION_EXECUTION_ID, ANNOTATION_TENANT_ID
from airflow_compute_provider.normalize.kubernetes import from_pod

PROVIDER = "kubernetes"


def unit_status(unit: Unit, pod: Mapping[str, Any] | None) -> UnitStatus:
    """Where ``unit`` is now, given its pod (``None`` when the pod no longer exists)."""
    if pod is None:
        return UnitStatus(unit=unit, phase=UnitPhase.VANISHED)
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    exit_code = _exit_code(status)
    error = _in_context(from_pod(dict(pod)), pod, unit.resource_id)
    since = _running_since(pod)

    if phase == "Pending":
        stuck_since = _stuck_since(pod) if error else None
        return UnitStatus(
            unit=unit, phase=UnitPhase.PENDING, error=error, stuck_since=stuck_since, running_since=since
        )
    if phase == "Running":
        return UnitStatus(
            unit=unit, phase=UnitPhase.RUNNING, healthy=_healthy(pod), error=error, running_since=since
        )
    if phase == "Succeeded":
        return UnitStatus(unit=unit, phase=UnitPhase.SUCCEEDED, exit_code=exit_code, running_since=since)
    if phase == "Failed":
        failure = error or _in_context(_unexplained_failure(unit, status, exit_code), pod, unit.resource_id)
        return UnitStatus(
            unit=unit,
            phase=UnitPhase.FAILED,
            exit_code=exit_code,
            error=_with_exit_code(failure, exit_code),
            running_since=since,
        )
    # "Unknown": the kubelet stopped reporting. The pod may still be running, so this is not
    # an end; the lifecycle sees an unhealthy running unit and its deadline still applies.
    return UnitStatus(unit=unit, phase=UnitPhase.RUNNING, healthy=False, error=error, running_since=since)


def _running_since(pod: Mapping[str, Any]) -> str | None:
    """When the pod's main container first started running (ISO 8601, UTC), else ``None``.

    The kubelet writes a container's start in ``state.running.startedAt`` ("time at which the
    container was last (re-)started", Kubernetes API reference, ContainerStateRunning) and keeps
    it in ``state.terminated.startedAt`` once it exited; a restarted container's previous run is
    in ``lastState.terminated``, so the earliest of the three is its first start (older restarts
    are forgotten by the kubelet: after several, this is the start of the last but one).

    The pod's ``status.startTime`` is no stand-in: it is when the kubelet acknowledged the pod,
    before it pulled the images (Kubernetes API reference, PodStatus), so it would count the
    pull, the slowest part of a launch, as running. Without a container start the answer is
    ``None`` and the lifecycle falls back to the moment it sees the unit running.
    """
    spec_containers = (pod.get("spec") or {}).get("containers") or []
    main = spec_containers[0].get("name") if spec_containers else None
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    # containerStatuses come in no promised order: find the main container by name.
    container = next((c for c in statuses if c.get("name") == main), None)
    if container is None:
        return None
    state = container.get("state") or {}
    last = container.get("lastState") or {}
    starts = [
        _container_start((state.get("running") or {}).get("startedAt")),
        _container_start((state.get("terminated") or {}).get("startedAt")),
        _container_start((last.get("terminated") or {}).get("startedAt")),
    ]
    known = [start for start in starts if start is not None]
    return min(known).isoformat() if known else None


def _container_start(value: Any) -> datetime | None:
    """A container's ``startedAt`` as an aware UTC datetime; ``None`` when absent or when it is
    the Unix epoch, which containerd reports for a container that failed to start (reason
    StartError; kubernetes/kubernetes#120331): it never ran."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str) and value:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    when = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    return when if when > datetime(1970, 1, 1, tzinfo=UTC) else None


def _exit_code(status: Mapping[str, Any]) -> int | None:
    """The first non-zero exit code of the pod's (non-init) containers, else the first one."""
    codes = []
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        if terminated.get("exitCode") is not None:
            codes.append(int(terminated["exitCode"]))
    return next((code for code in codes if code != 0), codes[0] if codes else None)


def _healthy(pod: Mapping[str, Any]) -> bool | None:
    """Whether the pod is Ready, as ``wait_for="running"`` needs it.

    A running pod is only running for the lifecycle once it is Ready: the phase turns Running
    as soon as one container starts, while a sidecar may still be creating or a probe failing.
    ``None`` (no health check) only when it is Ready and no readiness probe stands behind that.
    """
    spec = pod.get("spec") or {}
    probed = any(c.get("readinessProbe") for c in spec.get("containers") or [])
    ready = next(
        (
            c.get("status")
            for c in (pod.get("status") or {}).get("conditions") or []
            if c.get("type") == "Ready"
        ),
        None,
    )
    if ready is not None and ready != "True":
        return False
    if probed:
        return ready == "True"
    return None


def _stuck_since(pod: Mapping[str, Any]) -> str | None:
    """When the pod entered the state it is stuck in (ISO 8601, as the API gives it).

    An unschedulable pod carries the time in its PodScheduled condition. Container waiting
    states (image pull back-off, config errors) carry no time, so the moment the containers
    stopped being ready stands in, then the pod's start, then its creation.
    """
    status = pod.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    scheduled = conditions.get("PodScheduled") or {}
    if scheduled.get("status") == "False" and scheduled.get("lastTransitionTime"):
        return str(scheduled["lastTransitionTime"])
    containers_ready = conditions.get("ContainersReady") or {}
    if containers_ready.get("status") == "False" and containers_ready.get("lastTransitionTime"):
        return str(containers_ready["lastTransitionTime"])
    since = status.get("startTime") or (pod.get("metadata") or {}).get("creationTimestamp")
    return str(since) if since else None


def _unexplained_failure(unit: Unit, status: Mapping[str, Any], exit_code: int | None) -> ComputeError:
    """A failed pod ``from_pod`` found nothing to say about: still a failure, never silence."""
    code = ErrorCode.CONTAINER_FAILED if exit_code else ErrorCode.UNKNOWN_PROVIDER_ERROR
    why = status.get("message") or status.get("reason") or "no reason given"
    return ComputeError(
        code=code,
        message=f"pod {unit.resource_id} failed: {why}",
        provider=PROVIDER,
        root_cause=RootCause(
            provider=PROVIDER,
            provider_code=status.get("reason"),
            provider_message=status.get("message"),
            resource_id=unit.resource_id,
            exit_code=exit_code,
            reason=status.get("reason"),
        ),
    )


def _with_exit_code(error: ComputeError | None, exit_code: int | None) -> ComputeError | None:
    """A pod-level failure (eviction, deadline, node lost) names no container, so the normalizer
    gives no exit code; the one its containers ended with still belongs in the root cause."""
    if error is None or exit_code is None or error.root_cause.exit_code is not None:
        return error
    return error.model_copy(
        update={"root_cause": error.root_cause.model_copy(update={"exit_code": exit_code})}
    )


def _in_context(error: ComputeError | None, pod: Mapping[str, Any], resource_id: str) -> ComputeError | None:
    """``error`` with the execution and tenant the pod's annotations name, and the pod in its
    root cause, where the normalizer (which knows nothing of executions) left them out."""
    if error is None:
        return None
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    error = error.with_context(
        provider=PROVIDER,
        execution_id=annotations.get(ANNOTATION_EXECUTION_ID),
        tenant_id=annotations.get(ANNOTATION_TENANT_ID),
    )
    if error.root_cause.resource_id:
        return error
    return error.model_copy(
        update={"root_cause": error.root_cause.model_copy(update={"resource_id": resource_id})}
    )
