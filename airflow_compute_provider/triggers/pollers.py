"""Shared status pollers: one status loop per backend and event loop, for every trigger.

A triggerer runs thousands of ``ComputeStatusTrigger``s in one asyncio loop. Polled one by one,
1,000 deferred ECS tasks would cost 1,000 DescribeTasks calls per interval; shared, they cost
ten (DescribeTasks takes 100 tasks), and pods cost one list or a single watch. The pieces:

    subscribe(key, units, ...)  async context manager: joins (or starts) the poller for ``key``
                                and yields a ``Subscription``; leaving it unsubscribes
    Subscription                one trigger's view: ``await next(timeout)`` gives an ``Update``
                                with the statuses of *its* units, in its order; ``refresh()``
                                asks for a poll now
    SharedPoller                an asyncio task owning one ``StatusSource``; every interval (the
                                smallest any subscriber asked for) it reads the union of its
                                subscribers' units in one ``describe`` and fans the statuses
                                out; newcomers and refreshes are served in a quick extra round
    StatusSource                what a poller reads through: ``BackendSource`` wraps a hook's
                                ``adescribe`` (every round costs requests); a push source (the
                                Kubernetes watch, ``kube_watch.py``) answers from memory and
                                calls ``changed()`` when it learns something new
    Update                      statuses, or the error that kept the poller from reading them

The registry is module-level but kept per event loop (a loop that is gone takes its pollers
with it), keyed by ``poller_key(provider, config)``. The last subscriber to leave stops the
poller and closes its source.

Failures: a *retriable* error (throttling, 5xx, network; the hooks already retried) slows the
poller down, never the triggers' own judgement: the next round waits ``interval * 2**n``
(capped at ``MAX_BACKOFF_SECONDS``) or the provider's ``Retry-After`` when longer, and the
subscribers get an informative update. A *non-retriable* error ends watching for the units it
concerns, so one trigger's bad unit must not end another's: when the union read fails that way,
the poller reads each subscriber's units on their own once, and only those that still fail get
the error.

No Airflow imports here: the poller is tested with an in-memory source.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_compute_provider import registry
from airflow_compute_provider.errors import ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.hooks.base import Unit, UnitStatus
from airflow_compute_provider.normalize import worth_reading_again
from airflow_compute_provider.triggers.masking import mask_text

log = logging.getLogger(__name__)

#: The longest a throttled poller waits between rounds, unless the provider asks for longer.
MAX_BACKOFF_SECONDS = 60.0
#: The longest ``Retry-After`` honoured; a provider asking for more is polled after this.
MAX_RETRY_AFTER_SECONDS = 600.0
#: After a wake-up, how long to gather more joins / changes before reading (one read for a
#: burst of triggers starting together, not one each).
COALESCE_SECONDS = 0.05
#: Rounds a push source's news starts are at least this far apart: a namespace full of busy
#: pods must not keep the poller reading back to back.
CHANGE_GAP_SECONDS = 0.25

UnitKey = tuple[str, int, int, tuple[tuple[str, str], ...]]


def unit_key(unit: Unit) -> UnitKey:
    """Two triggers watching the same unit share one read of it (and each gets its own
    ``Unit`` back: index and generation are part of the key)."""
    return unit.resource_id, unit.index, unit.generation, tuple(sorted(unit.locator.items()))


def poller_key(provider: str, config: Mapping[str, Any]) -> tuple[str, str]:
    """The registry key: the provider and a canonical form of the status-relevant config (without
    the keys its provider entry says only matter for launching or stopping, so two operators
    differing only in these share a poller)."""
    relevant = registry.get(provider).status_relevant(config)
    return provider, json.dumps(relevant, sort_keys=True, default=str)


# -- sources --------------------------------------------------------------------------------------


class StatusSource(Protocol):
    async def describe(self, units: Sequence[Unit]) -> list[UnitStatus]:
        """One status per unit, in order; ``ComputeOperationError`` when the read failed."""
        ...

    def start(self, changed: Callable[[], None]) -> None:
        """Called once by the poller; a push source calls ``changed()`` on news."""
        ...

    async def aclose(self) -> None: ...


class Describer(Protocol):
    async def adescribe(self, units: Sequence[Unit]) -> list[UnitStatus]: ...


class BackendSource:
    """Reads through a backend's batched ``adescribe``: every round costs requests."""

    def __init__(self, backend: Describer) -> None:
        self.backend = backend

    async def describe(self, units: Sequence[Unit]) -> list[UnitStatus]:
        return await self.backend.adescribe(units)

    def start(self, changed: Callable[[], None]) -> None:
        pass  # nothing pushes: the poller's interval is the only clock

    async def aclose(self) -> None:
        pass


# -- what a subscriber sees -----------------------------------------------------------------------


@dataclass(frozen=True)
class Update:
    """Statuses of a subscriber's units (in its order), or why they could not be read."""

    statuses: tuple[UnitStatus, ...] = ()
    error: ComputeError | None = None

    @property
    def final(self) -> bool:
        """An error that will not go away by polling again: watching these units is over."""
        return self.error is not None and not worth_reading_again(self.error)


