"""EcsComputeHook against a real ECS API surface: the moto server of ``tests.harness.ecs``.

The AWS cloud itself cannot run here, so moto stands in for it; ``ecs_env`` scripts what ECS
reports about tasks (stop codes, exit codes, RunTask ``failures[]``, clientToken conflicts) and
``fault_proxy`` puts throttles, 5xx answers and request counts on the wire between the hook and
moto. The hook is used exactly as in production: through an Airflow AWS connection
(``AIRFLOW_CONN_AWS_DEFAULT``, endpoint from its extra) and the Amazon provider's clients.

botocore's own retries are switched off (``total_max_attempts: 1``) wherever a test counts
requests, so that every retry counted is the hook's.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airflow_compute_provider.errors import ComputeConfigError, ComputeOperationError, ErrorCode
from airflow_compute_provider.hooks.base import (
    ExecutionRef,
    LaunchPlan,
    Unit,
    UnitLaunch,
    UnitPhase,
    UnitStatus,
)
from airflow_compute_provider.hooks.ecs import EcsComputeHook
from airflow_compute_provider.hooks.ecs_retry import LAUNCH_RETRY, STATUS_RETRY
from airflow_compute_provider.hooks.ecs_tags import (
    EXEC_KEY_TAG,
    EXECUTION_ID_TAG,
    GENERATION_TAG,
    TENANT_ID_TAG,
    UNIT_INDEX_TAG,
    tag_value,
)
from airflow_compute_provider.registry import backend_from_config
from tests.harness.ecs_script import (
    OOM_KILLED,
    RUNS_FOREVER,
    TaskOutcome,
    TaskScript,
    exited,
)
from tests.harness.proxy_faults import Reset, ecs_throttle, ecs_unavailable

pytestmark = pytest.mark.timeout(120)

NO_BOTOCORE_RETRIES: dict[str, Any] = {"retries": {"total_max_attempts": 1}}
EXECUTION = ExecutionRef(tenant_id="tenant-a", execution_id="dag_x:manual__2026-01-01T00:00:00+00:00:task:-1")


def make_hook(ecs_env: Any, **kwargs: Any) -> EcsComputeHook:
    kwargs.setdefault("cluster", ecs_env.cluster_name)
    kwargs.setdefault("botocore_config", NO_BOTOCORE_RETRIES)
    return EcsComputeHook(**kwargs)


def make_plan(
    ecs_env: Any, n: int, execution: ExecutionRef = EXECUTION, generation: int = 0, **request: Any
) -> LaunchPlan:
    template: dict[str, Any] = {
        "taskDefinition": ecs_env.task_definition_arn,
        "launchType": "FARGATE",
        "networkConfiguration": ecs_env.network_configuration,
        "tags": [{"key": "team", "value": "platform"}],
        **request,
    }
    return LaunchPlan(
        execution=execution,
        units=[UnitLaunch(index=i, generation=generation) for i in range(n)],
        request=template,
        operation="provision",
    )


def through_proxy(ecs_env: Any, fault_proxy: Any) -> Any:
    """A fault proxy between the product (the Airflow connection) and moto."""
    proxy = fault_proxy(ecs_env.moto_url)
    ecs_env.route_through(proxy.url)
    return proxy


def started_tasks(ecs_env: Any, n: int) -> list[Unit]:
    """``n`` running tasks started straight on moto (10 per RunTask), as units."""
    ecs_env.default_script = RUNS_FOREVER
    arns: list[str] = []
    while len(arns) < n:
        arns += [t["taskArn"] for t in ecs_env.run_task(count=min(10, n - len(arns)))["tasks"]]
    return [
        Unit(i, 0, arn, {"region": ecs_env.region, "cluster": ecs_env.cluster_name})
        for i, arn in enumerate(arns)
    ]


def tags_of(task: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in task.get("tags") or []}


def comparable(statuses: list[UnitStatus]) -> list[dict[str, Any]]:
    """Statuses as dicts, without the normalizers' timestamps."""
    out = []
    for status in statuses:
        data = status.to_dict()
        if data["error"]:
            data["error"].pop("occurred_at")
        out.append(data)
    return out


