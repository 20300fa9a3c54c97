"""A mix of wire faults at a chosen rate, on the fault proxy (``tests/harness/proxy.py``).

``add_chaos(proxy, provider, rate=0.2, seed=...)`` adds one probabilistic rule per kind of fault
so that, request by request, ``rate`` of them are faulted in all, shared out as:

    throttle     30%   ECS ThrottlingException / Kubernetes 429 with Retry-After
    server       30%   ECS 503 and 500 / Kubernetes 503 and 500 "etcdserver: request timed out"
    reset        15%   the connection dropped before the request reached the server
    lost answer  10%   the server did the work, the connection dropped before the answer
    latency      15%   the request forwarded late

Launch requests (ECS RunTask, Kubernetes pod creates) see one more rule ahead of the mix: half
the rate again as lost answers. A lost answer is the one fault that can make a launch happen
twice, and at the mix's 2% a run of 50 operations might meet none; with it, every run does.

The proxy lets the first rule that fires decide, so each rule's own probability is its share
of what the rules before it left over. Every rule has its own seed (derived from ``seed``):
a run repeats. A Kubernetes watch is never given a "lost answer": the proxy would wait for the
end of a stream that does not end.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.harness.proxy import FaultProxy
from tests.harness.proxy_faults import (
    Delay,
    Fault,
    Reset,
    ecs_server_error,
    ecs_throttle,
    ecs_unavailable,
    kube_error,
    kube_throttle,
    kube_unavailable,
)

NOT_A_WATCH = r"^(?!.*[?&]watch=(1|true))"
LAUNCHES = {
    "ecs": {"operation": "RunTask"},
    "kubernetes": {"method": "POST", "path": r"^/api/v1/namespaces/[^/]+/pods(\?|$)"},
}


@dataclass(frozen=True)
class _Share:
    fault: Fault
    share: float
    path: str | None = None


def _shares(provider: str) -> list[_Share]:
    if provider == "ecs":
        throttle: list[_Share] = [_Share(ecs_throttle(), 0.30)]
        server = [_Share(ecs_unavailable(), 0.15), _Share(ecs_server_error(), 0.15)]
        lost = [_Share(Reset(forward_first=True), 0.10)]
    else:
        throttle = [_Share(kube_throttle(retry_after=1), 0.30)]
        server = [
            _Share(kube_unavailable(), 0.15),
            _Share(kube_error(500, "InternalError", "etcdserver: request timed out"), 0.15),
        ]
        lost = [_Share(Reset(forward_first=True), 0.10, path=NOT_A_WATCH)]
    return [*throttle, *server, _Share(Reset(), 0.15), *lost, _Share(Delay(0.15), 0.15)]


def add_chaos(proxy: FaultProxy, provider: str, *, rate: float = 0.2, seed: int = 0) -> None:
    """Fault ``rate`` of the requests through ``proxy``, mixed as the module docstring says."""
    proxy.add_rule(Reset(forward_first=True), **LAUNCHES[provider], probability=rate / 2, seed=seed - 1)
    left = 1.0
    for number, item in enumerate(_shares(provider)):
        absolute = rate * item.share
        proxy.add_rule(item.fault, path=item.path, probability=min(1.0, absolute / left), seed=seed + number)
        left -= absolute
