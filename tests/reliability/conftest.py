"""Fixtures of the reliability suite, and its summary line at the end of the run.

    state_store    a tenant state store of the test's own (a SQLite file behind
                   ``AIRFLOW_CONN_COMPUTE_STATE_DEFAULT``, inherited by child processes), so
                   audits see only what the test made; ``state_url`` is its SQLAlchemy URL
    ecs_proxied    the ECS endpoint of ``ecs_env`` behind a fault proxy: the Airflow connection
                   goes through it, ``ecs_env.ecs`` (the test's own reads) does not
    kube_env       one test's namespace (``tests.integration.kubernetes_dags.KubeEnv``), with
                   the node simulator running
    kube_proxied   the same for Kubernetes: the connection goes through a fault proxy

Every test here is marked ``reliability``; ``tally.TALLY`` holds what the tests did, and
``pytest_terminal_summary`` prints it as the suite's last line whenever one of them ran::

    reliability: N operations, F faults, C crashes, I inputs, K canaries; lost 0, duplicated 0, leaked 0
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_compute_provider.state import SqlTenantStateStore
from tests.harness.kubecluster import KubeCluster
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
def state_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'compute_state.db'}"
    conn = {"conn_type": "sqlite", "extra": {"sqlalchemy_url": url}}
    monkeypatch.setenv("AIRFLOW_CONN_COMPUTE_STATE_DEFAULT", json.dumps(conn))
    return url


@pytest.fixture
def state_store(state_url: str) -> Iterator[SqlTenantStateStore]:
    store = SqlTenantStateStore(state_url)
    yield store
    store.close()


@pytest.fixture
def ecs_proxied(ecs_env: Any, fault_proxy: Callable[[str], FaultProxy]) -> FaultProxy:
    proxy = fault_proxy(ecs_env.moto_url)
    ecs_env.route_through(proxy.url)
    return proxy


@pytest.fixture
def kube_env(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    kube_core: Any,
    node_simulator: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> KubeEnv:
    return KubeEnv(kube_cluster, kube_namespace, kube_core, monkeypatch, tmp_path)


@pytest.fixture
def kube_proxied(kube_env: KubeEnv, fault_proxy: Callable[[str], FaultProxy]) -> FaultProxy:
    proxy = fault_proxy(kube_env.cluster.server)
    kube_env.route_through(proxy.url)
    return proxy
