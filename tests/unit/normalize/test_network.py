"""Network, credential and client-side exceptions, and the package-level dispatcher.

Every case is a real exception instance built with its library's own constructor (botocore,
urllib3, aiohttp, requests, httpx, asyncio, socket, ssl), raised and chained the way those
libraries chain them.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
import botocore.exceptions as bce
import pytest
import urllib3.exceptions as u3
from aiohttp.client_reqrep import ConnectionKey
from botocore.exceptions import ClientError
from kubernetes.client.exceptions import ApiException, ApiValueError

from airflow_compute_provider.errors import ComputeConfigError, ComputeOperationError, ErrorCode
from airflow_compute_provider.normalize import from_exception, network

C = ErrorCode
ECS_URL = "https://ecs.us-east-1.amazonaws.com/"


def _key() -> ConnectionKey:
    return ConnectionKey("kube.local", 6443, True, True, None, None, None)


def raised_from(outer: Callable[[], BaseException], inner: BaseException) -> BaseException:
    """``outer`` raised ``from inner``, as a library re-raising would leave it."""
    try:
        try:
            raise inner
        except BaseException as cause:
            raise outer() from cause
    except BaseException as exc:
        return exc


EXCEPTIONS: list[Any] = [
    pytest.param(
        bce.EndpointConnectionError(endpoint_url=ECS_URL),
        "ecs",
        C.PROVIDER_UNREACHABLE,
        id="endpoint-connection",
    ),
    pytest.param(
        bce.ConnectTimeoutError(endpoint_url=ECS_URL), "ecs", C.PROVIDER_UNREACHABLE, id="connect-timeout"
    ),
    pytest.param(
        bce.ReadTimeoutError(endpoint_url=ECS_URL), "ecs", C.PROVIDER_UNREACHABLE, id="read-timeout"
    ),
    pytest.param(
        bce.ConnectionClosedError(endpoint_url=ECS_URL), "ecs", C.PROVIDER_UNREACHABLE, id="connection-closed"
    ),
    pytest.param(
        bce.SSLError(endpoint_url=ECS_URL, error="[SSL: CERTIFICATE_VERIFY_FAILED]"),
        "ecs",
        C.PROVIDER_UNREACHABLE,
        id="boto-ssl",
    ),
    pytest.param(
        bce.ProxyConnectionError(proxy_url="http://proxy:3128", error="refused"),
        "ecs",
        C.PROVIDER_UNREACHABLE,
        id="proxy",
    ),
    pytest.param(bce.NoCredentialsError(), "ecs", C.AUTHENTICATION_FAILED, id="no-credentials"),
    pytest.param(
        bce.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
        "ecs",
        C.AUTHENTICATION_FAILED,
        id="partial",
    ),
    pytest.param(bce.NoRegionError(), "ecs", C.INVALID_CONFIGURATION, id="no-region"),
    pytest.param(
        bce.ParamValidationError(report="Missing required parameter: taskDefinition"),
        "ecs",
        C.INVALID_CONFIGURATION,
        id="param-validation",
    ),
    pytest.param(
        u3.MaxRetryError(
            None,
            "/api/v1/namespaces",
            u3.NewConnectionError(
                None, "Failed to establish a new connection: [Errno 111] Connection refused"
            ),
        ),
        None,
        C.PROVIDER_UNREACHABLE,
        id="urllib3-max-retry",
    ),
    pytest.param(
        u3.MaxRetryError(None, "/api/v1/pods", u3.ResponseError("too many 500 error responses")),
        None,
        C.PROVIDER_TEMPORARILY_UNAVAILABLE,
        id="urllib3-5xx-retries",
    ),
    pytest.param(
        u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer")),
        None,
        C.PROVIDER_UNREACHABLE,
        id="urllib3-protocol",
    ),
    pytest.param(
        u3.ReadTimeoutError(None, "/api", "Read timed out. (read timeout=5)"),
        None,
        C.PROVIDER_UNREACHABLE,
        id="urllib3-read-timeout",
    ),
    pytest.param(
        u3.SSLError("EOF occurred in violation of protocol"), None, C.PROVIDER_UNREACHABLE, id="urllib3-ssl"
    ),
    pytest.param(u3.LocationParseError("http://[::1"), None, C.INVALID_CONFIGURATION, id="urllib3-bad-url"),
    pytest.param(
        aiohttp.ClientConnectorError(_key(), ConnectionRefusedError(111, "Connect call failed")),
        None,
        C.PROVIDER_UNREACHABLE,
        id="aiohttp-connector",
    ),
    pytest.param(aiohttp.ServerDisconnectedError(), None, C.PROVIDER_UNREACHABLE, id="aiohttp-disconnected"),
    pytest.param(
        aiohttp.ClientOSError(104, "Connection reset by peer"), None, C.PROVIDER_UNREACHABLE, id="aiohttp-os"
    ),
    pytest.param(
        aiohttp.ServerTimeoutError("Timeout on reading data from socket"),
        None,
        C.PROVIDER_UNREACHABLE,
        id="aiohttp-timeout",
    ),
    # asyncio.TimeoutError is the builtin TimeoutError since Python 3.11
    pytest.param(TimeoutError(), None, C.PROVIDER_UNREACHABLE, id="asyncio-timeout"),
    pytest.param(
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        None,
        C.PROVIDER_UNREACHABLE,
        id="reset",
    ),
    pytest.param(
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
        None,
        C.PROVIDER_UNREACHABLE,
        id="refused",
    ),
    pytest.param(
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        None,
        C.PROVIDER_UNREACHABLE,
        id="dns",
    ),
    pytest.param(
        ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
        None,
        C.PROVIDER_UNREACHABLE,
        id="ssl",
    ),
    pytest.param(
        OSError(errno.EHOSTUNREACH, "No route to host"), None, C.PROVIDER_UNREACHABLE, id="oserror-errno"
    ),
    # Wrapped: what the caller caught is not what failed.
    pytest.param(
        raised_from(
            lambda: RuntimeError("describe failed"), ConnectionResetError(104, "Connection reset by peer")
        ),
        None,
        C.PROVIDER_UNREACHABLE,
        id="wrapped-cause",
    ),
    pytest.param(
        http.client.RemoteDisconnected("Remote end closed connection without response"),
        None,
        C.PROVIDER_UNREACHABLE,
        id="remote-disconnected",
    ),
    pytest.param(
        bce.EndpointResolutionError(msg="Invalid region"),
        "ecs",
        C.INVALID_CONFIGURATION,
        id="endpoint-resolution",
    ),
    pytest.param(
        ApiValueError("Missing the required parameter `namespace` when calling `create_namespaced_pod`"),
        "kubernetes",
        C.INVALID_CONFIGURATION,
        id="kubernetes-client-side-validation",
    ),
    # A waiter that ran out of attempts: the work outlived the wait.
    pytest.param(
        bce.WaiterError(name="TasksStopped", reason="Max attempts exceeded", last_response={}),
        "ecs",
        C.OPERATION_TIMEOUT,
        id="waiter-max-attempts",
    ),
    pytest.param(
        FileNotFoundError(errno.ENOENT, "No such file"), None, C.UNKNOWN_PROVIDER_ERROR, id="not-network"
    ),
    pytest.param(
        ValueError("timeout must be positive"), None, C.UNKNOWN_PROVIDER_ERROR, id="unrelated-words"
    ),
]


@pytest.mark.parametrize(("exc", "provider", "expected"), EXCEPTIONS)
def test_network_exceptions(exc: BaseException, provider: str | None, expected: ErrorCode) -> None:
    for error in (network.from_exception(exc), from_exception(exc)):
        assert error.code is expected
        assert error.provider == provider
        assert error.root_cause.provider == (provider or "network")


def test_root_cause_names_what_failed_and_what_was_caught() -> None:
    exc = raised_from(
        lambda: RuntimeError("describe failed"), ConnectionResetError(104, "Connection reset by peer")
    )
    root = network.from_exception(exc).root_cause
    assert root.provider_code == "ECONNRESET"
    assert root.provider_message == "[Errno 104] Connection reset by peer"
    assert root.reason == "raised as builtins.RuntimeError: describe failed"


def test_a_provider_the_caller_knows_is_kept() -> None:
    error = network.from_exception(ConnectionRefusedError(111, "Connection refused"), provider="kubernetes")
    assert (error.provider, error.root_cause.provider) == ("kubernetes", "kubernetes")


def test_dispatcher_routes_provider_exceptions() -> None:
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "RunTask")
    assert from_exception(throttled).code is C.PROVIDER_THROTTLED
    wrapped = raised_from(lambda: RuntimeError("RunTask failed"), throttled)
    assert from_exception(wrapped).code is C.PROVIDER_THROTTLED
    forbidden = ApiException(status=403, reason="Forbidden")
    forbidden.body = (
        '{"kind":"Status","reason":"Forbidden","message":"pods is forbidden: exceeded quota: q","code":403}'
    )
    assert from_exception(forbidden).code is C.QUOTA_EXCEEDED
    # "Waiter TasksStopped failed: An error occurred (ThrottlingException): Rate exceeded"
    waiter = bce.WaiterError(
        name="TasksStopped",
        reason="An error occurred (ThrottlingException): Rate exceeded",
        last_response={"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
    )
    assert from_exception(waiter).code is C.PROVIDER_THROTTLED
    assert from_exception(waiter).root_cause.provider_code == "ThrottlingException"
    config = ComputeConfigError("must be positive", argument="count")
    assert from_exception(config) is config.error
    assert from_exception(ComputeOperationError(config.error)).code is C.INVALID_CONFIGURATION


@pytest.mark.parametrize("junk", [None, "a string", 42, {"Error": {}}, object()])
def test_dispatcher_takes_anything(junk: Any) -> None:
    assert from_exception(junk).code is C.UNKNOWN_PROVIDER_ERROR
