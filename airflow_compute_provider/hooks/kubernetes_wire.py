"""The body of a raw (not preloaded) ``kubernetes_asyncio`` response, as the client would read it.

Lists and watches ask for raw responses (``_preload_content=False``: no model objects built for
thousands of pods), and then the client leaves the status check to us. ``read_body`` reads the
body and, for a non-2xx status, raises the ``ApiException`` the client would have raised, so the
normalizers read its code, its ``Status`` body and its ``Retry-After``. The hook's pod list and
the watch's list (``triggers/kube_watch.py``) both read through it.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client as async_k8s
from kubernetes_asyncio.client.rest import RESTResponse as AsyncRESTResponse


async def read_body(response: Any) -> bytes:
    """The body of ``response`` (released afterwards); ``ApiException`` for a non-2xx status."""
    try:
        data: bytes = await response.read()
    finally:
        response.release()
    if not 200 <= response.status <= 299:
        error = async_k8s.ApiException(http_resp=AsyncRESTResponse(response, data))
        error.body = data.decode("utf-8", "replace")
        raise error
    return data


__all__ = ["read_body"]