# -- launch and find ----------------------------------------------------------------------------


def test_launch_three_units_then_find_them_and_not_a_decoy(ecs_env: Any) -> None:
    ecs_env.default_script = RUNS_FOREVER
    hook = make_hook(ecs_env)
    key = EXECUTION.key

    result = hook.launch(make_plan(ecs_env, 3))

    assert result.refused == []
    assert sorted(u.index for u in result.launched) == [0, 1, 2]
    assert {u.locator["cluster"] for u in result.launched} == {ecs_env.cluster_name}
    assert {u.locator["region"] for u in result.launched} == {ecs_env.region}
    for unit in result.launched:
        task = ecs_env.describe_task(unit.resource_id, include=["TAGS"])
        assert task["startedBy"] == key
        assert tags_of(task) == {
            "team": "platform",
            TENANT_ID_TAG: "tenant-a",
            EXECUTION_ID_TAG: EXECUTION.execution_id,
            EXEC_KEY_TAG: key,
            UNIT_INDEX_TAG: str(unit.index),
            GENERATION_TAG: "0",
        }

    # A task with our startedBy and all but the tenant tag the same: not ours.
    decoy_tags = [
        {"key": TENANT_ID_TAG, "value": "tenant-b"},
        {"key": EXECUTION_ID_TAG, "value": EXECUTION.execution_id},
        {"key": EXEC_KEY_TAG, "value": key},
        {"key": UNIT_INDEX_TAG, "value": "0"},
        {"key": GENERATION_TAG, "value": "0"},
    ]
    decoy_arn = ecs_env.run_task(startedBy=key, tags=decoy_tags)["tasks"][0]["taskArn"]
    # Another execution of the same tenant, with its own key: not ours either.
    other = ExecutionRef(tenant_id="tenant-a", execution_id="another-run")
    hook.launch(make_plan(ecs_env, 1, execution=other))

    # One unit has stopped by now: ListTasks' second pass (STOPPED) must bring it back.
    stopped = next(u for u in result.launched if u.index == 1)
    ecs_env.stop_task(stopped.resource_id, exited(0))

    found = hook.find(EXECUTION)

    assert [(u.index, u.generation) for u in found] == [(0, 0), (1, 0), (2, 0)]
    assert {u.resource_id for u in found} == {u.resource_id for u in result.launched}
    assert decoy_arn not in {u.resource_id for u in found}
    assert [(u.index, u.generation) for u in hook.find(other)] == [(0, 0)]


def test_relaunching_the_same_units_reuses_their_tasks(ecs_env: Any) -> None:
    """Same unit and generation, same clientToken: ECS answers with the tasks it started."""
    ecs_env.default_script = RUNS_FOREVER
    hook = make_hook(ecs_env)
    plan = make_plan(ecs_env, 2)

    first = hook.launch(plan)
    again = hook.launch(plan)

    assert {u.resource_id for u in again.launched} == {u.resource_id for u in first.launched}
    assert len(ecs_env.launched_task_arns()) == 2
    # generation 1 is a new request, and a new task
    retry = hook.launch(make_plan(ecs_env, 1, generation=1))
    assert len(ecs_env.launched_task_arns()) == 3
    assert [(u.index, u.generation) for u in hook.find(EXECUTION)] == [(0, 0), (0, 1), (1, 0)]
    assert retry.launched[0].generation == 1


def test_conflict_on_our_own_token_is_adoption(ecs_env: Any) -> None:
    """A re-rendered template under the same token: ECS says ConflictException with our task."""
    ecs_env.default_script = RUNS_FOREVER
    hook = make_hook(ecs_env)
    first = hook.launch(make_plan(ecs_env, 1))

    changed = hook.launch(make_plan(ecs_env, 1, overrides={"containerOverrides": [{"name": "main"}]}))

    assert changed.refused == []
    assert [u.resource_id for u in changed.launched] == [first.launched[0].resource_id]
    assert len(ecs_env.launched_task_arns()) == 1


