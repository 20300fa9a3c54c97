"""Container output of ECS tasks in the task log, and a failed task's last lines in its error.

Real Airflow (``dag.test()`` in a child process, whose output is the task log read back here),
the moto ECS and CloudWatch Logs endpoints, the fault proxy on the wire. moto stands in for AWS:
the ECS harness writes each scripted task's ``output`` as log events in the stream its task
definition's awslogs configuration names (``tests/harness/ecs_script.py``), one line per
describe that sees the task running and the rest once it stopped, so lines arrive while the try
waits, as a container's would.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.harness.ecs import LOG_GROUP
from tests.harness.ecs_script import TaskScript, exited
from tests.harness.proxy_faults import Delay, ecs_error
from tests.integration.ecs_dags import Code, ecs_dag

pytestmark = pytest.mark.airflow

CANARY = "canary-7f3a91c0-s3cr3t"
OVERRIDES = {
    "containerOverrides": [{"name": "main", "environment": [{"name": "DB_PASSWORD", "value": CANARY}]}]
}
#: CloudWatch Logs' GetLogEvents as the fault proxy names it (its X-Amz-Target)
GET_LOG_EVENTS = "Logs_20140328.GetLogEvents"
#: what the container prints: the last line echoes the secret it was given
OUTPUT = ("starting provisioning", "step 1 of 3", "step 2 of 3", f"connecting with {CANARY}", "all done")


def _run(airflow_env: Any, ecs_env: Any, dag_id: str, **kwargs: Any) -> tuple[Any, str]:
    kwargs.setdefault("task_definition", ecs_env.logged_task_definition_arn)
    kwargs.setdefault("overrides", OVERRIDES)
    source = ecs_dag(dag_id, network_configuration=ecs_env.network_configuration, **kwargs)
    child = airflow_env.run_dag_in_subprocess(source, dag_id)
    child.wait(timeout=180)
    return child.record, child.log_text()


def _printed(out: str, unit: int = 0) -> list[str]:
    """The container lines the task log shows for ``unit``, in order (the console renderer
    pads the event and follows it with ``[logger] loc=...``)."""
    found = re.findall(rf"\[unit {unit}\] (.*) \[airflow\.task\.", out)
    return [line.rstrip() for line in found]


def _split_at_the_retry(out: str) -> tuple[str, str]:
    """The task log of try 1 and of what follows (Airflow's retry callback logs the failure)."""
    at = out.index("compute operation failed, retry follows")
    return out[:at], out[at:]


def _masked(lines: tuple[str, ...] | list[str]) -> list[str]:
    return [line.replace(CANARY, "***") for line in lines]


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_success_prints_every_line_once_with_secrets_masked(airflow_env, ecs_env, deferrable) -> None:
    ecs_env.script_tasks(TaskScript(running=3, output=OUTPUT))
    record, out = _run(
        airflow_env,
        ecs_env,
        f"ecs_logs_ok_{int(deferrable)}",
        tenant_id=f"logs-ok-{int(deferrable)}",
        deferrable=deferrable,
    )

    assert record.state() == "success"
    (task_arn,) = ecs_env.launched_task_arns()
    assert ecs_env.log_events(task_arn) == list(OUTPUT)
    assert _printed(out) == _masked(OUTPUT)
    assert CANARY not in out


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_a_failed_task_carries_its_last_lines_in_its_error(airflow_env, ecs_env, deferrable) -> None:
    ecs_env.script_tasks(TaskScript(running=1, output=OUTPUT, outcome=exited(3)))
    record, out = _run(
        airflow_env,
        ecs_env,
        f"ecs_logs_failed_{int(deferrable)}",
        tenant_id=f"logs-failed-{int(deferrable)}",
        deferrable=deferrable,
        log_lines_on_failure=3,
    )

    assert record.state() == "failed"
    error = record.xcom("provision", key="compute_error")
    assert error["code"] == "CONTAINER_FAILED"
    assert error["output"]["container"] == "main"
    assert error["output"]["lines"] == _masked(OUTPUT[-3:])
    assert _printed(out) == _masked(OUTPUT)
    assert CANARY not in out
    assert CANARY not in str(error)


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_a_reattaching_try_prints_no_line_twice(airflow_env, ecs_env, deferrable) -> None:
    # One line per describe while running: try 1 (1 s) times out with some printed, try 2
    # reattaches to the same task and prints the rest, none of them again.
    lines = tuple(f"tick {i}" for i in range(40))
    ecs_env.script_tasks(TaskScript(pending=0, running=25, output=lines))
    record, out = _run(
        airflow_env,
        ecs_env,
        f"ecs_logs_reattach_{int(deferrable)}",
        tenant_id=f"logs-reattach-{int(deferrable)}",
        deferrable=deferrable,
        timeout=Code("timedelta(seconds=2)"),
        timeout_factor=15.0,
        retries=1,
        log_fetch_interval=0.2,
    )

    assert record.state() == "success"
    assert record.try_numbers()["provision"] == 2
    assert len(ecs_env.launched_task_arns()) == 1, "the second try reattached"
    assert _printed(out) == list(lines)
    first, then = _split_at_the_retry(out)
    assert _printed(first), "try 1 printed some lines itself"
    assert _printed(then), "try 2 printed the rest"


def test_no_awslogs_configuration_is_a_warning_not_a_failure(airflow_env, ecs_env) -> None:
    ecs_env.script_tasks(TaskScript(output=OUTPUT))
    record, out = _run(
        airflow_env,
        ecs_env,
        "ecs_logs_unconfigured",
        tenant_id="logs-none",
        task_definition="compute-test-task",
    )

    assert record.state() == "success"
    assert "container main has no awslogs log configuration" in out
    assert _printed(out) == []


def test_a_missing_log_group_is_a_warning_and_the_failure_stays_the_tasks(airflow_env, ecs_env) -> None:
    ecs_env.script_tasks(TaskScript(output=OUTPUT, outcome=exited(2)))
    record, out = _run(
        airflow_env, ecs_env, "ecs_logs_no_group", tenant_id="logs-no-group", awslogs_group="/ecs/not-there"
    )

    assert record.state() == "failed"
    error = record.xcom("provision", key="compute_error")
    assert error["code"] == "CONTAINER_FAILED"
    assert "output" not in error
    assert "the log group or stream does not exist" in out


@pytest.mark.parametrize(
    "fault",
    [
        ecs_error("AccessDeniedException", "User is not authorized to perform: logs:GetLogEvents"),
        ecs_error("ServiceUnavailableException", "Service is temporarily unavailable.", 503),
        # slower than the reader's read timeout (5 s, two attempts): the first read gives up and
        # turns reading off for the try (SLOW_READ_SECONDS), which goes on
        Delay(12.0),
    ],
    ids=["access-denied", "unavailable", "slow"],
)
def test_a_refused_or_faulted_logs_api_is_a_warning(
    airflow_env, ecs_env, fault_proxy, fault, request
) -> None:
    # Faults on the wire (the fault proxy in front of moto): only CloudWatch Logs' GetLogEvents.
    proxy = fault_proxy(ecs_env.endpoint_url)
    ecs_env.route_through(proxy.url)
    proxy.add_rule(fault, operation=GET_LOG_EVENTS)
    ecs_env.script_tasks(TaskScript(output=OUTPUT))
    record, out = _run(airflow_env, ecs_env, "ecs_logs_faulted", tenant_id="logs-faulted")

    assert record.state() == "success"
    assert f"cannot read {LOG_GROUP} compute/main/" in out, [
        x for x in out.splitlines() if "container logs" in x
    ]
    if request.node.callspec.id == "slow":
        assert "the logs API is slow, so this try reads no more of them" in out
    assert _printed(out) == []
