"""Kubernetes failures -> ``ComputeError``: API errors and pod states.

    from_api_exception(exc)   ``kubernetes.client.ApiException`` or the kubernetes_asyncio one
    from_pod(pod)             a pod (API JSON dict, ``V1Pod``, or just its status); ``None``
                              while it runs, succeeded, or is pending normally

Neither imports a Kubernetes client: an ApiException is read through ``status``, ``reason``,
``body`` and ``headers``, which both clients set the same way; a ``V1Pod`` is turned into the
API's JSON through its OpenAPI attribute map. The rules are in ``kubernetes_rules``.

A pod is read as ordered groups of candidate facts; the first group with a failure wins:

    1. the pod's own reason / message      Evicted, DeadlineExceeded, NodeLost, OutOfcpu, ...
    2. a DisruptionTarget condition        preemption, taint-manager deletion, kubelet eviction
    3. deletion before it finished         CANCELLED
    4. the PodScheduled condition          Unschedulable with the scheduler's message
    5. its containers (init ones first)    the container matched by the earliest rule
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.normalize import _read
from airflow_compute_provider.normalize._result import Cause, build, log_raw, unknown
from airflow_compute_provider.normalize.kubernetes_rules import (
    API_RULES,
    CONTAINER_RULES,
    PLACEMENT_BLOCKS_EVERY_NODE,
    PLACEMENT_WORDS,
    POD_RULES,
    ROOM_WORDS,
    SCHEDULING_RULES,
)
from airflow_compute_provider.normalize.rules import Facts, Rule, best_match, first_match

PROVIDER = "kubernetes"

_STATUS_KEYS = frozenset({"phase", "containerStatuses", "initContainerStatuses", "conditions", "reason"})
_MAX_BODY = 1_000_000


def from_api_exception(exc: Any) -> ComputeError:
    """Normalize an ``ApiException`` from either Kubernetes client."""
    try:
        return _from_api_exception(exc)
    except Exception as error:
        return unknown(PROVIDER, "API error", exc, error)


def from_pod(pod: Any) -> ComputeError | None:
    """Why a pod failed or is stuck, or ``None`` while it is fine."""
    try:
        return _from_pod(pod)
    except Exception as error:
        return unknown(PROVIDER, "pod", pod, error)


# --- API errors -----------------------------------------------------------------------------------


def _from_api_exception(exc: Any) -> ComputeError:
    http_status = _read.integer(getattr(exc, "status", None))
    http_reason = _read.text(getattr(exc, "reason", None))
    body = getattr(exc, "body", None)
    headers = getattr(exc, "headers", None)
    status = _status_object(body)
    details = _read.mapping(status.get("details"))

    code = _read.integer(status.get("code")) or http_status
    reason_code = _read.text(status.get("reason"), 200) or _phrase(http_reason)
    message = _read.text(status.get("message"))
    if message is None and not status:
        message = _read.text(body)  # a plain-text body ("Too many requests, please try again later.")
    kind, name = _read.text(details.get("kind"), 200), _read.text(details.get("name"), 500)

    # The HTTP reason phrase stands in for a message only when there is none (status 0 puts
    # the client's own SSLError text there); "Bad Request" alone says nothing about why.
    facts = Facts(provider_code=reason_code, http_status=code, message=message or http_reason)
    cause = Cause(
        provider=PROVIDER,
        provider_code=reason_code,
        provider_message=message or http_reason,
        http_status=code,
        request_id=_read.header(headers, "Audit-Id"),
        resource_id=f"{kind}/{name}" if kind and name else name,
        reason=http_reason,
    )
    retry_after = _read.number(_read.header(headers, "Retry-After"))
    if retry_after is None:
        retry_after = _read.number(details.get("retryAfterSeconds"))
    rule = first_match(API_RULES, facts)
    target = f"request for {cause.resource_id}" if cause.resource_id else None
    if rule is None or rule.code is None:
        log_raw("API error", body)
        return build(ErrorCode.UNKNOWN_PROVIDER_ERROR, cause, provider=PROVIDER, target=target)
    return build(rule.code, cause, provider=PROVIDER, target=target, retry_after_seconds=retry_after)


def _phrase(http_reason: str | None) -> str | None:
    """The HTTP reason phrase as a code ("Forbidden"), not the client's error text (status 0)."""
    if http_reason and len(http_reason) <= 60 and "\n" not in http_reason:
        return http_reason
    return None


