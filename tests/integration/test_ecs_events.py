"""ECS completion from events, end to end: moto's ECS and SQS, the ECS harness sending the
"ECS Task State Change" documents AWS documents (``tests/harness/ecs_script.py``,
``task_state_change_event``) to the queue as an EventBridge rule would, ``ComputeStatusTrigger``s
on a shared poller whose source long-polls the queue, and the fault proxy on the wire between
them and moto (ECS and SQS alike).

Only EventBridge itself is played by the harness (moto's EventBridge does not watch ECS): it
delivers each event to the queue, and a test's ``transform`` loses, duplicates or reorders them.
Request counts and queue contents are asserted, never times; the poll intervals are chosen so
that a settle that did not come from an event would need a DescribeTasks the test counts.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_compute_provider.hooks.base import Unit
from airflow_compute_provider.triggers import pollers
from airflow_compute_provider.triggers.ecs_events import EcsEventsSource, parse_event
from airflow_compute_provider.triggers.status import ComputeStatusTrigger
from tests.harness.ecs import EcsEnv
from tests.harness.ecs_script import RUNS_FOREVER, SUCCEEDED, TaskOutcome
from tests.harness.proxy import FaultProxy
from tests.harness.proxy_faults import Reset, ecs_throttle
from tests.integration.test_shared_pollers import ecs_config, ecs_units, first_event, phases, until

SETTLE_TIMEOUT = 15.0


@pytest.fixture
def ecs_proxy(ecs_env: EcsEnv, fault_proxy: Callable[[str], FaultProxy]) -> FaultProxy:
    proxy = fault_proxy(ecs_env.endpoint_url)
    ecs_env.route_through(proxy.url)
    return proxy


def trigger(ecs_env: EcsEnv, units: list[Unit], interval: float) -> ComputeStatusTrigger:
    return ComputeStatusTrigger(
        provider="ecs",
        backend_config=ecs_config(ecs_env),
        units=[u.to_dict() for u in units],
        deadline=(datetime.now(UTC) + timedelta(minutes=10)).isoformat(),
        poll_interval=interval,
    )


async def events_source(ecs_env: EcsEnv) -> EcsEventsSource:
    key = pollers.poller_key("ecs", ecs_config(ecs_env))
    poller = await until(lambda: pollers.pollers().get(key), "the shared poller")
    source = poller.source
    assert isinstance(source, EcsEventsSource)
    await until(lambda: poller.stats.rounds >= 1 and source.stats.receives >= 1, "a first read and receive")
    return source


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=120))


def test_the_harness_sends_the_documented_event_shape(ecs_env: EcsEnv) -> None:
    sent: list[dict[str, Any]] = []
    ecs_env.events_queue(transform=lambda e: sent.append(e) or [e])
    [unit] = ecs_units(ecs_env, 1)
    ecs_env.stop_task(unit.resource_id, SUCCEEDED)

    first, last = sent[0], sent[-1]
    assert {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    } <= set(first)
    assert (first["version"], first["detail-type"], first["source"]) == (
        "0",
        "ECS Task State Change",
        "aws.ecs",
    )
    assert first["resources"] == [unit.resource_id]
    assert last["detail"]["lastStatus"] == "STOPPED"
    assert last["detail"]["containers"][0]["exitCode"] == 0
    assert last["detail"]["version"] > first["detail"]["version"]
    parsed = parse_event(json.dumps(last))
    assert parsed is not None
    assert parsed.task_arn == unit.resource_id
    assert parsed.cluster == ecs_env.cluster_name
    # DescribeTasks shows the same version counter as the events
    assert ecs_env.describe_task(unit.resource_id)["version"] == last["detail"]["version"]


def test_a_finish_is_settled_from_its_event(ecs_env: EcsEnv, ecs_proxy: FaultProxy) -> None:
    ecs_env.events_queue()
    a, b = ecs_units(ecs_env, 2)

    async def scenario() -> dict[str, Any]:
        # A 30 s interval: a settle within the test's bound cannot come from polling.
        waiting = asyncio.create_task(first_event(trigger(ecs_env, [a, b], interval=30)))
        source = await events_source(ecs_env)
        ecs_env.stop_task(a.resource_id, SUCCEEDED)
        ecs_env.stop_task(b.resource_id, SUCCEEDED)
        event = await asyncio.wait_for(waiting, SETTLE_TIMEOUT)
        assert source.stats.applied >= 2
        return event

    event = run(scenario())

    assert event["kind"] == "settled"
    assert phases(event) == {a.resource_id: "succeeded", b.resource_id: "succeeded"}
    assert ecs_proxy.counts["DescribeTasks"] == 1  # the first read only
    assert ecs_proxy.counts["AmazonSQS.DeleteMessageBatch"] >= 1


def _drop_stopped(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [] if event["detail"]["lastStatus"] == "STOPPED" else [event]


def _twice(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [event, event]


def _stale_after_each() -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    """Each event is followed by the task's previous event again: older news arriving late."""
    previous: dict[str, dict[str, Any]] = {}

    def transform(event: dict[str, Any]) -> list[dict[str, Any]]:
        arn = event["detail"]["taskArn"]
        before = previous.get(arn)
        previous[arn] = event
        return [event, before] if before is not None else [event]

    return transform