def test_conflict_on_a_token_held_by_someone_elses_task_is_refused(ecs_env: Any) -> None:
    hook = make_hook(ecs_env)
    unit = UnitLaunch(index=0, generation=0)
    # Someone started an untagged task under the token our unit 0 will use.
    ecs_env.run_task(clientToken=unit.token(EXECUTION), startedBy="someone")

    result = hook.launch(make_plan(ecs_env, 1))

    assert result.launched == []
    [(launch, error)] = result.refused
    assert launch == unit
    assert error.code is ErrorCode.CONFLICT
    assert error.execution_id == EXECUTION.execution_id
    assert error.tenant_id == EXECUTION.tenant_id
    assert error.operation == "provision"


def test_run_task_failure_refuses_that_unit_only(ecs_env: Any) -> None:
    ecs_env.default_script = RUNS_FOREVER
    ecs_env.script_next_run_task(failures=[{"reason": "RESOURCE:MEMORY"}])
    hook = make_hook(ecs_env)

    result = hook.launch(make_plan(ecs_env, 3))

    assert len(result.launched) == 2
    [(launch, error)] = result.refused
    assert launch.index not in {u.index for u in result.launched}
    assert error.code is ErrorCode.INSUFFICIENT_CAPACITY
    assert error.root_cause.provider_code == "RESOURCE:MEMORY"
    assert error.execution_id == EXECUTION.execution_id


def test_a_503_on_run_task_is_retried_with_the_units_client_token(ecs_env: Any, fault_proxy: Any) -> None:
    ecs_env.default_script = RUNS_FOREVER
    proxy = through_proxy(ecs_env, fault_proxy)
    proxy.add_rule(ecs_unavailable(), operation="RunTask", times=1)
    hook = make_hook(ecs_env)

    result = hook.launch(make_plan(ecs_env, 3))

    # The hook retries a transient RunTask failure (the clientToken makes the repeat idempotent):
    # every unit launched once, one request more than units.
    assert sorted(u.index for u in result.launched) == [0, 1, 2]
    assert result.refused == []
    assert proxy.counts["RunTask"] == 4
    assert len(ecs_env.ecs.list_tasks(cluster=ecs_env.cluster_name)["taskArns"]) == 3


def test_a_503_that_outlasts_the_retries_refuses_that_unit_only(ecs_env: Any, fault_proxy: Any) -> None:
    ecs_env.default_script = RUNS_FOREVER
    proxy = through_proxy(ecs_env, fault_proxy)
    proxy.add_rule(ecs_unavailable(), operation="RunTask", times=LAUNCH_RETRY.attempts)
    hook = make_hook(ecs_env)

    result = hook.launch(make_plan(ecs_env, 1))

    assert result.launched == []
    [(_, error)] = result.refused
    assert error.code is ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE
    assert error.root_cause.http_status == 503
    assert proxy.counts["RunTask"] == LAUNCH_RETRY.attempts


def test_nonexistent_cluster_is_resource_not_found(ecs_env: Any) -> None:
    hook = make_hook(ecs_env, cluster="no-such-cluster")

    result = hook.launch(make_plan(ecs_env, 2))

    assert result.launched == []
    assert sorted(launch.index for launch, _ in result.refused) == [0, 1]
    assert {error.code for _, error in result.refused} == {ErrorCode.RESOURCE_NOT_FOUND}
    with pytest.raises(ComputeOperationError) as found:
        hook.find(EXECUTION)
    assert found.value.error.code is ErrorCode.RESOURCE_NOT_FOUND
    unit = Unit(0, 0, f"arn:aws:ecs:{ecs_env.region}:{ecs_env.account_id}:task/no-such-cluster/abc")
    with pytest.raises(ComputeOperationError) as described:
        hook.describe([unit])
    assert described.value.error.code is ErrorCode.RESOURCE_NOT_FOUND


