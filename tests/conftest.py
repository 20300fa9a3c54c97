"""Every fixture module of the harness, loaded once for the whole suite, and a closing summary of
how long each suite took (by its marker), so CI's log says where the time goes."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest

# airflow_env before anything that imports airflow: it sets AIRFLOW_HOME first. postgres (which
# imports no airflow) comes before it because airflow_env imports it.
pytest_plugins = [
    "tests.harness.postgres",
    "tests.harness.airflow_env",
    "tests.harness.kube",
    "tests.harness.ecs",
    "tests.harness.proxy",
    "tests.harness.state",
    "tests.harness.statsd",
]

SUITES = ("distributed", "reliability", "slow", "kube", "airflow", "postgres")
_seconds: dict[str, float] = defaultdict(float)
_counts: dict[str, int] = defaultdict(int)


def _suite(item: pytest.Item) -> str:
    """The first suite marker an item carries, else the folder it lives in (unit, packaging...)."""
    for name in SUITES:
        if item.get_closest_marker(name) is not None:
            return name
    parts = item.nodeid.split("/")
    return parts[1] if len(parts) > 2 else "other"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    started = time.monotonic()
    try:
        return (yield)
    finally:
        suite = _suite(item)
        _seconds[suite] += time.monotonic() - started
        _counts[suite] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _seconds:
        return
    terminalreporter.section("time per suite (setup, call and teardown, including fixtures)")
    for suite, seconds in sorted(_seconds.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{suite:<12} {_counts[suite]:>5} tests  {seconds:8.1f} s")


@pytest.fixture(autouse=True)
def _fresh_request_budgets() -> None:
    """Every test starts with fresh process-wide request budgets (``hooks/budget.py``): one
    test's throttles must not slow the next one's requests."""
    from airflow_compute_provider.hooks.budget import reset_budgets

    reset_budgets()
