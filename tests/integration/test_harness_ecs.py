"""The ECS harness: moto answers the way ECS does, with the outcomes a test scripts.

Everything here goes through boto3 over HTTP to the moto server; the AWS cloud itself is the only
thing not real.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.harness.ecs import EcsEnv
from tests.harness.ecs_script import OOM_KILLED, RUNS_FOREVER, TaskScript, exited, image_not_found


def _statuses(ecs_env: EcsEnv, arn: str, describes: int) -> list[tuple[str, str]]:
    seen = []
    for _ in range(describes):
        task = ecs_env.describe_task(arn)
        seen.append((task["lastStatus"], task["desiredStatus"]))
    return seen


def test_task_scripted_to_run_out_of_memory_reports_it_like_ecs(ecs_env: EcsEnv) -> None:
    ecs_env.default_script = RUNS_FOREVER
    launched = ecs_env.run_task()
    assert launched["failures"] == []
    arn = launched["tasks"][0]["taskArn"]
    assert launched["tasks"][0]["lastStatus"] == "PROVISIONING"
    assert "exitCode" not in launched["tasks"][0]["containers"][0]

    ecs_env.stop_task(arn, OOM_KILLED)

    task = ecs_env.describe_task(arn)
    assert (task["lastStatus"], task["desiredStatus"]) == ("STOPPED", "STOPPED")
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["stoppedReason"] == "Essential container in task exited"
    [container] = task["containers"]
    assert container["name"] == "main"
    assert container["exitCode"] == 137
    assert container["reason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert container["taskArn"] == arn
    assert task["stoppedAt"] >= task["createdAt"]


def test_task_moves_one_phase_per_describe(ecs_env: EcsEnv) -> None:
    ecs_env.script_tasks(TaskScript(provisioning=1, pending=2, running=1, stopping=1, outcome=exited(3)))
    arn = ecs_env.run_task()["tasks"][0]["taskArn"]

    assert _statuses(ecs_env, arn, 7) == [
        ("PROVISIONING", "RUNNING"),
        ("PENDING", "RUNNING"),
        ("PENDING", "RUNNING"),
        ("RUNNING", "RUNNING"),
        ("DEACTIVATING", "STOPPED"),
        ("STOPPED", "STOPPED"),
        ("STOPPED", "STOPPED"),
    ]
    assert ecs_env.describe_task(arn)["containers"][0]["exitCode"] == 3


def test_started_at_is_set_when_a_task_reaches_running_and_only_then(ecs_env: EcsEnv) -> None:
    # ECS: startedAt is when the task went from PENDING to RUNNING (API reference, Task)
    ecs_env.script_tasks(TaskScript(pending=2, running=2))
    arn = ecs_env.run_task()["tasks"][0]["taskArn"]
    pending = [ecs_env.describe_task(arn) for _ in range(2)]
    assert [t["lastStatus"] for t in pending] == ["PENDING", "PENDING"]
    assert all("startedAt" not in t for t in pending)
    running = ecs_env.describe_task(arn)
    assert running["lastStatus"] == "RUNNING"
    assert running["startedAt"] >= running["createdAt"]
    later = [ecs_env.describe_task(arn) for _ in range(3)]
    assert [t["lastStatus"] for t in later] == ["RUNNING", "STOPPED", "STOPPED"]
    assert {t["startedAt"] for t in later} == {running["startedAt"]}

    # a task stopped while still pending, or one whose image never pulled, never started
    ecs_env.default_script = TaskScript(pending=None)
    stopped_pending = ecs_env.run_task()["tasks"][0]["taskArn"]
    ecs_env.describe_task(stopped_pending)  # PENDING
    ecs_env.ecs.stop_task(cluster=ecs_env.cluster_name, task=stopped_pending, reason="rollback")
    assert [ecs_env.describe_task(stopped_pending).get("startedAt") for _ in range(2)] == [None, None]
    ecs_env.script_tasks(TaskScript(running=0, outcome=image_not_found()))
    unpulled = ecs_env.run_task()["tasks"][0]["taskArn"]
    assert [ecs_env.describe_task(unpulled)["lastStatus"] for _ in range(2)] == ["PENDING", "STOPPED"]
    assert "startedAt" not in ecs_env.describe_task(unpulled)


def test_rules_pick_scripts_by_task_tags(ecs_env: EcsEnv) -> None:
    ecs_env.default_script = TaskScript(pending=0, running=0)  # stops at the first describe
    ecs_env.script_tasks(
        TaskScript(pending=0, running=0, outcome=image_not_found()),
        count=None,
        where=lambda task: task.tags.get("unit") == "1",
    )
    arns = {
        unit: ecs_env.run_task(tags=[{"key": "unit", "value": unit}])["tasks"][0]["taskArn"]
        for unit in ("0", "1", "2")
    }
    stopped = {unit: ecs_env.describe_task(arn) for unit, arn in arns.items()}

    assert stopped["0"]["stopCode"] == stopped["2"]["stopCode"] == "EssentialContainerExited"
    assert stopped["1"]["stopCode"] == "TaskFailedToStart"
    assert stopped["1"]["stoppedReason"].startswith("CannotPullContainerError")
    assert "exitCode" not in stopped["1"]["containers"][0]
    assert stopped["1"]["containers"][0]["reason"].endswith("not found")


def test_hold_pending_keeps_a_task_pending(ecs_env: EcsEnv) -> None:
    arn = ecs_env.run_task()["tasks"][0]["taskArn"]
    ecs_env.hold_pending(arn)
    assert _statuses(ecs_env, arn, 5) == [("PENDING", "RUNNING")] * 5


def test_run_task_scripted_to_return_failures(ecs_env: EcsEnv) -> None:
    ecs_env.script_next_run_task(failures=[{"arn": ecs_env.cluster_arn, "reason": "RESOURCE:MEMORY"}])

    refused = ecs_env.run_task(count=1)
    partly = ecs_env.run_task(count=1)  # only the next call was scripted

    assert refused["tasks"] == []
    assert refused["failures"] == [{"arn": ecs_env.cluster_arn, "reason": "RESOURCE:MEMORY"}]
    assert len(partly["tasks"]) == 1
    assert partly["failures"] == []


def test_run_task_partial_failure_launches_the_rest(ecs_env: EcsEnv) -> None:
    ecs_env.script_next_run_task(failures=[{"reason": "Capacity is unavailable at this time."}])
    response = ecs_env.run_task(count=3)
    assert len(response["tasks"]) == 2
    assert response["failures"] == [{"reason": "Capacity is unavailable at this time."}]


def test_run_task_failures_for_the_requests_a_test_picks(ecs_env: EcsEnv) -> None:
    ecs_env.script_next_run_task(
        failures=[{"reason": "RESOURCE:CPU"}],
        times=None,
        where=lambda body: body.get("startedBy") == "unit-1",
    )
    units = ["unit-0", "unit-1", "unit-2", "unit-1"]
    answers = [ecs_env.run_task(startedBy=unit) for unit in units]

    assert [len(answer["tasks"]) for answer in answers] == [1, 0, 1, 0]
    assert [answer["failures"] for answer in answers] == [
        [],
        [{"reason": "RESOURCE:CPU"}],
        [],
        [{"reason": "RESOURCE:CPU"}],
    ]


def test_client_token_is_idempotent_and_conflicts_on_other_parameters(ecs_env: EcsEnv) -> None:
    first = ecs_env.run_task(clientToken="exec-u0-g1", startedBy="exec")
    again = ecs_env.run_task(clientToken="exec-u0-g1", startedBy="exec")
    assert [t["taskArn"] for t in again["tasks"]] == [t["taskArn"] for t in first["tasks"]]
    assert len(ecs_env.launched_task_arns()) == 1

    with pytest.raises(ClientError) as conflict:
        ecs_env.run_task(clientToken="exec-u0-g1", startedBy="other")
    assert conflict.value.response["Error"]["Code"] == "ConflictException"
    assert conflict.value.response["resourceIds"] == [first["tasks"][0]["taskArn"]]


def test_ec2_launch_without_instances_is_an_invalid_parameter(ecs_env: EcsEnv) -> None:
    with pytest.raises(ClientError) as refused:
        ecs_env.client(retries={"max_attempts": 1}).run_task(
            cluster=ecs_env.cluster_name, taskDefinition=ecs_env.task_definition_arn, launchType="EC2"
        )
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "No Container Instances" in refused.value.response["Error"]["Message"]


def test_list_and_describe_by_started_by_and_tags(ecs_env: EcsEnv) -> None:
    ecs_env.default_script = RUNS_FOREVER
    mine = ecs_env.run_task(startedBy="cxabc", tags=[{"key": "execution", "value": "e1"}])["tasks"][0]
    ecs_env.run_task(startedBy="cxother")
    finished = ecs_env.run_task(startedBy="cxabc")["tasks"][0]["taskArn"]
    ecs_env.stop_task(finished, exited(0))

    listed = ecs_env.ecs.list_tasks(cluster=ecs_env.cluster_name, startedBy="cxabc")["taskArns"]
    stopped = ecs_env.ecs.list_tasks(
        cluster=ecs_env.cluster_name, startedBy="cxabc", desiredStatus="STOPPED"
    )["taskArns"]
    assert listed == [mine["taskArn"]]  # ECS lists desiredStatus RUNNING unless told otherwise
    assert stopped == [finished]

    with_tags = ecs_env.describe_task(mine["taskArn"], include=["TAGS"])
    without = ecs_env.describe_task(mine["taskArn"])
    assert with_tags["tags"] == [{"key": "execution", "value": "e1"}]
    assert "tags" not in without


def test_describe_reports_unknown_and_expired_tasks_missing(ecs_env: EcsEnv) -> None:
    arn = ecs_env.run_task()["tasks"][0]["taskArn"]
    ecs_env.expire_task(arn)
    response = ecs_env.ecs.describe_tasks(cluster=ecs_env.cluster_name, tasks=[arn])
    assert response["tasks"] == []
    assert response["failures"] == [{"arn": arn, "reason": "MISSING"}]


def test_stop_task_is_user_initiated_and_takes_a_describe_to_finish(ecs_env: EcsEnv) -> None:
    ecs_env.default_script = RUNS_FOREVER
    arn = ecs_env.run_task()["tasks"][0]["taskArn"]
    ecs_env.describe_task(arn)  # PENDING
    ecs_env.describe_task(arn)  # RUNNING

    answer = ecs_env.ecs.stop_task(cluster=ecs_env.cluster_name, task=arn, reason="rollback")["task"]
    assert (answer["lastStatus"], answer["desiredStatus"]) == ("RUNNING", "STOPPED")
    assert _statuses(ecs_env, arn, 2) == [("DEACTIVATING", "STOPPED"), ("STOPPED", "STOPPED")]
    task = ecs_env.describe_task(arn)
    assert (task["stopCode"], task["stoppedReason"]) == ("UserInitiated", "rollback")

    with pytest.raises(ClientError) as unknown:
        ecs_env.ecs.stop_task(cluster=ecs_env.cluster_name, task="0123456789abcdef")
    assert unknown.value.response["Error"]["Code"] == "InvalidParameterException"


@pytest.mark.airflow
def test_airflow_aws_connection_points_at_moto(ecs_env: EcsEnv) -> None:
    from airflow.providers.amazon.aws.hooks.ecs import EcsHook

    hook = EcsHook(aws_conn_id="aws_default")
    assert ecs_env.cluster_arn in hook.conn.list_clusters()["clusterArns"]