@pytest.mark.parametrize("fault", ["lost", "duplicated", "reordered"])
def test_lost_duplicated_or_reordered_events_change_nothing(
    ecs_env: EcsEnv, ecs_proxy: FaultProxy, fault: str
) -> None:
    transform = {"lost": _drop_stopped, "duplicated": _twice, "reordered": _stale_after_each()}[fault]
    ecs_env.events_queue(transform=transform)
    a, b = ecs_units(ecs_env, 2)
    # lost: the 1 s interval makes the fallback (every 10 intervals) come within the test;
    # otherwise 2 s: a stale event applied would leave a unit RUNNING until a fallback at 20 s.
    interval = 1.0 if fault == "lost" else 2.0

    async def scenario() -> tuple[dict[str, Any], EcsEventsSource]:
        waiting = asyncio.create_task(first_event(trigger(ecs_env, [a, b], interval=interval)))
        source = await events_source(ecs_env)
        ecs_env.stop_task(a.resource_id, SUCCEEDED)
        await until(lambda: source.stats.received >= 2 or fault == "lost", "a's events")
        ecs_env.stop_task(b.resource_id, TaskOutcome(exit_code=0))
        event = await asyncio.wait_for(waiting, 30.0 if fault == "lost" else SETTLE_TIMEOUT)
        return event, source

    event, source = run(scenario())

    assert event["kind"] == "settled"
    assert phases(event) == {a.resource_id: "succeeded", b.resource_id: "succeeded"}
    assert [s["exit_code"] for s in event["statuses"]] == [0, 0]
    if fault == "lost":
        # settled by the slow fallback: every unit read again through DescribeTasks
        assert ecs_proxy.counts["DescribeTasks"] >= 2
    else:
        assert ecs_proxy.counts["DescribeTasks"] == 1
        assert source.stats.stale >= 2


def test_an_unreachable_queue_falls_back_to_describe_tasks_and_says_so_once(
    ecs_env: EcsEnv, ecs_proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    ecs_env.events_queue()
    ecs_proxy.add_rule(Reset(), operation="AmazonSQS.ReceiveMessage")
    [a] = ecs_units(ecs_env, 1)
    caplog.set_level(logging.WARNING, logger="airflow_compute_provider.triggers.ecs_events")

    async def scenario() -> dict[str, Any]:
        waiting = asyncio.create_task(first_event(trigger(ecs_env, [a], interval=0.5)))
        key = pollers.poller_key("ecs", ecs_config(ecs_env))
        poller = await until(lambda: pollers.pollers().get(key), "the shared poller")
        source = poller.source
        assert isinstance(source, EcsEventsSource)
        await until(lambda: source.stats.failed_receives >= 2, "two failed receives", timeout=60)
        rounds = poller.stats.rounds
        await until(lambda: poller.stats.rounds >= rounds + 2, "polling rounds")
        ecs_env.stop_task(a.resource_id, SUCCEEDED)
        return await asyncio.wait_for(waiting, SETTLE_TIMEOUT)

    event = run(scenario())

    assert event["kind"] == "settled"
    assert ecs_proxy.counts["DescribeTasks"] >= 3  # every interval, as without events
    said = [r for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(said) == 1


def test_an_event_is_deleted_only_once_applied(ecs_env: EcsEnv, ecs_proxy: FaultProxy) -> None:
    """A stopped task with a sidecar needs its task definition to tell which exit code counts;
    while DescribeTaskDefinition is throttled the event cannot be applied, so it stays in the
    queue, and SQS delivers it again once it can."""
    queue_url = ecs_env.events_queue(visibility_timeout=1)
    task_definition = ecs_env.ecs.register_task_definition(
        family="events-sidecar",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[
            {"name": "sidecar", "image": "busybox", "essential": False, "memory": 128},
            {"name": "main", "image": "busybox", "essential": True, "memory": 256},
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs_env.default_script = RUNS_FOREVER
    task = ecs_env.run_task(taskDefinition=task_definition)["tasks"][0]
    unit = Unit(0, 0, task["taskArn"], {"region": ecs_env.region, "cluster": ecs_env.cluster_name})
    sqs = ecs_env.client("sqs")

    def in_queue() -> int:
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    async def scenario() -> dict[str, Any]:
        waiting = asyncio.create_task(first_event(trigger(ecs_env, [unit], interval=60)))
        source = await events_source(ecs_env)
        ecs_proxy.add_rule(ecs_throttle(), operation="DescribeTaskDefinition")
        applied = source.stats.applied
        ecs_env.stop_task(unit.resource_id, TaskOutcome(exit_code=0, container="main", others_exit_code=137))
        await until(
            lambda: ecs_proxy.counts.faulted.get("DescribeTaskDefinition", 0) >= 1, "a throttled lookup"
        )
        await until(lambda: source.stats.kept >= 1, "the event judged not applicable yet")
        assert source.stats.applied == applied
        assert in_queue() >= 1  # the STOPPED event is still there
        ecs_proxy.reset()
        return await asyncio.wait_for(waiting, 30.0)

    event = run(scenario())

    assert event["kind"] == "settled"
    assert event["statuses"][0]["phase"] == "succeeded"
    assert event["statuses"][0]["exit_code"] == 0  # main's, not the sidecar's 137
    assert in_queue() == 0
