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

Pods are dicts in the API's JSON form (camelCase), as the hook's list calls return them.
"""

from __future__ import annotations

from collections.abc import Mapping
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

    if phase == "Pending":
        stuck_since = _stuck_since(pod) if error else None
        return UnitStatus(unit=unit, phase=UnitPhase.PENDING, error=error, stuck_since=stuck_since)
    if phase == "Running":
        return UnitStatus(unit=unit, phase=UnitPhase.RUNNING, healthy=_healthy(pod), error=error)
    if phase == "Succeeded":
        return UnitStatus(unit=unit, phase=UnitPhase.SUCCEEDED, exit_code=exit_code)
    if phase == "Failed":
        failure = error or _in_context(_unexplained_failure(unit, status, exit_code), pod, unit.resource_id)
        return UnitStatus(
            unit=unit, phase=UnitPhase.FAILED, exit_code=exit_code, error=_with_exit_code(failure, exit_code)
        )
    # "Unknown": the kubelet stopped reporting. The pod may still be running, so this is not
    # an end; the lifecycle sees an unhealthy running unit and its deadline still applies.
    return UnitStatus(unit=unit, phase=UnitPhase.RUNNING, healthy=False, error=error)


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
