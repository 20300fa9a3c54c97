"""Real Kubernetes client objects built the way the clients build them from an HTTP response.

``sync_api_exception`` goes through urllib3's ``HTTPResponse`` and the client's own
``RESTResponse`` and picks the subclass ``kubernetes.client.rest`` raises for the status.
``async_api_exception`` does the same for kubernetes_asyncio, whose ``RESTResponse`` wraps an
aiohttp response; only that response's head (status, reason, a case-insensitive header
multidict) is stood in for, since aiohttp builds a real one only from a live connection.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import kubernetes.client
import kubernetes_asyncio.client
import urllib3
from kubernetes.client import exceptions as sync_exceptions
from kubernetes.client.rest import RESTResponse as SyncRESTResponse
from kubernetes_asyncio.client.rest import RESTResponse as AsyncRESTResponse
from multidict import CIMultiDict, CIMultiDictProxy


def _body_bytes(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    return (body if isinstance(body, str) else json.dumps(body)).encode()


def sync_api_exception(
    status: int, reason: str, body: Any, headers: dict[str, str] | None = None
) -> sync_exceptions.ApiException:
    response = urllib3.HTTPResponse(
        body=_body_bytes(body), headers=headers or {}, status=status, reason=reason, preload_content=True
    )
    rest = SyncRESTResponse(response)
    cls = {
        401: sync_exceptions.UnauthorizedException,
        403: sync_exceptions.ForbiddenException,
        404: sync_exceptions.NotFoundException,
    }.get(status, sync_exceptions.ServiceException if 500 <= status <= 599 else sync_exceptions.ApiException)
    return cls(http_resp=rest)


@dataclass
class _AiohttpHead:
    status: int
    reason: str
    headers: CIMultiDictProxy[str]


def async_api_exception(
    status: int, reason: str, body: Any, headers: dict[str, str] | None = None
) -> kubernetes_asyncio.client.ApiException:
    head = _AiohttpHead(status, reason, CIMultiDictProxy(CIMultiDict(headers or {})))
    return kubernetes_asyncio.client.ApiException(http_resp=AsyncRESTResponse(head, _body_bytes(body)))


def sync_v1pod(data: dict[str, Any]) -> kubernetes.client.V1Pod:
    return kubernetes.client.ApiClient()._ApiClient__deserialize(data, "V1Pod")  # type: ignore[attr-defined]


def async_v1pod(data: dict[str, Any]) -> Any:
    async def build() -> Any:
        async with kubernetes_asyncio.client.ApiClient() as client:
            return client._ApiClient__deserialize(data, "V1Pod")

    return asyncio.run(build())
