"""The fault proxy: injects faults on the wire, counts requests, relays streams, keeps connections.

ECS traffic is boto3 against the moto server through the proxy. Kubernetes-style traffic is
plain HTTP against a small aiohttp upstream started here (the real kube-apiserver is exercised by
the Kubernetes harness), which can also serve TLS to show https upstreams work.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web
from botocore.exceptions import ClientError, ConnectionClosedError

from tests.harness.ecs import EcsEnv
from tests.harness.ports import wait_until
from tests.harness.proxy import FaultProxy, RequestInfo
from tests.harness.proxy_faults import Delay, Reset, ecs_server_error, ecs_throttle, kube_throttle

ProxyFactory = Callable[[str], FaultProxy]


def _no_retry_client(ecs_env: EcsEnv, proxy: FaultProxy) -> Any:
    return ecs_env.client(endpoint_url=proxy.url, retries={"mode": "standard", "total_max_attempts": 1})


def test_ecs_throttle_then_pass_through_with_counts(ecs_env: EcsEnv, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(ecs_env.moto_url)
    client = _no_retry_client(ecs_env, proxy)
    proxy.add_rule(ecs_throttle(), operation="ListClusters", times=1)

    with pytest.raises(ClientError) as throttled:
        client.list_clusters()
    clusters = client.list_clusters()["clusterArns"]

    error = throttled.value.response
    assert error["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["ResponseMetadata"]["RequestId"]
    assert clusters == [ecs_env.cluster_arn]
    counts = proxy.counts
    assert (counts["ListClusters"], counts.faulted["ListClusters"], counts.passed["ListClusters"]) == (
        2,
        1,
        1,
    )


def test_botocore_retries_through_injected_5xx_are_counted(
    ecs_env: EcsEnv, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(ecs_env.moto_url)
    client = ecs_env.client(endpoint_url=proxy.url, retries={"mode": "standard", "total_max_attempts": 3})
    proxy.add_rule(ecs_server_error(), operation="DescribeClusters", times=2)

    described = client.describe_clusters(clusters=[ecs_env.cluster_name])

    assert described["ResponseMetadata"]["RetryAttempts"] == 2
    assert proxy.count(operation="DescribeClusters", faulted=True) == 2
    assert proxy.count(operation="DescribeClusters", faulted=False) == 1


def test_connection_reset_before_and_after_the_upstream_acts(
    ecs_env: EcsEnv, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(ecs_env.moto_url)
    ecs_env.route_through(proxy.url)
    client = _no_retry_client(ecs_env, proxy)
    proxy.add_rule(Reset(), operation="RunTask", times=1)
    proxy.add_rule(Reset(forward_first=True), operation="RunTask", times=1)
    request = {
        "cluster": ecs_env.cluster_name,
        "taskDefinition": ecs_env.task_definition_arn,
        "launchType": "FARGATE",
        "networkConfiguration": ecs_env.network_configuration,
    }

    with pytest.raises(ConnectionClosedError):
        client.run_task(**request)
    assert ecs_env.launched_task_arns() == []  # reset before forwarding: nothing launched

    with pytest.raises(ConnectionClosedError):
        client.run_task(**request)
    assert len(ecs_env.launched_task_arns()) == 1  # launched, but the answer was lost
    assert proxy.counts.faulted["RunTask"] == 2


def test_after_forward_hook_runs_once_the_response_is_relayed(
    ecs_env: EcsEnv, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(ecs_env.moto_url)
    seen: list[tuple[str, int]] = []
    proxy.after_forward(lambda info, status: seen.append((info.operation, status)), operation="RunTask")

    ecs_env.client(endpoint_url=proxy.url).run_task(
        cluster=ecs_env.cluster_name,
        taskDefinition=ecs_env.task_definition_arn,
        launchType="FARGATE",
        networkConfiguration=ecs_env.network_configuration,
    )
    ecs_env.client(endpoint_url=proxy.url).list_clusters()

    # the hook runs on the proxy's thread just after the write, so possibly after the client read
    wait_until(lambda: len(seen) > 0, 10, "the after-forward hook")
    assert seen == [("RunTask", 200)]


def test_probability_rules_are_repeatable_with_a_seed(ecs_env: EcsEnv, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(ecs_env.moto_url)

    def pattern() -> list[bool]:
        proxy.reset()
        proxy.add_rule(ecs_throttle(), operation="ListClusters", probability=0.5, seed=42)
        client = _no_retry_client(ecs_env, proxy)
        outcomes = []
        for _ in range(16):
            try:
                client.list_clusters()
                outcomes.append(False)
            except ClientError:
                outcomes.append(True)
        return outcomes

    first, second = pattern(), pattern()
    assert first == second
    assert 0 < sum(first) < 16
    assert proxy.counts.faulted["ListClusters"] == sum(second)


def test_keep_alive_reuses_client_connections(ecs_env: EcsEnv, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(ecs_env.moto_url)
    client = ecs_env.client(endpoint_url=proxy.url)
    for _ in range(20):
        client.list_clusters()
    assert proxy.counts["ListClusters"] == 20
    assert proxy.connections_accepted == 1


# -- Kubernetes-style traffic -----------------------------------------------------------------


class _Upstream:
    """A tiny HTTP(S) server: ``/api/v1/pods`` lists, ``/watch`` streams two chunks, the second
    only after ``release`` is set, so a test can prove the first arrived on its own."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.release = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._tls = tls
        self.url = ""

    async def _pods(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "PodList", "items": []})

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        stream = web.StreamResponse()
        stream.enable_chunked_encoding()
        await stream.prepare(request)
        await stream.write(b'{"type":"ADDED"}\n')
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        await stream.write(b'{"type":"DELETED"}\n')
        await stream.write_eof()
        return stream

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_get("/api/v1/pods", self._pods)
        app.router.add_get("/watch", self._watch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._tls)
        await site.start()
        port: int = self._runner.addresses[0][1]
        return port

    def __enter__(self) -> _Upstream:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.url = f"{'https' if self._tls else 'http'}://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def upstream() -> Iterator[_Upstream]:
    with _Upstream() as server:
        yield server


