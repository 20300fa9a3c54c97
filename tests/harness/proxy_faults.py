"""What the fault proxy can do to a request, and canned faults as ECS and Kubernetes send them.

    Respond(status, body, headers)   answer without asking the upstream
    Reset(forward_first=False)       close the client connection abruptly (RST, SO_LINGER 0);
                                     with forward_first the upstream gets and executes the
                                     request first, so the work happens but the answer is lost
    Delay(seconds)                   wait, then forward normally
    Rewrite(transform)               forward, then answer with ``transform(body)`` in place of
                                     the upstream's body (same status): a malformed answer to a
                                     request the upstream did execute

ECS (JSON 1.1 protocol, errors as ``__type`` + ``message``)::

    ecs_throttle()       400 ThrottlingException "Rate exceeded"
    ecs_unavailable()    503 ServiceUnavailableException
    ecs_server_error()   500 ServerException
    ecs_error(code, message, status=400)

Kubernetes (``Status`` objects)::

    kube_throttle(retry_after=1)        429 TooManyRequests with Retry-After
    kube_error(code, reason, message)   e.g. kube_error(500, "InternalError", "etcdserver: request timed out")
    kube_unavailable() / kube_gateway_timeout()   503 / 504
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Respond:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reset:
    forward_first: bool = False


@dataclass(frozen=True)
class Delay:
    seconds: float


@dataclass(frozen=True)
class Rewrite:
    transform: Callable[[bytes], bytes]


Fault = Respond | Reset | Delay | Rewrite

AMZ_JSON = "application/x-amz-json-1.1"


def ecs_error(code: str, message: str, status: int = 400) -> Respond:
    body = json.dumps({"__type": code, "message": message}).encode()
    return Respond(
        status=status,
        body=body,
        headers={
            "Content-Type": AMZ_JSON,
            "x-amzn-RequestId": str(uuid.uuid4()),
            "x-amzn-ErrorType": code,
        },
    )


def ecs_throttle() -> Respond:
    return ecs_error("ThrottlingException", "Rate exceeded")


def ecs_unavailable() -> Respond:
    return ecs_error(
        "ServiceUnavailableException", "Service is temporarily unavailable. Try again later.", 503
    )


def ecs_server_error() -> Respond:
    return ecs_error("ServerException", "Internal server error.", 500)


_KUBE_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    409: "AlreadyExists",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def kube_error(
    code: int, reason: str | None = None, message: str = "", retry_after: int | None = None
) -> Respond:
    status: dict[str, object] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message or f"injected {code}",
        "reason": reason or _KUBE_REASONS.get(code, "InternalError"),
        "code": code,
    }
    headers = {"Content-Type": "application/json", "Audit-Id": str(uuid.uuid4())}
    if retry_after is not None:
        status["details"] = {"retryAfterSeconds": retry_after}
        headers["Retry-After"] = str(retry_after)
    return Respond(status=code, body=json.dumps(status).encode(), headers=headers)


def kube_throttle(retry_after: int = 1) -> Respond:
    return kube_error(
        429, "TooManyRequests", "Too many requests, please try again later.", retry_after=retry_after
    )


def kube_unavailable() -> Respond:
    return kube_error(503, "ServiceUnavailable", "the server is currently unable to handle the request")


def kube_gateway_timeout() -> Respond:
    return kube_error(504, "Timeout", "Timeout: request did not complete within the allowed duration")
