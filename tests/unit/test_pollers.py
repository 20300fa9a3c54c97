"""The shared poller's fan-out, subscription and backoff logic, with an in-memory status source.

The source here is a test double (a dict of unit phases): these tests are about which trigger
gets which statuses, when the poller reads and when it stops, not about any provider. The same
behaviour against moto and the real Kubernetes API server is in
``tests/integration/test_shared_pollers.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_compute_provider.errors import ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.hooks.base import Unit, UnitPhase, UnitStatus
from airflow_compute_provider.testing import memory
from airflow_compute_provider.triggers import pollers
from airflow_compute_provider.triggers.pollers import SharedPoller, Update, poller_key, subscribe
from airflow_compute_provider.triggers.status import ComputeStatusTrigger

FAST = 0.2  # seconds between rounds in these tests


class MemorySource:
    """Unit phases in a dict; records every read; can fail reads on demand."""

    def __init__(self) -> None:
        self.phases: dict[str, UnitPhase] = {}
        self.reads: list[list[str]] = []
        self.fail: Callable[[Sequence[Unit]], BaseException | None] = lambda _units: None
        self.changed: Callable[[], None] = lambda: None
        self.closed = False
        self.wrong_length = False

    async def describe(self, units: Sequence[Unit]) -> list[UnitStatus]:
        self.reads.append([u.resource_id for u in units])
        exc = self.fail(units)
        if exc is not None:
            raise exc
        statuses = [UnitStatus(u, self.phases.get(u.resource_id, UnitPhase.RUNNING)) for u in units]
        return statuses[1:] if self.wrong_length else statuses

    def start(self, changed: Callable[[], None]) -> None:
        self.changed = changed

    async def aclose(self) -> None:
        self.closed = True


def unit(name: str, index: int = 0) -> Unit:
    return Unit(index=index, generation=0, resource_id=name, locator={"cluster": "c"})


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


def throttled(retry_after: float | None = None) -> ComputeOperationError:
    return ComputeOperationError(
        ComputeError(
            code=ErrorCode.PROVIDER_THROTTLED, message="Rate exceeded", retry_after_seconds=retry_after
        )
    )


def names(update: Update | None) -> list[tuple[str, str]]:
    assert update is not None
    assert update.error is None, update.error
    return [(s.unit.resource_id, s.phase.value) for s in update.statuses]


# -- fan-out -----------------------------------------------------------------------------------


def test_each_subscriber_gets_only_its_units_in_its_order_from_one_read() -> None:
    source = MemorySource()
    source.phases = {"a": UnitPhase.SUCCEEDED, "c": UnitPhase.FAILED}

    async def scenario() -> None:
        key = ("test", "fan-out")
        async with (
            subscribe(key, [unit("b"), unit("a")], interval=FAST, source_factory=lambda: source) as one,
            subscribe(key, [unit("c"), unit("a")], interval=FAST, source_factory=pytest.fail) as two,
        ):
            assert names(await one.next(5)) == [("b", "running"), ("a", "succeeded")]
            assert names(await two.next(5)) == [("c", "failed"), ("a", "succeeded")]
            # The first round read the union once, the shared unit once.
            assert sorted(source.reads[0]) == ["a", "b", "c"]

    run(scenario())


def test_a_burst_of_subscribers_is_read_in_batched_rounds_not_one_read_each() -> None:
    source = MemorySource()

    async def scenario() -> None:
        key = ("test", "burst")
        async with contextlib.AsyncExitStack() as stack:
            subscriptions = [
                await stack.enter_async_context(
                    subscribe(key, [unit(f"u{i}")], interval=FAST, source_factory=lambda: source)
                )
                for i in range(200)
            ]
            for subscription in subscriptions:
                assert (await subscription.next(5)) is not None
            first_reads = len(source.reads)
            await asyncio.sleep(FAST * 3)
            # Every later round reads all 200 units in one describe.
            later = source.reads[first_reads:]
            assert later, "no round after the first"
            assert all(len(read) == 200 for read in later)
        assert first_reads <= 2

    run(scenario())


def test_the_poller_reads_at_the_smallest_interval_any_subscriber_asked_for() -> None:
    source = MemorySource()

    async def scenario() -> None:
        key = ("test", "interval")
        async with subscribe(key, [unit("slow")], interval=60, source_factory=lambda: source):
            await asyncio.sleep(0.3)
            assert len(source.reads) == 1  # just the newcomer's first read
            async with subscribe(key, [unit("fast")], interval=FAST, source_factory=lambda: source):
                poller = pollers.pollers()[key]
                assert poller.interval == FAST
                await asyncio.sleep(FAST * 4)
                assert len(source.reads) >= 3

    run(scenario())


def test_a_push_source_reports_a_change_before_the_interval_is_up() -> None:
    source = MemorySource()

    async def scenario() -> None:
        async with subscribe(
            ("test", "push"), [unit("p")], interval=60, source_factory=lambda: source
        ) as sub:
            assert names(await sub.next(5)) == [("p", "running")]
            source.phases["p"] = UnitPhase.SUCCEEDED
            source.changed()
            assert names(await sub.next(5)) == [("p", "succeeded")]

    run(scenario())


# -- leaving -----------------------------------------------------------------------------------


def test_leaving_unsubscribes_and_the_last_one_out_stops_the_poller() -> None:
    source = MemorySource()

    async def scenario() -> None:
        key = ("test", "leave")
        async with subscribe(key, [unit("stays")], interval=FAST, source_factory=lambda: source) as stays:
            async with subscribe(key, [unit("goes")], interval=FAST, source_factory=lambda: source):
                await stays.next(5)
            poller = pollers.pollers()[key]
            assert poller.subscribers == 1
            reads_before = len(source.reads)
            await asyncio.sleep(FAST * 3)
            assert all(read == ["stays"] for read in source.reads[reads_before:])
        assert key not in pollers.pollers()
        for _ in range(5):
            await asyncio.sleep(0)  # let the cancelled poller task run its finally
        assert poller.closed
        assert source.closed

    run(scenario())


def test_a_cancelled_subscriber_unsubscribes() -> None:
    source = MemorySource()

    async def waiter(key: tuple[str, str]) -> None:
        async with subscribe(key, [unit("w")], interval=FAST, source_factory=lambda: source) as sub:
            while True:
                await sub.next()

    async def scenario() -> None:
        key = ("test", "cancel")
        task = asyncio.create_task(waiter(key))
        await asyncio.sleep(FAST * 2)
        assert pollers.pollers()[key].subscribers == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert key not in pollers.pollers()

    run(scenario())


def test_pollers_are_kept_per_event_loop() -> None:
    source = MemorySource()
    seen: list[SharedPoller] = []

    async def scenario() -> None:
        async with subscribe(
            ("test", "loop"), [unit("x")], interval=FAST, source_factory=lambda: source
        ) as s:
            await s.next(5)
            seen.append(pollers.pollers()[("test", "loop")])

    run(scenario())
    run(scenario())
    assert seen[0] is not seen[1]


# -- failures ----------------------------------------------------------------------------------


def test_throttling_slows_the_poller_down_and_honours_retry_after() -> None:
    source = MemorySource()
    source.fail = lambda _units: throttled(retry_after=30)

    async def scenario() -> None:
        async with subscribe(
            ("test", "throttle"), [unit("t")], interval=FAST, source_factory=lambda: source
        ) as s:
            update = await s.next(5)
            assert update is not None
            assert update.error is not None
            assert update.error.code is ErrorCode.PROVIDER_THROTTLED
            assert not update.final  # the trigger keeps waiting
            poller = pollers.pollers()[("test", "throttle")]
            assert poller.backoff_remaining > 25
            # A refresh does not jump a throttled poller's queue.
            s.refresh()
            await asyncio.sleep(FAST * 2)
            assert len(source.reads) == 1

    run(scenario())


def test_a_connection_that_could_not_be_fetched_is_read_again() -> None:
    # Airflow 3 reports a connection lookup that failed for any reason (its API server or its
    # database restarting) as "isn't defined". The launch used that connection, so the poller
    # reads again after a backoff instead of ending the wait (the distributed soak met it while
    # PostgreSQL restarted).
    from airflow.sdk.exceptions import AirflowNotFoundException

    source = MemorySource()
    failures = iter([AirflowNotFoundException("The conn_id `kube_soak` isn't defined")])
    source.fail = lambda _units: next(failures, None)

    async def scenario() -> None:
        async with subscribe(
            ("test", "connection"), [unit("t")], interval=FAST, source_factory=lambda: source
        ) as s:
            update = await s.next(5)
            assert update is not None
            assert update.error is not None
            assert update.error.code is ErrorCode.UNKNOWN_PROVIDER_ERROR
            assert not update.final  # the trigger keeps waiting
            assert names(await s.next(10)) == [("t", "running")]

    run(scenario())


def test_backoff_doubles_without_a_hint_and_resets_after_a_good_read() -> None:
    source = MemorySource()
    failures = iter([throttled(), throttled(), None, None, None, None, None, None])
    source.fail = lambda _units: next(failures, None)

    async def scenario() -> None:
        key = ("test", "doubling")
        async with subscribe(key, [unit("d")], interval=0.05, source_factory=lambda: source) as s:
            poller = pollers.pollers()[key]
            first = await s.next(5)
            assert first is not None
            assert first.error is not None
            assert 0.05 < poller.backoff_remaining <= 0.1  # interval * 2
            second = await s.next(5)
            assert second is not None
            assert second.error is not None
            assert 0.1 < poller.backoff_remaining <= 0.2  # interval * 4
            assert names(await s.next(5)) == [("d", "running")]
            assert poller.stats.failures == 2

    run(scenario())


def test_a_non_retriable_error_reaches_only_the_subscriber_whose_units_cause_it() -> None:
    source = MemorySource()
    gone = ComputeOperationError(ComputeError(code=ErrorCode.RESOURCE_NOT_FOUND, message="cluster not found"))
    source.fail = lambda units: gone if any(u.resource_id == "bad" for u in units) else None

    async def scenario() -> None:
        key = ("test", "isolate")
        async with (
            subscribe(key, [unit("bad")], interval=FAST, source_factory=lambda: source) as bad,
            subscribe(key, [unit("good")], interval=FAST, source_factory=lambda: source) as good,
        ):
            failed = await bad.next(5)
            assert failed is not None
            assert failed.final
            assert failed.error is not None
            assert failed.error.code is ErrorCode.RESOURCE_NOT_FOUND
            assert names(await good.next(5)) == [("good", "running")]

    run(scenario())


def test_a_broken_source_ends_the_wait_with_an_error_instead_of_hanging() -> None:
    source = MemorySource()
    source.wrong_length = True  # a bug: fewer statuses than units

    async def scenario() -> None:
        async with subscribe(
            ("test", "bug"), [unit("a"), unit("b")], interval=FAST, source_factory=lambda: source
        ) as s:
            update = await s.next(5)
            assert update is not None
            assert update.final
            assert update.error is not None
            assert update.error.code is ErrorCode.UNKNOWN_PROVIDER_ERROR

    run(scenario())


def test_a_transient_error_does_not_hide_statuses_not_read_yet() -> None:
    sub = pollers.Subscription(SharedPoller(("test", "slot"), MemorySource()), [unit("s")], FAST)
    statuses = Update((UnitStatus(unit("s"), UnitPhase.SUCCEEDED),))
    sub.deliver(statuses)
    sub.deliver(Update(error=throttled().error))
    assert asyncio.run(sub.next(0)) is statuses


def test_the_poller_key_ignores_launch_only_settings() -> None:
    base = {"aws_conn_id": "aws_default", "region_name": "us-east-1", "cluster": "c"}
    assert poller_key("ecs", {**base, "max_launch_concurrency": 8}) == poller_key(
        "ecs", {**base, "max_launch_concurrency": 2}
    )
    assert poller_key("ecs", base) != poller_key("ecs", {**base, "cluster": "other"})


# -- the trigger on a shared poller ------------------------------------------------------------


@pytest.fixture(autouse=True)
def _memory_provider() -> Iterator[None]:
    """The triggers below name the in-memory provider; the registry must know it."""
    with memory.registered():
        yield


class MemoryTrigger(ComputeStatusTrigger):
    """The real trigger, reading through the in-memory source instead of a provider."""

    source: MemorySource

    def _source(self) -> pollers.StatusSource:
        return self.source


def make_trigger(source: MemorySource, units: Sequence[Unit], deadline: datetime) -> MemoryTrigger:
    trigger = MemoryTrigger(
        provider="memory",
        backend_config={"name": "test"},
        units=[u.to_dict() for u in units],
        deadline=deadline.isoformat(),
        poll_interval=FAST,
        resume={"marker": 1},
    )
    trigger.source = source
    return trigger


async def first_event(trigger: ComputeStatusTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger yielded nothing")


def test_triggers_sharing_a_poller_each_settle_on_their_own_units() -> None:
    source = MemorySource()
    later = datetime.now(UTC) + timedelta(minutes=5)

    async def scenario() -> None:
        done = make_trigger(source, [unit("done")], later)
        busy = make_trigger(source, [unit("busy")], later)
        source.phases["done"] = UnitPhase.SUCCEEDED
        busy_task = asyncio.create_task(first_event(busy))
        event = await first_event(done)
        assert event["kind"] == "settled"
        assert [s["unit"]["resource_id"] for s in event["statuses"]] == ["done"]
        assert event["resume"] == {"marker": 1}
        assert not busy_task.done()
        source.phases["busy"] = UnitPhase.FAILED
        busy_event = await busy_task
        assert busy_event["kind"] == "settled"
        assert busy_event["statuses"][0]["phase"] == "failed"
        assert pollers.pollers() == {}

    run(scenario())


def test_a_trigger_past_its_deadline_takes_one_last_look_first() -> None:
    source = MemorySource()
    source.phases["late"] = UnitPhase.SUCCEEDED
    past = datetime.now(UTC) - timedelta(seconds=1)

    async def scenario() -> None:
        finished = await first_event(make_trigger(source, [unit("late")], past))
        assert finished["kind"] == "settled"
        running = await first_event(make_trigger(source, [unit("still")], past))
        assert running["kind"] == "timeout"
        assert running["statuses"][0]["phase"] == "running"

    run(scenario())


def test_a_trigger_yields_a_non_retriable_error_as_an_event() -> None:
    source = MemorySource()
    source.fail = lambda _units: ComputeOperationError(
        ComputeError(code=ErrorCode.PERMISSION_DENIED, message="not allowed")
    )

    async def scenario() -> None:
        event = await first_event(make_trigger(source, [unit("x")], datetime.now(UTC) + timedelta(minutes=1)))
        assert event["kind"] == "error"
        assert event["error"]["code"] == "PERMISSION_DENIED"
        assert pollers.pollers() == {}

    run(scenario())


# -- 10,000 waits: nobody wakes for nothing -----------------------------------------------------


def test_unchanged_statuses_are_not_delivered_again_but_a_refresh_is() -> None:
    source = MemorySource()

    async def scenario() -> None:
        async with subscribe("quiet", [unit("a")], interval=FAST, source_factory=lambda: source) as sub:
            assert names(await sub.next(timeout=5)) == [("a", "running")]
            poller = pollers.pollers()["quiet"]
            rounds = poller.stats.rounds
            # Rounds go on, the statuses stay the same: the subscriber is not woken.
            assert await sub.next(timeout=5 * FAST) is None
            assert poller.stats.rounds >= rounds + 2
            sub.refresh()
            assert names(await sub.next(timeout=5)) == [("a", "running")]
            source.phases["a"] = UnitPhase.SUCCEEDED
            assert names(await sub.next(timeout=5)) == [("a", "succeeded")]

    run(scenario())


class StuckSource(MemorySource):
    """Every read: the unit pending with an image-pull error since ``since`` (never changes)."""

    def __init__(self, since: datetime) -> None:
        super().__init__()
        self.since = since

    async def describe(self, units: Sequence[Unit]) -> list[UnitStatus]:
        self.reads.append([u.resource_id for u in units])
        error = ComputeError(code=ErrorCode.IMAGE_PULL_FAILED, message="back-off pulling image")
        return [
            UnitStatus(u, UnitPhase.PENDING, error=error, stuck_since=self.since.isoformat()) for u in units
        ]


def test_a_unit_stuck_pending_fails_when_its_grace_ends_with_no_new_status() -> None:
    source = StuckSource(datetime.now(UTC))
    trigger = make_trigger(source, [unit("stuck")], datetime.now(UTC) + timedelta(minutes=5))
    trigger.pending_grace_period = 1.0
    trigger.poll_interval = 60.0  # no round after the first: only the trigger's own wake-up

    async def scenario() -> dict[str, Any]:
        return await first_event(trigger)

    event = run(scenario())
    assert event["kind"] == "settled"
    assert event["statuses"][0]["phase"] == "pending"
    assert event["statuses"][0]["error"]["code"] == "IMAGE_PULL_FAILED"
    assert len(source.reads) == 1