class Subscription:
    """One trigger's share of a poller. Only the newest update is kept: a trigger that fell
    behind needs where its units are now, not where they were. Statuses equal to the last ones
    delivered are not delivered again (10,000 triggers must not all wake every round to learn
    that nothing changed); the trigger wakes itself for what time alone changes (its deadline,
    a pending unit's grace period), and ``refresh()`` asks for the next statuses, changed or
    not."""

    def __init__(self, poller: SharedPoller, units: Sequence[Unit], interval: float) -> None:
        self.poller = poller
        self.units = tuple(units)
        self.keys = tuple(unit_key(u) for u in self.units)
        self.interval = float(interval)
        self._latest: Update | None = None
        self._ready = asyncio.Event()
        self._delivered: tuple[UnitStatus, ...] | None = None
        self._force = False

    def deliver(self, update: Update) -> None:
        # A transient error does not hide statuses the trigger has not read yet.
        if update.error is not None and not update.final and self._latest is not None:
            return
        if update.error is None:
            if update.statuses == self._delivered and not self._force:
                return  # nothing new
            self._delivered = update.statuses
            self._force = False
        else:
            self._delivered = None  # after an error, the next statuses are news again
        self._latest = update
        self._ready.set()

    async def next(self, timeout: float | None = None) -> Update | None:
        """The next update; ``None`` when ``timeout`` seconds passed without one."""
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None
        update, self._latest = self._latest, None
        self._ready.clear()
        return update

    def refresh(self) -> None:
        """Ask for a read of these units now (still no sooner than a throttled poller allows);
        its statuses are delivered even if unchanged."""
        self._force = True
        self.poller.request(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Update:
        update = await self.next()
        assert update is not None  # no timeout: next() only returns with an update
        return update


# -- the poller -----------------------------------------------------------------------------------


@dataclass
class PollerStats:
    """Counters for tests and the benchmark."""

    rounds: int = 0
    units_read: int = 0
    failures: int = 0


class SharedPoller:
    """Reads the union of its subscribers' units through one source and fans statuses out."""

    def __init__(
        self,
        key: Hashable,
        source: StatusSource,
        *,
        on_idle: Callable[[SharedPoller], None] = lambda _p: None,
        clock: Callable[[], float] = time.monotonic,
        coalesce_seconds: float = COALESCE_SECONDS,
        max_backoff_seconds: float = MAX_BACKOFF_SECONDS,
    ) -> None:
        self.key = key
        self.source = source
        self.stats = PollerStats()
        self._on_idle = on_idle
        self._clock = clock
        self._coalesce = coalesce_seconds
        self._max_backoff = max_backoff_seconds
        self._subscribers: dict[Subscription, None] = {}  # insertion-ordered set
        self._urgent: dict[Subscription, None] = {}
        self._changed = False
        self._wake = asyncio.Event()
        self._next_due = 0.0
        self._last_round = -CHANGE_GAP_SECONDS
        self._backoff_until = 0.0
        self._failures_in_a_row = 0
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    # subscribers

    @property
    def interval(self) -> float:
        return min((s.interval for s in self._subscribers), default=10.0)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @property
    def backoff_remaining(self) -> float:
        return max(0.0, self._backoff_until - self._clock())

    def add(self, units: Sequence[Unit], interval: float) -> Subscription:
        subscription = Subscription(self, units, interval)
        self._subscribers[subscription] = None
        # A newcomer may poll more often than the current cadence.
        self._next_due = min(self._next_due, self._clock() + subscription.interval)
        self.request(subscription)
        if self._task is None:
            self.source.start(self._source_changed)
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"shared-poller {self.key}")
            self._task.add_done_callback(self._task_done)
        return subscription

    def remove(self, subscription: Subscription) -> None:
        self._subscribers.pop(subscription, None)
        self._urgent.pop(subscription, None)
        if not self._subscribers and not self.closed:
            self.closed = True
            self._on_idle(self)
            if self._task is not None:
                self._task.cancel()

    def request(self, subscription: Subscription) -> None:
        """Read ``subscription``'s units in the next quick round."""
        if subscription in self._subscribers:
            self._urgent[subscription] = None
            self._wake.set()

    def _source_changed(self) -> None:
        self._changed = True
        self._wake.set()

    # the loop

    async def _run(self) -> None:
        try:
            while self._subscribers:
                await self._wait_until_due()
                await asyncio.sleep(self._coalesce)
                if self._clock() < self._backoff_until:
                    continue
                full = self._changed or self._clock() >= self._next_due
                targets = list(self._subscribers if full else self._urgent)
                if not targets:
                    continue
                self._changed = False
                for subscription in targets:
                    self._urgent.pop(subscription, None)
                started = self._last_round = self._clock()
                await self._round(targets)
                if full:
                    # A fixed cadence from the start of a round: a unit is read every interval
                    # however long a round of many batches takes.
                    self._next_due = max(started + self.interval, self._backoff_until)
        finally:
            with contextlib.suppress(Exception):
                await self.source.aclose()

    async def _wait_until_due(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock()
            target = self._next_due
            if self._urgent:
                target = now
            elif self._changed:
                target = min(target, self._last_round + CHANGE_GAP_SECONDS)
            delay = max(target, self._backoff_until) - now
            if delay <= 0:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                return

    async def _round(self, targets: Sequence[Subscription]) -> None:
        keys, units = _union(targets)
        try:
            statuses = await self.source.describe(units)
        except Exception as exc:
            error = _as_error(exc)
            if worth_reading_again(error):
                self._slow_down(error, targets)
            elif len(targets) > 1:
                await self._isolate(targets)
            else:
                targets[0].deliver(Update(error=error))
            return
        self._failures_in_a_row = 0
        self.stats.rounds += 1
        self.stats.units_read += len(units)
        by_key = dict(zip(keys, statuses, strict=True))
        for subscription in targets:
            subscription.deliver(Update(tuple(by_key[k] for k in subscription.keys)))

    async def _isolate(self, targets: Sequence[Subscription]) -> None:
        """A non-retriable failure of the union: read each subscriber's units on their own, so
        the error reaches only the subscribers whose units cause it."""
        for subscription in targets:
            if subscription not in self._subscribers:
                continue
            try:
                statuses = await self.source.describe(subscription.units)
            except Exception as exc:
                error = _as_error(exc)
                if worth_reading_again(error):
                    self._slow_down(error, [subscription])
                else:
                    subscription.deliver(Update(error=error))
                continue
            subscription.deliver(Update(tuple(statuses)))

    def _slow_down(self, error: ComputeError, targets: Sequence[Subscription]) -> None:
        self.stats.failures += 1
        self._failures_in_a_row += 1
        delay = min(self._max_backoff, self.interval * 2**self._failures_in_a_row)
        if error.retry_after_seconds is not None:
            delay = max(delay, min(float(error.retry_after_seconds), MAX_RETRY_AFTER_SECONDS))
        self._backoff_until = max(self._backoff_until, self._clock() + delay)
        log.warning(
            "Shared status poll failed (%s), next read in %.1fs for %d trigger(s): %s",
            error.code.value,
            delay,
            len(self._subscribers),
            mask_text(error.message),  # for every trigger it serves (masking.py)
        )
        for subscription in targets:
            subscription.deliver(Update(error=error))
            self._urgent[subscription] = None  # read again as soon as the backoff allows

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A poller that died of a bug must not leave its triggers waiting forever."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.error("Shared status poller %s failed: %s", self.key, mask_text(repr(exc)))
        error = ComputeError(
            code=ErrorCode.UNKNOWN_PROVIDER_ERROR,
            message=mask_text(f"the shared status poller failed: {exc!r}"),
        )
        if not self.closed:
            self.closed = True
            self._on_idle(self)
        for subscription in list(self._subscribers):
            subscription.deliver(Update(error=error))


def _union(subscriptions: Sequence[Subscription]) -> tuple[list[UnitKey], list[Unit]]:
    """Every unit once, with its key: keys are computed when a trigger subscribes, never per
    round (a round of 10,000 units would otherwise sort 10,000 locators)."""
    seen: dict[UnitKey, Unit] = {}
    for subscription in subscriptions:
        for key, unit in zip(subscription.keys, subscription.units, strict=True):
            seen.setdefault(key, unit)
    return list(seen), list(seen.values())


def _as_error(exc: BaseException) -> ComputeError:
    if isinstance(exc, ComputeOperationError):
        return exc.error
    from airflow_compute_provider.normalize import from_exception

    return from_exception(exc)


# -- the registry ---------------------------------------------------------------------------------

_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, SharedPoller]] = (
    weakref.WeakKeyDictionary()
)


def pollers() -> dict[Hashable, SharedPoller]:
    """The live pollers of the running event loop, by key."""
    return _registries.setdefault(asyncio.get_running_loop(), {})


@contextlib.asynccontextmanager
async def subscribe(
    key: Hashable,
    units: Sequence[Unit],
    *,
    interval: float,
    source_factory: Callable[[], StatusSource],
) -> AsyncIterator[Subscription]:
    """Watch ``units`` through the shared poller for ``key``, started with a source from
    ``source_factory`` when there is none yet. Leaving the block (a trigger that returns, fails
    or is cancelled) unsubscribes; the last one out stops the poller."""
    registry = pollers()
    poller = registry.get(key)
    if poller is None or poller.closed:
        poller = SharedPoller(key, source_factory(), on_idle=lambda p: _forget(registry, p))
        registry[key] = poller
    subscription = poller.add(units, interval)
    try:
        yield subscription
    finally:
        poller.remove(subscription)


def _forget(registry: dict[Hashable, SharedPoller], poller: SharedPoller) -> None:
    if registry.get(poller.key) is poller:
        del registry[poller.key]
