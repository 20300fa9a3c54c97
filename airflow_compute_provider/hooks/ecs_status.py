"""From a DescribeTasks answer to ``UnitStatus``: pure functions, shared by sync and async.

    phase_of(lastStatus)      PROVISIONING / PENDING / ACTIVATING               -> pending
                              RUNNING / DEACTIVATING / STOPPING / DEPROVISIONING -> running
                              STOPPED -> succeeded, or failed with the normalizer's error
    exit_code_of(task)        the essential container's exit code, once the task stopped
    status_of(unit, task)     the whole ``UnitStatus``; ``running_since`` is the task's
                              ``startedAt``, running or stopped (absent: it never ran)
    vanished(unit)            a task ECS no longer knows (``failures[]`` reason MISSING)
    describe_batches(units)   units grouped by cluster, in DescribeTasks' batches of 100

A task keeps running until it is STOPPED, whatever its desired status: its containers may
still be exiting, and only a stopped task carries its final stop code and exit codes.

Which containers are essential is written in the task definition, not in DescribeTasks. For a
stopped task with several containers the hook looks the task definition up once (revisions
never change) and passes the essential names here; they are marked on the containers
(``essential``) before the normalizer judges the task, so a non-essential sidecar killed on the
way out fails neither the unit nor its exit code. Without them every container counts as
essential.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow_compute_provider.hooks.base import Unit, UnitPhase, UnitStatus
from airflow_compute_provider.normalize import ecs as normalize_ecs

DESCRIBE_BATCH = 100
STOPPED = "STOPPED"
MISSING = "MISSING"

_PHASES: Mapping[str, UnitPhase] = {
    "PROVISIONING": UnitPhase.PENDING,
    "PENDING": UnitPhase.PENDING,
    "ACTIVATING": UnitPhase.PENDING,
    "RUNNING": UnitPhase.RUNNING,
    "DEACTIVATING": UnitPhase.RUNNING,
    "STOPPING": UnitPhase.RUNNING,
    "DEPROVISIONING": UnitPhase.RUNNING,
}
_HEALTH: Mapping[str, bool] = {"HEALTHY": True, "UNHEALTHY": False}


def phase_of(last_status: str | None) -> UnitPhase:
    """The phase of a task that has not stopped; a status ECS adds later counts as pending."""
    return _PHASES.get(last_status or "", UnitPhase.PENDING)


def is_stopped(task: Mapping[str, Any]) -> bool:
    return task.get("lastStatus") == STOPPED


def needs_task_definition(task: Mapping[str, Any]) -> bool:
    """Whether telling essential containers from the others matters for this task."""
    containers = task.get("containers") or ()
    return is_stopped(task) and len(containers) > 1 and bool(task.get("taskDefinitionArn"))


def essential_names(task_definition: Mapping[str, Any]) -> frozenset[str]:
    """Names of a task definition's essential containers (``essential`` defaults to true)."""
    return frozenset(
        str(c["name"])
        for c in task_definition.get("containerDefinitions") or ()
        if c.get("essential", True) and c.get("name")
    )


def with_essentials(task: Mapping[str, Any], essential: frozenset[str] | None) -> dict[str, Any]:
    """The task with every container marked ``essential`` or not, the way the normalizer
    reads it (a container without the mark counts as essential)."""
    if not essential:
        return dict(task)
    containers = [{**c, "essential": c.get("name") in essential} for c in task.get("containers") or ()]
    return {**task, "containers": containers}


def exit_code_of(task: Mapping[str, Any]) -> int | None:
    """The exit code that speaks for the task: an essential container's, the first non-zero
    one if any; ``None`` until the task stopped or when no container exited."""
    if not is_stopped(task):
        return None
    exited = [c for c in task.get("containers") or () if c.get("exitCode") is not None]
    exited = [c for c in exited if c.get("essential") is not False] or exited
    failed = [c for c in exited if c["exitCode"] != 0]
    chosen = (failed or exited)[:1]
    return int(chosen[0]["exitCode"]) if chosen else None


def healthy_of(task: Mapping[str, Any]) -> bool | None:
    """``healthStatus`` as a bool; ``None`` for UNKNOWN or where no health check is defined."""
    return _HEALTH.get(str(task.get("healthStatus") or ""))


def _iso_utc(value: Any) -> str | None:
    """A timestamp as botocore parses it (a ``datetime``), as the JSON wire has it (epoch
    seconds: ``hooks/ecs_wire.py``) or as an EventBridge event has it (ISO 8601), in UTC."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).isoformat()
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return _iso_utc(parsed)
    return None


def status_of(unit: Unit, task: Mapping[str, Any], essential: frozenset[str] | None = None) -> UnitStatus:
    """Where ``unit`` is, from its described task."""
    healthy = healthy_of(task)
    # ``startedAt`` is when the task went from PENDING to RUNNING (AWS ECS API reference, Task
    # data type); ECS keeps it once the task stopped and never sets it for a task that never ran
    # (a failed image pull). boto3 and aiobotocore both parse it into an aware datetime.
    running_since = _iso_utc(task.get("startedAt"))
    if not is_stopped(task):
        phase = phase_of(task.get("lastStatus"))
        # A pending task has waited since it was created; grace periods count from there.
        since = _iso_utc(task.get("createdAt")) if phase is UnitPhase.PENDING else None
        return UnitStatus(
            unit=unit, phase=phase, healthy=healthy, stuck_since=since, running_since=running_since
        )
    marked = with_essentials(task, essential)
    error = normalize_ecs.from_stopped_task(marked)
    return UnitStatus(
        unit=unit,
        phase=UnitPhase.FAILED if error is not None else UnitPhase.SUCCEEDED,
        exit_code=exit_code_of(marked),
        healthy=healthy,
        error=error,
        running_since=running_since,
    )


def vanished(unit: Unit) -> UnitStatus:
    return UnitStatus(unit=unit, phase=UnitPhase.VANISHED)


def describe_batches(units: Sequence[Unit], default_cluster: str) -> Iterator[tuple[str, list[str]]]:
    """(cluster, task ARNs) pairs, each at most ``DESCRIBE_BATCH`` distinct ARNs long."""
    by_cluster: dict[str, list[str]] = {}
    for unit in units:
        arns = by_cluster.setdefault(unit.locator.get("cluster") or default_cluster, [])
        if unit.resource_id not in arns:
            arns.append(unit.resource_id)
    for cluster, arns in by_cluster.items():
        for start in range(0, len(arns), DESCRIBE_BATCH):
            yield cluster, arns[start : start + DESCRIBE_BATCH]


def split_failures(
    failures: Sequence[Mapping[str, Any]],
) -> tuple[set[str], list[Mapping[str, Any]]]:
    """DescribeTasks ``failures[]``: the ARNs ECS no longer knows, and every other failure."""
    missing = {str(f.get("arn")) for f in failures if f.get("reason") == MISSING}
    others = [f for f in failures if f.get("reason") != MISSING]
    return missing, others
