"""The adaptive request budget (``hooks/budget.py``), on a fake clock: how it learns."""

from __future__ import annotations

import asyncio

import pytest

from airflow_compute_provider.hooks.budget import AdaptiveBudget, BudgetSettings, budget, reset_budgets


class Throttled(Exception):
    pass


def is_throttle(exc: BaseException) -> bool:
    return isinstance(exc, Throttled)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def raise_throttled() -> None:
    raise Throttled()


def test_slow_start_then_a_throttle_cuts_rate_and_in_flight_once_per_congestion() -> None:
    clock = Clock()
    b = AdaptiveBudget(BudgetSettings(initial_rate=10, max_in_flight=8), is_throttle, clock=clock)
    for _ in range(4):
        clock.now += 0.1
        b.call(lambda: None)
    assert b.rate == pytest.approx(12.0)  # slow start: +0.5 per answer
    clock.now += 0.1
    sent_before_cut = clock()
    with pytest.raises(Throttled):
        b.call(raise_throttled)
    # 0.8 x what the provider answered over the last second: 4 answers, not the rate of 12
    assert b.rate == pytest.approx(4 * 0.8)
    assert b.in_flight_limit == 4
    # A second throttle of a request sent before the cut is the same congestion: no second cut.
    b._answered(sent_before_cut, Throttled())
    assert b.stats.cuts == 1
    assert b.stats.throttled == 2
    # After the first cut each answer adds ``increase`` (5 % growth per second).
    rate = b.rate
    clock.now += 1.0
    b.call(lambda: None)
    assert b.rate == pytest.approx(rate + 0.05)
    assert b.in_flight_limit == 5


def test_other_errors_teach_nothing() -> None:
    b = AdaptiveBudget(BudgetSettings(initial_rate=10), is_throttle, clock=Clock())
    with pytest.raises(ValueError, match="boom"):
        b.call(lambda: (_ for _ in ()).throw(ValueError("boom")))
    assert b.rate == 10
    assert b.stats.cuts == 0
    assert b.stats.requests == 1


def test_async_calls_share_the_budget() -> None:
    b = AdaptiveBudget(BudgetSettings(initial_rate=1000), is_throttle)

    async def answer() -> int:
        return 7

    async def throttled() -> None:
        raise Throttled()

    async def main() -> None:
        assert await b.acall(answer) == 7
        with pytest.raises(Throttled):
            await b.acall(throttled)

    asyncio.run(main())
    assert b.stats.requests == 2
    assert b.stats.cuts == 1


def test_the_registry_gives_one_budget_per_key() -> None:
    reset_budgets()
    settings = BudgetSettings()
    assert budget("a", settings, is_throttle) is budget("a", settings, is_throttle)
    assert budget("a", settings, is_throttle) is not budget("b", settings, is_throttle)
