"""A fault-injecting HTTP reverse proxy in front of the ECS (moto) or Kubernetes API server.

    FaultProxy     listens on plain HTTP on a free loopback port and forwards every request to
                   one upstream (http or https; https is not verified), keeping client
                   connections alive. Rules decide, per request, whether to inject a fault
                   (``proxy_faults``: Respond / Reset / Delay); hooks run after a response has
                   been forwarded; ``counts`` says how many requests each operation saw.
    fault_proxy    function fixture: ``fault_proxy(upstream_url) -> FaultProxy``, started, and
                   stopped after the test

A request's *operation* is the ECS operation named by its ``X-Amz-Target`` header
(``AmazonEC2ContainerServiceV20141113.RunTask`` -> ``RunTask``), or ``"<METHOD> <path>"``
otherwise (Kubernetes). Rules match on ``operation`` (exact), ``method`` and a ``path`` regex
(searched in the path with its query string); every given criterion must match::

    proxy.add_rule(ecs_throttle(), operation="RunTask", times=2)        # two throttles, then pass
    proxy.add_rule(Reset(), operation="DescribeTasks", probability=0.1, seed=7)
    proxy.add_rule(kube_throttle(), method="POST", path=r"/pods$")
    proxy.add_rule(Reset(forward_first=True), operation="RunTask")      # launched, answer lost
    proxy.add_rule(Rewrite(drop_arn), operation="RunTask", times=1)     # launched, answer malformed
    proxy.after_forward(lambda info, status: os.kill(pid, 9), operation="RunTask")
    proxy.counts["RunTask"], proxy.counts.faulted["RunTask"], proxy.count(method="GET", path="/pods")
    proxy.reset()                                                        # rules, hooks and counts

The first matching rule with uses left decides. Responses with a Content-Length are read whole
and sent at once; others (a Kubernetes watch) are passed through chunk by chunk as they arrive.
The proxy runs its own asyncio loop (aiohttp server and client) in a daemon thread.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from tests.harness.ports import LOOPBACK
from tests.harness.proxy_faults import Delay, Fault, Reset, Respond, Rewrite

ECS_TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
# Read whole and answer in one write below this size; stream anything larger or unsized.
BUFFER_LIMIT = 1 << 20
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Content-Length",
    )
)


@dataclass(frozen=True)
class RequestInfo:
    method: str
    path: str  # with the query string
    operation: str


AfterForward = Callable[[RequestInfo, int], None]


@dataclass
class _Matcher:
    operation: str | None
    method: str | None
    path: re.Pattern[str] | None

    def __call__(self, info: RequestInfo) -> bool:
        return (
            (self.operation is None or info.operation == self.operation)
            and (self.method is None or info.method == self.method)
            and (self.path is None or self.path.search(info.path) is not None)
        )


@dataclass
class _Rule:
    matches: _Matcher
    fault: Fault
    times: int | None
    probability: float
    rng: random.Random

    def fires(self, info: RequestInfo) -> bool:
        if self.times == 0 or not self.matches(info):
            return False
        if self.probability < 1.0 and self.rng.random() >= self.probability:
            return False
        if self.times is not None:
            self.times -= 1
        return True


@dataclass
class _Hook:
    matches: _Matcher
    callback: AfterForward
    times: int | None


@dataclass(frozen=True)
class Counts:
    """A snapshot: ``counts[op]`` all requests for ``op``; ``faulted`` / ``passed`` split them."""

    faulted: dict[str, int] = field(default_factory=dict)
    passed: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, operation: str) -> int:
        return self.faulted.get(operation, 0) + self.passed.get(operation, 0)

    @property
    def total(self) -> int:
        return sum(self.faulted.values()) + sum(self.passed.values())

    def operations(self) -> set[str]:
        return set(self.faulted) | set(self.passed)


def operation_of(method: str, path: str, headers: Any) -> str:
    target: str = headers.get("X-Amz-Target", "")
    if target:
        return target.removeprefix(ECS_TARGET_PREFIX)
    return f"{method} {path.split('?', 1)[0]}"


class FaultProxy:
    def __init__(self, upstream_url: str) -> None:
        self.upstream = URL(upstream_url.rstrip("/"))
        self.url = ""
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._hooks: list[_Hook] = []
        # (operation, method, path without query, faulted) -> requests
        self._counts: Counter[tuple[str, str, str, bool]] = Counter()
        self._connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._runner: web.ServerRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        self.url = f"http://{LOOPBACK}:{port}"
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    async def _start(self) -> int:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False, limit=0, force_close=False),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
        )
        server = _CountingServer(self._handle, self._connected, handler_cancellation=True)
        self._runner = web.ServerRunner(server, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0, backlog=1024)
        await site.start()
        sockets = self._runner.addresses
        port: int = sockets[0][1]
        return port

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # -- configuration --------------------------------------------------------------------------

    def add_rule(
        self,
        fault: Fault,
        *,
        operation: str | None = None,
        method: str | None = None,
        path: str | None = None,
        times: int | None = None,
        probability: float = 1.0,
        seed: int = 0,
    ) -> None:
        """Inject ``fault`` into matching requests: ``times`` of them (None: every one), each
        with ``probability``, drawn from an RNG seeded with ``seed`` so runs repeat."""
        rule = _Rule(_matcher(operation, method, path), fault, times, probability, random.Random(seed))
        with self._lock:
            self._rules.append(rule)

    def after_forward(
        self,
        callback: AfterForward,
        *,
        operation: str | None = None,
        method: str | None = None,
        path: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Call ``callback(info, status)`` once a matching response has been written to the
        client (on the proxy's thread; keep it short)."""
        with self._lock:
            self._hooks.append(_Hook(_matcher(operation, method, path), callback, times))

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()
            self._hooks.clear()
            self._counts.clear()
            self._connections = 0

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self._connections = 0

    # -- counts ---------------------------------------------------------------------------------

    @property
    def counts(self) -> Counts:
        faulted: Counter[str] = Counter()
        passed: Counter[str] = Counter()
        with self._lock:
            for (operation, _method, _path, was_faulted), n in self._counts.items():
                (faulted if was_faulted else passed)[operation] += n
        return Counts(faulted=dict(faulted), passed=dict(passed))

    def count(
        self,
        *,
        operation: str | None = None,
        method: str | None = None,
        path: str | None = None,
        faulted: bool | None = None,
    ) -> int:
        """Requests seen that match every given criterion (``path`` is a regex, no query)."""
        matches = _matcher(operation, method, path)
        with self._lock:
            return sum(
                n
                for (op, meth, p, was_faulted), n in self._counts.items()
                if matches(RequestInfo(meth, p, op)) and (faulted is None or faulted == was_faulted)
            )

    @property
    def connections_accepted(self) -> int:
        """Client TCP connections so far: with keep-alive, far fewer than requests."""
        with self._lock:
            return self._connections

    def _connected(self) -> None:
        with self._lock:
            self._connections += 1

    # -- the request path -----------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        info = RequestInfo(
            request.method, request.raw_path, operation_of(request.method, request.raw_path, request.headers)
        )
        fault = self._choose_fault(info)
        with self._lock:
            self._counts[(info.operation, info.method, info.path.split("?", 1)[0], fault is not None)] += 1
        body = await request.read()

        if isinstance(fault, Delay):
            await asyncio.sleep(fault.seconds)
        elif isinstance(fault, Respond):
            response = web.Response(status=fault.status, body=fault.body, headers=fault.headers)
            await response.prepare(request)
            await response.write_eof()
            return response
        elif isinstance(fault, Reset) and not fault.forward_first:
            _reset_connection(request)
            return web.Response()  # never sent: the connection is gone

        async with self._forward(request, body) as upstream:
            if isinstance(fault, Reset):  # forward_first: the upstream did the work
                await upstream.read()
                _reset_connection(request)
                return web.Response()
            if isinstance(fault, Rewrite):  # the upstream did the work; its answer is mangled
                payload = fault.transform(await upstream.read())
                headers = CIMultiDict(
                    (k, v)
                    for k, v in upstream.headers.items()
                    if k.lower() not in HOP_BY_HOP and k.lower() != "content-encoding"
                )
                rewritten = web.Response(status=upstream.status, body=payload, headers=headers)
                await rewritten.prepare(request)
                await rewritten.write_eof()
                return rewritten
            relayed = await self._relay(request, upstream)
        self._run_hooks(info, upstream.status)
        return relayed

    def _choose_fault(self, info: RequestInfo) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.fires(info):
                    return rule.fault
        return None

    def _forward(self, request: web.BaseRequest, body: bytes) -> Any:
        assert self._session is not None
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP)
        return self._session.request(
            request.method,
            URL(str(self.upstream) + request.raw_path, encoded=True),
            headers=headers,
            data=body if body else None,
            allow_redirects=False,
        )

    async def _relay(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        headers = CIMultiDict((k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP)
        if upstream.content_length is not None and upstream.content_length <= BUFFER_LIMIT:
            payload = await upstream.read()
            response = web.Response(status=upstream.status, body=payload, headers=headers)
            await response.prepare(request)
            await response.write_eof()
            return response
        stream = web.StreamResponse(status=upstream.status, headers=headers)
        if upstream.content_length is None:
            stream.enable_chunked_encoding()
        else:
            stream.content_length = upstream.content_length
        await stream.prepare(request)
        async for chunk in upstream.content.iter_any():
            await stream.write(chunk)
        await stream.write_eof()
        return stream

    def _run_hooks(self, info: RequestInfo, status: int) -> None:
        with self._lock:
            due = []
            for hook in self._hooks:
                if hook.times != 0 and hook.matches(info):
                    if hook.times is not None:
                        hook.times -= 1
                    due.append(hook.callback)
        for callback in due:
            callback(info, status)


class _CountingServer(web.Server):
    def __init__(self, handler: Any, on_connect: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._on_connect = on_connect

    def connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._on_connect()


def _matcher(operation: str | None, method: str | None, path: str | None) -> _Matcher:
    return _Matcher(operation, method.upper() if method else None, re.compile(path) if path else None)


def _reset_connection(request: web.BaseRequest) -> None:
    """Drop the client connection with a TCP RST (SO_LINGER 0), as a crashed peer would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@pytest.fixture
def fault_proxy() -> Iterator[Callable[[str], FaultProxy]]:
    """``fault_proxy(upstream_url)`` starts a proxy; every one started is stopped afterwards."""
    started: list[FaultProxy] = []

    def start(upstream_url: str) -> FaultProxy:
        proxy = FaultProxy(upstream_url).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
