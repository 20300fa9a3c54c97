"""A request budget shared by every client of one process: an adaptive token bucket and an
adaptive limit on requests in flight.

    AdaptiveBudget          one provider operation group (say ECS RunTask in one account and
                            region): ``call(fn)`` / ``await acall(coro_fn)`` wait for a slot and
                            a token, make the request, and learn from its outcome
    budget(key, ...)        the process-wide budget for ``key`` (created on first use)

Why: a provider like ECS throttles per account and Region with a token bucket of its own
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/request-throttling.html). Fifty
tries launching together, each with its own client and thread pool, would send hundreds of
requests at once; each client retrying on its own amplifies the throttling instead of
absorbing it. One budget per process paces all of them.

How it adapts: every unthrottled answer adds a constant to the rate, ``slow_start`` until the
first throttle and ``increase`` after it; as answers come at the rate, that makes the rate grow
by that fraction of itself per second (65 % then 5 %). Growth in proportion, not by a constant
per second, matters when several processes share one account: their summed rate then grows by
5 % a second however many they are, where constant steps would add up and overshoot the
provider's rate N times faster. A throttled answer sets the rate to ``decrease`` times the rate
that was actually answered over the last second (what the provider let through), halves the
in-flight limit, and empties the bucket (the provider's is empty too); each unthrottled answer
raises the in-flight limit by one again (up to ``max_in_flight``). Throttles of requests sent before
the last cut are the same congestion, already paid for, and cut nothing. Only outcomes that
``is_throttle`` recognises count as throttling; any other error counts as nothing.

Thread-safe: launch and stop pools call it from threads; the shared pollers from an event loop.
Waiting for a token holds ``_turn``, so one caller at a time sleeps for the next token and the
others queue on the lock instead of polling.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class BudgetSettings:
    """Where a budget starts and how it moves. Rates are requests per second."""

    initial_rate: float = 10.0
    min_rate: float = 0.5
    max_rate: float = 1000.0
    #: rate added by each unthrottled answer after the first throttle (5 % growth per second)
    increase: float = 0.05
    #: rate added by each unthrottled answer until the first throttle (slow start)
    slow_start: float = 0.5
    #: a throttle sets the rate to this times the rate answered over the last second
    decrease: float = 0.8
    #: requests in flight at most (and where the limit starts)
    max_in_flight: int = 16


@dataclass
class BudgetStats:
    requests: int = 0
    throttled: int = 0
    cuts: int = 0
    waited_seconds: float = 0.0


class AdaptiveBudget:
    def __init__(
        self,
        settings: BudgetSettings,
        is_throttle: Callable[[BaseException], bool],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._is_throttle = is_throttle
        self._clock = clock
        self._lock = threading.Lock()
        self._turn = threading.Lock()
        self._slots = threading.Condition(self._lock)
        self.rate = settings.initial_rate
        self._tokens = 1.0
        self._refilled = clock()
        self.in_flight_limit = settings.max_in_flight
        self._in_flight = 0
        self._last_cut = float("-inf")
        self._answered_at: deque[float] = deque()  # unthrottled answers of the last second
        self.stats = BudgetStats()

    # -- the two resources ----------------------------------------------------------------------

    @property
    def _burst(self) -> float:
        # A bucket of one second at the current rate: after a pause we may send that many at once.
        return max(1.0, self.rate)

    def _take_token(self) -> float:
        """Take a token if one is there (0.0), else how long until one is (nothing taken)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self.rate)
            self._refilled = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate

    def _enter(self) -> None:
        with self._slots:
            while self._in_flight >= self.in_flight_limit:
                self._slots.wait()
            self._in_flight += 1

    def _leave(self) -> None:
        with self._slots:
            self._in_flight -= 1
            self._slots.notify()

    def _sent(self) -> float:
        with self._lock:
            self.stats.requests += 1
            return self._clock()

    # -- learning -------------------------------------------------------------------------------

    def _answered(self, sent_at: float, exc: BaseException | None) -> None:
        throttled = exc is not None and self._is_throttle(exc)
        with self._slots:
            if throttled:
                self.stats.throttled += 1
                if sent_at > self._last_cut:
                    self._last_cut = self._clock()
                    self.stats.cuts += 1
                    now = self._clock()
                    self._forget_answers_before(now - 1.0)
                    answered = float(len(self._answered_at)) or self.rate
                    self.rate = max(self.settings.min_rate, min(self.rate, answered) * self.settings.decrease)
                    self._tokens = min(self._tokens, 0.0)
                    self.in_flight_limit = max(1, self.in_flight_limit // 2)
            elif exc is None:
                now = self._clock()
                self._answered_at.append(now)
                self._forget_answers_before(now - 1.0)
                step = self.settings.slow_start if self.stats.cuts == 0 else self.settings.increase
                self.rate = min(self.settings.max_rate, self.rate + step)
                if self.in_flight_limit < self.settings.max_in_flight:
                    self.in_flight_limit += 1
                    self._slots.notify()

    def _forget_answers_before(self, moment: float) -> None:
        while self._answered_at and self._answered_at[0] < moment:
            self._answered_at.popleft()

    # -- calls ----------------------------------------------------------------------------------

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` once, within the budget (sync; blocks the calling thread while waiting)."""
        self._enter()
        try:
            with self._turn:
                while (wait := self._take_token()) > 0:
                    self.stats.waited_seconds += wait
                    time.sleep(wait)
            sent_at = self._sent()
            try:
                result = fn()
            except BaseException as exc:
                self._answered(sent_at, exc)
                raise
            self._answered(sent_at, None)
            return result
        finally:
            self._leave()

    async def acall(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``await fn()`` once, within the budget. Async callers are few (a shared poller per
        backend), so they wait for a token by sleeping, not in the threads' queue, and do not
        take an in-flight slot (a thread would block the event loop waiting for it)."""
        while (wait := self._take_token()) > 0:
            await asyncio.sleep(wait)
        sent_at = self._sent()
        try:
            result = await fn()
        except BaseException as exc:
            self._answered(sent_at, exc)
            raise
        self._answered(sent_at, None)
        return result


_budgets: dict[Hashable, AdaptiveBudget] = {}
_budgets_lock = threading.Lock()


def budget(
    key: Hashable, settings: BudgetSettings, is_throttle: Callable[[BaseException], bool]
) -> AdaptiveBudget:
    """The process's budget for ``key``; ``settings`` apply when it is first created."""
    with _budgets_lock:
        found = _budgets.get(key)
        if found is None:
            found = _budgets[key] = AdaptiveBudget(settings, is_throttle)
        return found


def reset_budgets() -> None:
    """Forget every budget (tests, and the benchmark between runs)."""
    with _budgets_lock:
        _budgets.clear()