def test_kube_style_throttle_has_status_body_and_retry_after(
    upstream: _Upstream, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(upstream.url)
    proxy.add_rule(kube_throttle(retry_after=3), method="GET", path=r"/pods$", times=1)

    throttled = requests.get(f"{proxy.url}/api/v1/pods", timeout=10)
    listed = requests.get(f"{proxy.url}/api/v1/pods", timeout=10)

    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "3"
    status = throttled.json()
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 429, "TooManyRequests")
    assert listed.status_code == 200
    assert listed.json()["kind"] == "PodList"
    assert proxy.count(method="GET", path="/pods") == 2
    assert proxy.count(method="GET", path="/pods", faulted=True) == 1
    assert proxy.counts["GET /api/v1/pods"] == 2


def test_watch_streams_are_relayed_chunk_by_chunk(upstream: _Upstream, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(upstream.url)
    with requests.get(f"{proxy.url}/watch", stream=True, timeout=30) as response:
        lines = response.iter_lines()
        first = next(lines)  # arrives while the upstream still holds the second chunk back
        upstream.release.set()
        rest = list(lines)
    assert json.loads(first) == {"type": "ADDED"}
    assert [json.loads(line) for line in rest] == [{"type": "DELETED"}]


def test_delay_rule_still_forwards(upstream: _Upstream, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(upstream.url)
    proxy.add_rule(Delay(0.05), path="/pods", times=1)
    assert requests.get(f"{proxy.url}/api/v1/pods", timeout=10).json()["kind"] == "PodList"
    assert proxy.count(path="/pods", faulted=True) == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to make a certificate")
def test_https_upstream_without_verification(tmp_path: Path, fault_proxy: ProxyFactory) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subject = ["-subj", "/CN=localhost", "-days", "1"]
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            *subject,
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    with _Upstream(tls=tls) as server:
        proxy = fault_proxy(server.url)
        assert server.url.startswith("https://")
        assert requests.get(f"{proxy.url}/api/v1/pods", timeout=10).json()["kind"] == "PodList"


def test_request_info_names_ecs_operations(ecs_env: EcsEnv, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(ecs_env.moto_url)
    seen: list[RequestInfo] = []
    proxy.after_forward(lambda info, _status: seen.append(info), times=None)
    ecs_env.client(endpoint_url=proxy.url).list_clusters()
    wait_until(lambda: len(seen) > 0, 10, "the after-forward hook")
    assert [(i.method, i.operation) for i in seen] == [("POST", "ListClusters")]
