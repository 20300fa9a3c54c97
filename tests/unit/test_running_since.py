"""When a unit started running, as each provider's status mapping reads it, and the
launch-to-running time the lifecycle makes of it (pure functions, no servers).

Kubernetes pods come from the node simulator's kubelet (``nodesim.pod_status``, the status it
patches onto real pods) and from ``tests/fixtures/kube_observed/``, statuses the test cluster's
real kubelet reported (``scripts/record-kube-observed``). ECS tasks are shaped the way boto3 and
aiobotocore return DescribeTasks (``startedAt`` parsed into a datetime in the local zone).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from dateutil.tz import tzlocal

from airflow_compute_provider.hooks import ecs_status
from airflow_compute_provider.hooks.base import Unit, UnitPhase, UnitStatus
from airflow_compute_provider.hooks.kubernetes_status import unit_status
from airflow_compute_provider.lifecycle.ledger import launch_to_running_time
from tests.harness.nodesim import SCRIPT_ANNOTATION, pod_status

OBSERVED = Path(__file__).parents[1] / "fixtures" / "kube_observed"
UNIT = Unit(0, 1, "cx0123-0-g1", {"namespace": "compute"})
#: the pod's start on the simulated node (a whole second, as the API server writes times)
POD_START = datetime(2026, 11, 26, 5, 4, 30, tzinfo=UTC)


def _at(seconds: float) -> str:
    return (POD_START + timedelta(seconds=seconds)).isoformat()


def _pod(script: str, *, sidecar: str | None = None) -> dict[str, Any]:
    """A pod as the operator creates it: the main container first, then an optional sidecar."""
    annotations = {SCRIPT_ANNOTATION: script}
    containers = [{"name": "main", "image": "busybox:1.36"}]
    if sidecar is not None:
        annotations[f"{SCRIPT_ANNOTATION}.sidecar"] = sidecar
        containers.append({"name": "sidecar", "image": "envoy:1.30"})
    return {
        "metadata": {
            "name": UNIT.resource_id,
            "namespace": "compute",
            "uid": "u-1",
            "annotations": annotations,
        },
        "spec": {"containers": containers, "restartPolicy": "Never"},
    }


def _simulated(pod: dict[str, Any], elapsed: float) -> UnitStatus:
    """The unit's status once the simulated kubelet reported the pod ``elapsed`` s after its start."""
    start = POD_START.timestamp()
    status, _events = pod_status(pod, start, start + elapsed, "127.0.1.1", "127.1.0.2")
    return unit_status(UNIT, {**pod, "status": status})


# -- Kubernetes ---------------------------------------------------------------------------------


def test_a_pod_still_pulling_its_image_has_not_started() -> None:
    pod = _pod("pending:3s,run:5s,exit:0")
    status = _simulated(pod, 1)
    assert status.phase is UnitPhase.PENDING
    assert status.running_since is None


def test_a_running_pod_started_when_its_main_container_did_not_at_the_pod_start() -> None:
    # The image pull takes 3 s; status.startTime is the pod's start, before the pull.
    pod = _pod("pending:3s,run:5s,exit:0")
    running = _simulated(pod, 4)
    assert running.phase is UnitPhase.RUNNING
    assert running.running_since == _at(3)


def test_a_finished_pod_keeps_its_start_succeeded_or_failed() -> None:
    succeeded = _simulated(_pod("pending:3s,run:5s,exit:0"), 60)
    assert (succeeded.phase, succeeded.running_since) == (UnitPhase.SUCCEEDED, _at(3))
    oom = _simulated(_pod("pending:2s,run:4s,exit:137,reason:OOMKilled"), 60)
    assert (oom.phase, oom.running_since) == (UnitPhase.FAILED, _at(2))


def test_the_main_container_decides_not_a_sidecar_that_started_first() -> None:
    pod = _pod("pending:5s,run:forever", sidecar="run:forever")
    waiting_main = _simulated(pod, 2)
    # phase Running (the sidecar runs) while the main container is still being created
    assert waiting_main.phase is UnitPhase.RUNNING
    assert waiting_main.running_since is None
    assert _simulated(pod, 6).running_since == _at(5)


def test_a_pod_killed_before_its_container_ran_never_started() -> None:
    evicted = _simulated(_pod("pending:2s,evict"), 5)
    assert evicted.phase is UnitPhase.FAILED
    assert evicted.running_since is None
    deadline = _pod("pending:forever")
    deadline["spec"]["activeDeadlineSeconds"] = 2
    failed = _simulated(deadline, 5)
    assert failed.phase is UnitPhase.FAILED
    assert failed.running_since is None


def _observed(name: str) -> dict[str, Any]:
    status = json.loads((OBSERVED / f"{name}.json").read_text())
    return {
        "metadata": {"name": UNIT.resource_id},
        "spec": {"containers": [{"name": "main"}]},
        "status": status,
    }


def _started(status: dict[str, Any]) -> str:
    state = status["containerStatuses"][0]["state"]
    return str((state.get("terminated") or state.get("running"))["startedAt"])


def test_statuses_a_real_kubelet_reported() -> None:
    # The main container's own start, as kubelet 1.20 reported it (the pod's startTime is earlier:
    # the kubelet took the pod before the sandbox and the container were made).
    for name in ("oom_killed_pod_status", "exit_code_pod_status", "deadline_exceeded_pod_status"):
        pod = _observed(name)
        assert unit_status(UNIT, pod).running_since == _started(pod["status"]), name
    # Never started: the image could not be pulled, a ConfigMap key was missing.
    assert unit_status(UNIT, _observed("image_pull_pod_status")).running_since is None
    assert unit_status(UNIT, _observed("config_error_pod_status")).running_since is None
    # The kubelet's eviction leaves no container statuses on the pod: nothing says when it ran.
    evicted = _observed("evicted_pod_status")
    assert "containerStatuses" not in evicted["status"]
    assert unit_status(UNIT, evicted).running_since is None


