"""Fixtures of the reliability suite, and its summary line at the end of the run.

    ecs_proxied    the ECS endpoint of ``ecs_env`` behind a fault proxy: the Airflow connection
                   goes through it, ``ecs_env.ecs`` (the test's own reads) does not
    kube_proxied   the harness's ``kube_env`` (``tests/harness/kube.py``): its connection goes through
                   a fault proxy

Each test's tenant state store is its own (``state_store`` / ``default_state_url`` from
``tests/harness/state.py``: a SQLite file behind ``AIRFLOW_CONN_COMPUTE_STATE_DEFAULT``,
inherited by child processes), so audits see only what the test made.

Every test here is marked ``reliability``; ``tally.TALLY`` holds what the tests did, and
``pytest_terminal_summary`` prints it as the suite's last line whenever one of them ran::

    reliability: N operations, F faults, C crashes, I inputs, K canaries; lost 0, duplicated 0, leaked 0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.harness.proxy import FaultProxy
from tests.integration.kubernetes_dags import KubeEnv
from tests.reliability.tally import TALLY


@pytest.fixture(autouse=True)
def _counted(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("reliability") is not None:
        TALLY.add(tests=1)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY.tests:
        return
    terminalreporter.section("reliability")
    terminalreporter.write_line(TALLY.summary_line())


@pytest.fixture
def ecs_proxied(ecs_env: Any, fault_proxy: Callable[[str], FaultProxy]) -> FaultProxy:
    proxy = fault_proxy(ecs_env.moto_url)
    ecs_env.route_through(proxy.url)
    return proxy


@pytest.fixture
def kube_proxied(kube_env: KubeEnv, fault_proxy: Callable[[str], FaultProxy]) -> FaultProxy:
    proxy = fault_proxy(kube_env.cluster.server)
    kube_env.route_through(proxy.url)
    return proxy