def _status_object(body: Any) -> Mapping[str, Any]:
    """The ``Status`` object of an error body, or an empty mapping when it is not JSON."""
    if isinstance(body, Mapping):
        return body
    raw = _read.text(body, _MAX_BODY)
    if not raw or raw.lstrip()[:1] != "{":
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return _read.mapping(parsed)


# --- pods -----------------------------------------------------------------------------------------


def _from_pod(pod: Any) -> ComputeError | None:
    data = pod if isinstance(pod, Mapping) else _read.json_form(pod)
    if not isinstance(data, Mapping):
        return unknown(PROVIDER, "pod", pod)
    status_value = data.get("status")
    if isinstance(status_value, Mapping):
        status = status_value
    elif _STATUS_KEYS & set(data):
        status, data = data, {}  # just the status was given
    else:
        status = {}
    phase = _read.text(status.get("phase"), 50)
    if phase == "Succeeded":
        return None

    metadata = _read.mapping(data.get("metadata"))
    namespace = _read.text(metadata.get("namespace"), 253)
    name = _read.text(metadata.get("name"), 253)
    pod_id = f"{namespace}/{name}" if namespace and name else name
    deletion = _read.text(metadata.get("deletionTimestamp"), 100)

    failure = _first_failure(data, status, phase, deletion)
    if failure is not None:
        code, facts, container = failure
        cause = Cause(
            provider=PROVIDER,
            provider_code=facts.provider_code,
            provider_message=facts.message,
            resource_id=pod_id,
            exit_code=facts.exit_code,
            reason=facts.reason or facts.provider_code,
        )
        target = " ".join(p for p in ("pod", pod_id, f"container {container}" if container else "") if p)
        return build(code, cause, provider=PROVIDER, target=target)

    if phase != "Failed":
        return None
    log_raw("failed pod", data or status)
    cause = Cause(
        provider=PROVIDER,
        provider_code=_read.text(status.get("reason"), 200),
        provider_message=_read.text(status.get("message")),
        resource_id=pod_id,
    )
    return build(
        ErrorCode.UNKNOWN_PROVIDER_ERROR, cause, provider=PROVIDER, target=f"pod {pod_id or ''}".strip()
    )


def _first_failure(
    pod: Mapping[str, Any], status: Mapping[str, Any], phase: str | None, deletion: str | None
) -> tuple[ErrorCode, Facts, str | None] | None:
    """The first group's failure (see the module docstring): its code, facts and container."""
    conditions = [_read.mapping(c) for c in _read.items(status.get("conditions"))]
    terminal = phase in ("Succeeded", "Failed")

    groups: list[tuple[tuple[Rule, ...], list[Facts]]] = [
        (POD_RULES, [_facts(status.get("reason"), status.get("message"))]),
        (
            POD_RULES,
            [
                _facts(c.get("reason"), c.get("message"))
                for c in conditions
                if c.get("type") == "DisruptionTarget" and c.get("status") == "True"
            ],
        ),
        (
            POD_RULES,
            [
                Facts(
                    message=f"the pod is being deleted (deletionTimestamp {deletion})",
                    flags=frozenset({"deleted_while_active"}),
                )
            ]
            if deletion and not terminal
            else [],
        ),
        (
            SCHEDULING_RULES,
            [
                _scheduling_facts(c)
                for c in conditions
                if c.get("type") == "PodScheduled"
                and c.get("status") == "False"
                and phase in (None, "Pending")
            ],
        ),
    ]
    for table, candidates in groups:
        for facts in candidates:
            rule = first_match(table, facts)
            if rule is not None and rule.code is not None:
                return rule.code, facts, None

    containers = list(_container_facts(pod, status, phase, deleting=deletion is not None))
    match = best_match(CONTAINER_RULES, [facts for facts, _ in containers])
    code = match[0].code if match is not None else None
    if match is None or code is None:
        return None
    chosen = match[1]
    return code, chosen, next(name for facts, name in containers if facts is chosen)