def test_reserved_request_keys_and_tags_are_refused_before_any_request(ecs_env: Any) -> None:
    hook = make_hook(ecs_env)
    with pytest.raises(ComputeConfigError) as count:
        hook.launch(make_plan(ecs_env, 1, count=2))
    assert count.value.argument == "count"
    with pytest.raises(ComputeConfigError) as tags:
        hook.launch(make_plan(ecs_env, 1, tags=[{"key": TENANT_ID_TAG, "value": "spoofed"}]))
    assert tags.value.argument == "tags"
    assert ecs_env.launched_task_arns() == []


def test_missing_credentials_fail_the_whole_launch(ecs_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {
        "conn_type": "aws",
        "extra": {"endpoint_url": ecs_env.endpoint_url, "region_name": ecs_env.region},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    # No credentials anywhere, and never ask an instance metadata endpoint for some.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    hook = make_hook(ecs_env)

    with pytest.raises(ComputeOperationError) as raised:
        hook.launch(make_plan(ecs_env, 3))

    assert raised.value.error.code is ErrorCode.AUTHENTICATION_FAILED
    assert ecs_env.launched_task_arns() == []


# -- describe -----------------------------------------------------------------------------------


def test_describe_reports_running_failed_oom_and_vanished_units(ecs_env: Any) -> None:
    ecs_env.default_script = RUNS_FOREVER
    hook = make_hook(ecs_env)
    units = sorted(hook.launch(make_plan(ecs_env, 4)).launched, key=lambda u: u.index)
    running, failed, oom, gone = units
    ecs_env.stop_task(failed.resource_id, exited(1))
    ecs_env.stop_task(oom.resource_id, OOM_KILLED)
    ecs_env.stop_task(gone.resource_id, exited(0))
    ecs_env.expire_task(gone.resource_id)

    statuses = hook.describe(units)

    assert [s.unit for s in statuses] == units
    assert [s.phase for s in statuses] == [
        UnitPhase.PENDING,  # the first describe of a new task shows PENDING
        UnitPhase.FAILED,
        UnitPhase.FAILED,
        UnitPhase.VANISHED,
    ]
    assert statuses[0].stuck_since is not None
    assert statuses[0].error is None
    assert statuses[0].exit_code is None
    assert statuses[1].exit_code == 1
    assert statuses[1].error is not None
    assert statuses[1].error.code is ErrorCode.CONTAINER_FAILED
    assert statuses[1].error.root_cause.exit_code == 1
    assert statuses[2].exit_code == 137
    assert statuses[2].error is not None
    assert statuses[2].error.code is ErrorCode.OUT_OF_MEMORY
    assert statuses[2].error.root_cause.exit_code == 137
    assert "OutOfMemoryError" in (statuses[2].error.root_cause.reason or "")
    assert statuses[3].error is None

    later = hook.describe([running])
    assert later[0].phase is UnitPhase.RUNNING
    assert later[0].stuck_since is None


def test_describe_retries_throttling_inside_the_hook(ecs_env: Any, fault_proxy: Any) -> None:
    units = started_tasks(ecs_env, 2)
    proxy = through_proxy(ecs_env, fault_proxy)
    proxy.add_rule(ecs_throttle(), operation="DescribeTasks", times=2)
    hook = make_hook(ecs_env)

    statuses = hook.describe(units)

    assert [s.unit for s in statuses] == units
    assert {s.phase for s in statuses} == {UnitPhase.PENDING}
    assert proxy.counts["DescribeTasks"] == 3
    assert proxy.counts.faulted["DescribeTasks"] == 2


def test_describe_gives_up_after_its_bounded_tries(ecs_env: Any, fault_proxy: Any) -> None:
    units = started_tasks(ecs_env, 1)
    proxy = through_proxy(ecs_env, fault_proxy)
    proxy.add_rule(ecs_throttle(), operation="DescribeTasks")
    hook = make_hook(ecs_env)

    with pytest.raises(ComputeOperationError) as raised:
        hook.describe(units)

    assert raised.value.error.code is ErrorCode.PROVIDER_THROTTLED
    assert proxy.counts["DescribeTasks"] == STATUS_RETRY.attempts


def test_adescribe_retries_a_reset_connection(ecs_env: Any, fault_proxy: Any) -> None:
    units = started_tasks(ecs_env, 2)
    proxy = through_proxy(ecs_env, fault_proxy)
    proxy.add_rule(Reset(), operation="DescribeTasks", times=1)
    proxy.add_rule(ecs_throttle(), operation="DescribeTasks", times=1)
    hook = make_hook(ecs_env)

    statuses = asyncio.run(hook.adescribe(units))

    assert [s.unit for s in statuses] == units
    assert proxy.counts["DescribeTasks"] == 3
    assert proxy.counts.faulted["DescribeTasks"] == 2


def test_describe_of_150_units_takes_two_calls(ecs_env: Any, fault_proxy: Any) -> None:
    units = started_tasks(ecs_env, 150)
    proxy = through_proxy(ecs_env, fault_proxy)
    hook = make_hook(ecs_env)

    statuses = hook.describe(units)

    assert [s.unit for s in statuses] == units
    assert UnitPhase.VANISHED not in {s.phase for s in statuses}
    assert proxy.counts["DescribeTasks"] == 2
    proxy.reset_counts()
    assert [s.unit for s in asyncio.run(hook.adescribe(units))] == units
    assert proxy.counts["DescribeTasks"] == 2


def test_find_and_stop_retry_transient_errors(ecs_env: Any, fault_proxy: Any) -> None:
    ecs_env.default_script = RUNS_FOREVER
    proxy = through_proxy(ecs_env, fault_proxy)
    hook = make_hook(ecs_env)
    launched = hook.launch(make_plan(ecs_env, 2)).launched
    proxy.add_rule(ecs_throttle(), operation="ListTasks", times=1)
    proxy.add_rule(ecs_unavailable(), operation="StopTask", times=1)

    assert [u.resource_id for u in hook.find(EXECUTION)] == [
        u.resource_id for u in sorted(launched, key=lambda u: u.index)
    ]
    assert hook.stop(launched, "rollback") == []

    assert proxy.counts["ListTasks"] == 3  # RUNNING (throttled, then again), STOPPED
    assert proxy.counts["StopTask"] == 3
    assert {ecs_env.describe_task(u.resource_id)["desiredStatus"] for u in launched} == {"STOPPED"}


def test_describe_of_a_succeeded_unit(ecs_env: Any) -> None:
    ecs_env.script_tasks(TaskScript(pending=1, running=1, outcome=exited(0)))
    hook = make_hook(ecs_env)
    [unit] = hook.launch(make_plan(ecs_env, 1)).launched

    phases = [hook.describe([unit])[0] for _ in range(3)]

    assert [s.phase for s in phases] == [UnitPhase.PENDING, UnitPhase.RUNNING, UnitPhase.SUCCEEDED]
    assert phases[-1].exit_code == 0
    assert phases[-1].error is None


def test_exit_code_is_the_essential_containers(ecs_env: Any) -> None:
    """A non-essential sidecar that exited non-zero does not speak for the task."""
    task_definition = ecs_env.ecs.register_task_definition(
        family="with-sidecar",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[
            {"name": "sidecar", "image": "busybox", "essential": False, "memory": 128},
            {"name": "main", "image": "busybox", "essential": True, "memory": 256},
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    hook = make_hook(ecs_env)
    failed, succeeded = sorted(
        hook.launch(make_plan(ecs_env, 2, taskDefinition=task_definition)).launched, key=lambda u: u.index
    )
    ecs_env.stop_task(failed.resource_id, TaskOutcome(exit_code=3, container="main", others_exit_code=1))
    # main exits 0; the sidecar, killed on the way out, 137
    ecs_env.stop_task(succeeded.resource_id, TaskOutcome(exit_code=0, container="main", others_exit_code=137))

    statuses = hook.describe([failed, succeeded])

    assert [(s.phase, s.exit_code) for s in statuses] == [(UnitPhase.FAILED, 3), (UnitPhase.SUCCEEDED, 0)]
    assert statuses[0].error is not None
    assert statuses[0].error.code is ErrorCode.CONTAINER_FAILED
    assert statuses[0].error.root_cause.exit_code == 3
    assert statuses[1].error is None


def test_adescribe_matches_describe(ecs_env: Any) -> None:
    ecs_env.default_script = RUNS_FOREVER
    hook = make_hook(ecs_env)
    units = sorted(hook.launch(make_plan(ecs_env, 4)).launched, key=lambda u: u.index)
    ecs_env.stop_task(units[1].resource_id, exited(2))
    ecs_env.stop_task(units[2].resource_id, OOM_KILLED)
    ecs_env.stop_task(units[3].resource_id, exited(0))
    ecs_env.expire_task(units[3].resource_id)
    hook.describe(units[:1])  # past PENDING, so that both calls below see RUNNING

    sync = hook.describe(units)
    asynchronous = asyncio.run(hook.adescribe(units))

    assert [s.phase for s in sync] == [
        UnitPhase.RUNNING,
        UnitPhase.FAILED,
        UnitPhase.FAILED,
        UnitPhase.VANISHED,
    ]
    assert comparable(asynchronous) == comparable(sync)


# -- stop ---------------------------------------------------------------------------------------


def test_stop_stops_running_units_and_ignores_gone_ones(ecs_env: Any) -> None:
    ecs_env.default_script = RUNS_FOREVER
    hook = make_hook(ecs_env)
    running, stopped, gone = sorted(hook.launch(make_plan(ecs_env, 3)).launched, key=lambda u: u.index)
    ecs_env.stop_task(stopped.resource_id, exited(0))
    ecs_env.stop_task(gone.resource_id, exited(0))
    ecs_env.expire_task(gone.resource_id)
    reason = "rolled back: " + "x" * 400

    assert hook.stop([running, stopped, gone], reason) == []

    task = ecs_env.describe_task(running.resource_id)
    assert task["desiredStatus"] == "STOPPED"
    [status] = hook.describe([running])
    assert status.phase is UnitPhase.FAILED  # the next describe sees it STOPPED (by a user)
    stopped_reason = ecs_env.describe_task(running.resource_id)["stoppedReason"]
    assert stopped_reason == reason[:255]


def test_stop_reports_units_it_could_not_stop(ecs_env: Any) -> None:
    hook = make_hook(ecs_env, cluster="no-such-cluster")
    unit = Unit(0, 0, f"arn:aws:ecs:{ecs_env.region}:{ecs_env.account_id}:task/no-such-cluster/abc")

    [(failed, error)] = hook.stop([unit], "cleanup")

    assert failed == unit
    assert error.code is ErrorCode.RESOURCE_NOT_FOUND
    assert error.root_cause.resource_id == unit.resource_id


# -- configuration --------------------------------------------------------------------------------


def test_backend_config_round_trip(ecs_env: Any) -> None:
    ecs_env.default_script = RUNS_FOREVER
    hook = make_hook(ecs_env, max_launch_concurrency=3)
    [unit] = hook.launch(make_plan(ecs_env, 1)).launched

    config = json.loads(json.dumps(hook.backend_config()))
    rebuilt = backend_from_config("ecs", config)

    assert isinstance(rebuilt, EcsComputeHook)
    assert rebuilt.provider == "ecs"
    assert (
        rebuilt.backend_config()
        == hook.backend_config()
        == {
            "aws_conn_id": "aws_default",
            "region_name": None,
            "cluster": ecs_env.cluster_name,
            "botocore_config": NO_BOTOCORE_RETRIES,
            "max_launch_concurrency": 3,
        }
    )
    assert rebuilt.locator() == {"region": ecs_env.region, "cluster": ecs_env.cluster_name}
    assert [s.unit for s in rebuilt.describe([unit])] == [unit]


def test_tag_values_are_made_valid_deterministically() -> None:
    long_id = "run:" + "é" * 300
    assert tag_value("manual__2026-01-01T00:00:00+00:00") == "manual__2026-01-01T00:00:00+00:00"
    assert tag_value("a~b(c)") == "a_b_c_"
    assert len(tag_value(long_id)) == 256
    assert tag_value(long_id) == tag_value(long_id)
    assert tag_value(long_id) != tag_value(long_id + "x")