def _with_main(main: dict[str, Any], phase: str = "Running") -> dict[str, Any]:
    return {
        "spec": {"containers": [{"name": "main"}]},
        "status": {"phase": phase, "containerStatuses": [{"name": "main", **main}]},
    }


def test_a_restarted_container_started_at_its_earlier_run_and_times_become_utc() -> None:
    pod = _with_main(
        {
            "restartCount": 1,
            "state": {"running": {"startedAt": "2026-11-26T05:05:00Z"}},
            "lastState": {"terminated": {"exitCode": 1, "startedAt": "2026-11-26T05:04:40Z"}},
        }
    )
    assert unit_status(UNIT, pod).running_since == "2026-11-26T05:04:40+00:00"


def test_a_start_error_at_the_unix_epoch_is_no_start() -> None:
    # containerd's answer for a container whose process could not start (kubernetes#120331)
    pod = _with_main(
        {
            "state": {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "startedAt": "1970-01-01T00:00:00Z",
                    "finishedAt": "2026-11-26T05:04:35Z",
                }
            }
        },
        phase="Failed",
    )
    status = unit_status(UNIT, pod)
    assert status.phase is UnitPhase.FAILED
    assert status.running_since is None


# -- ECS ------------------------------------------------------------------------------------------


def test_an_ecs_task_started_at_its_started_at_in_utc_running_or_stopped() -> None:
    # boto3 / aiobotocore parse the epoch seconds into the local zone
    started = datetime(2026, 11, 26, 5, 4, 34, 774000, tzinfo=UTC).astimezone(tzlocal())
    created = started - timedelta(seconds=20)
    running = {"lastStatus": "RUNNING", "createdAt": created, "startedAt": started}
    assert ecs_status.status_of(UNIT, running).running_since == "2026-11-26T05:04:34.774000+00:00"
    stopped = {
        **running,
        "lastStatus": "STOPPED",
        "stopCode": "EssentialContainerExited",
        "containers": [{"name": "main", "exitCode": 0}],
    }
    done = ecs_status.status_of(UNIT, stopped)
    assert (done.phase, done.running_since) == (UnitPhase.SUCCEEDED, "2026-11-26T05:04:34.774000+00:00")


def test_an_ecs_task_that_never_ran_has_no_start() -> None:
    created = datetime(2026, 11, 26, 5, 4, 14, tzinfo=UTC)
    pending = ecs_status.status_of(UNIT, {"lastStatus": "PENDING", "createdAt": created})
    assert pending.running_since is None
    pull_failed = {
        "lastStatus": "STOPPED",
        "createdAt": created,
        "stopCode": "TaskFailedToStart",
        "stoppedReason": "CannotPullContainerError: not found",
        "containers": [{"name": "main", "reason": "CannotPullContainerError: not found"}],
    }
    assert ecs_status.status_of(UNIT, pull_failed).running_since is None


# -- the trigger's events -------------------------------------------------------------------------


def test_running_since_travels_in_trigger_events_and_old_events_still_load() -> None:
    status = UnitStatus(unit=UNIT, phase=UnitPhase.RUNNING, running_since=_at(3))
    event = json.loads(json.dumps(status.to_dict()))
    assert event["running_since"] == _at(3)
    assert UnitStatus.from_dict(event) == status
    older = {k: v for k, v in event.items() if k != "running_since"}
    assert UnitStatus.from_dict(older).running_since is None


# -- the launch-to-running time -------------------------------------------------------------------

INTENT = datetime(2026, 11, 26, 5, 4, 20, tzinfo=UTC)
SEEN = INTENT + timedelta(minutes=10)  # a deferred try resuming long after the start


def test_the_time_runs_from_the_intent_to_the_providers_start_not_to_when_it_is_seen() -> None:
    assert launch_to_running_time(INTENT, "2026-11-26T05:04:34.774000+00:00", SEEN) == timedelta(
        seconds=14, microseconds=774000
    )
    # Kubernetes writes UTC as "Z"; another offset is the same instant
    assert launch_to_running_time(INTENT, "2026-11-26T05:04:34Z", SEEN) == timedelta(seconds=14)
    elsewhere = (INTENT + timedelta(seconds=14)).astimezone(timezone(timedelta(hours=-5)))
    assert launch_to_running_time(INTENT, elsewhere.isoformat(), SEEN) == timedelta(seconds=14)


@pytest.mark.parametrize(
    ("running_since", "expected"),
    [
        # the provider's clock runs behind the worker's: never a negative time
        ((INTENT - timedelta(seconds=3)).isoformat(), timedelta(0)),
        # ...or ahead: never later than the moment it was seen running
        ((SEEN + timedelta(seconds=3)).isoformat(), SEEN - INTENT),
        # no start given, or one that cannot be read: the moment it was seen, as before
        (None, SEEN - INTENT),
        ("not a time", SEEN - INTENT),
    ],
)
def test_the_time_stays_between_the_intent_and_when_it_is_seen(
    running_since: str | None, expected: timedelta
) -> None:
    assert launch_to_running_time(INTENT, running_since, SEEN) == expected