def _facts(reason: Any, message: Any) -> Facts:
    return Facts(provider_code=_read.text(reason, 200), message=_read.text(message))


_SCHEDULER_SUMMARY = re.compile(
    r"(\d{1,9})/(\d{1,9}) nodes are available: (.*?)(?:\. preemption:|\.?$)", re.S
)
_SCHEDULER_ITEM = re.compile(r"(\d{1,9}) (.+)")
_ROOM = re.compile(ROOM_WORDS, re.I)
_PLACEMENT = re.compile(PLACEMENT_WORDS, re.I)


def _scheduling_facts(condition: Mapping[str, Any]) -> Facts:
    """The PodScheduled condition, flagged when static placement rules out every node.

    The scheduler counts nodes per reason ("0/10 nodes are available: 10 node(s) didn't match
    node selector, 4 Insufficient cpu"); when the placement reasons alone cover all nodes,
    freeing capacity would not help, whatever else is listed.
    """
    facts = _facts(condition.get("reason"), condition.get("message"))
    summary = _SCHEDULER_SUMMARY.search(facts.message or "")
    if summary is None:
        return facts
    total = int(summary.group(2))
    blocked = 0
    for item in summary.group(3).split(", "):
        parts = _SCHEDULER_ITEM.match(item.strip())
        if parts and _PLACEMENT.search(parts.group(2)) and not _ROOM.search(parts.group(2)):
            blocked += int(parts.group(1))
    if total > 0 and blocked >= total:
        return Facts(
            provider_code=facts.provider_code,
            message=facts.message,
            flags=frozenset({PLACEMENT_BLOCKS_EVERY_NODE}),
        )
    return facts


def _container_facts(
    pod: Mapping[str, Any], status: Mapping[str, Any], phase: str | None, *, deleting: bool
) -> Iterator[tuple[Facts, str | None]]:
    # A container that terminated in a pod that has not failed will be restarted, unless the
    # pod never restarts anything; then its failure already decides the pod's fate.
    restart_policy = _read.text(_read.dig(pod, "spec", "restartPolicy"), 50)
    terminated_counts = phase == "Failed" or restart_policy in (None, "Never")
    flags = frozenset({"deleting"}) if deleting else frozenset()
    for key in ("initContainerStatuses", "containerStatuses"):
        for entry in _read.items(status.get(key)):
            container = _read.mapping(entry)
            name = _read.text(container.get("name"), 253)
            state = _read.mapping(container.get("state"))
            last = _read.mapping(_read.dig(container, "lastState", "terminated"))
            waiting = _read.mapping(state.get("waiting"))
            terminated = _read.mapping(state.get("terminated"))
            if waiting:
                yield (
                    Facts(
                        provider_code=_read.text(waiting.get("reason"), 200),
                        message=_read.text(waiting.get("message")),
                        reason=_read.text(last.get("reason"), 200),
                        exit_code=_read.integer(last.get("exitCode")),
                        flags=flags,
                    ),
                    name,
                )
            elif terminated and terminated_counts:
                yield (
                    Facts(
                        provider_code=_read.text(terminated.get("reason"), 200),
                        message=_read.text(terminated.get("message")),
                        exit_code=_read.integer(terminated.get("exitCode")),
                        flags=flags,
                    ),
                    name,
                )
