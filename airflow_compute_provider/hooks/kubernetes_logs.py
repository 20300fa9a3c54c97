"""Container output of a unit's pod, through the API server (``pods/{name}/log``).

``KubernetesLogReader`` implements ``container_logs.ContainerLogReader`` on the client of a
``KubernetesComputeHook`` (the same connection, namespace and TLS as every other call):

    read(unit, containers, since)   the log of each chosen container (the pod's first, its main
                                    one, by default), with ``timestamps=true`` so every line
                                    carries the kubelet's own time, from ``since`` on
                                    (``sinceSeconds`` with a margin; the Python client has no
                                    ``sinceTime``, and the API rounds that to seconds anyway:
                                    lines before ``since`` are dropped here by their timestamp)
    tail(unit, n)                   the main container's last ``n`` lines (``tailLines``)
    events(unit, n)                 the pod's last events (``involvedObject.name``), as
                                    KubernetesPodOperator's ``log_events_on_failure`` shows them

Every request is bounded: ``limitBytes`` per read and a request timeout, so a slow or faulted
log API costs a warning, not the task. A pod already deleted (404) or a container that never
started (400 "waiting to start") is a warning too; nothing here raises.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_compute_provider.hooks.base import Unit
from airflow_compute_provider.hooks.container_logs import LogLine, LogRead, clean_line
from airflow_compute_provider.hooks.kubernetes import KubernetesComputeHook

#: bytes of one log read (the API cuts there; the tail of a huge log is read with ``tail``)
LIMIT_BYTES = 1024 * 1024
#: (connect, read) seconds of one log request: a stalled log API must not stall the task
REQUEST_TIMEOUT = (5.0, 5.0)
#: how far ``sinceSeconds`` reaches back beyond ``since``: clock skew between here and the node
SKEW_MARGIN = timedelta(seconds=5)

_STAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z ?")


class KubernetesLogReader:
    """Reads pods' container logs through ``hook``'s client."""

    def __init__(self, hook: KubernetesComputeHook) -> None:
        self.hook = hook
        #: each pod's container names, in spec order (the first is the main one)
        self._containers: dict[str, list[str]] = {}

    # -- ContainerLogReader --------------------------------------------------------------------

    def read(self, unit: Unit, containers: Sequence[str] | bool | None, since: datetime | None) -> LogRead:
        result = LogRead()
        names = self._chosen(unit, containers, result)
        for name in names:
            lines = self._log(unit, name, result, since=since)
            result.lines.extend(x for x in lines if since is None or x.at is None or x.at >= since)
        return result

    def tail(self, unit: Unit, lines: int) -> tuple[str | None, LogRead]:
        result = LogRead()
        names = self._chosen(unit, None, result)
        if not names:
            return None, result
        result.lines.extend(self._log(unit, names[0], result, tail=lines))
        return names[0], result

    def events(self, unit: Unit, count: int) -> list[str]:
        try:
            response = self.hook.get_conn().list_namespaced_event(
                self._namespace(unit),
                field_selector=f"involvedObject.name={unit.resource_id}",
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
            items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
        except Exception:
            return []
        items.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        shown = []
        for event in items[-count:]:
            repeat = f" (x{event['count']})" if (event.get("count") or 1) > 1 else ""
            text = f"{event.get('type', '')} {event.get('reason', '')}: {event.get('message', '')}{repeat}"
            shown.append(clean_line(text.strip()))
        return shown

    # -- plumbing ------------------------------------------------------------------------------

    def _namespace(self, unit: Unit) -> str:
        return unit.locator.get("namespace") or self.hook.namespace

    def _chosen(self, unit: Unit, containers: Sequence[str] | bool | None, result: LogRead) -> list[str]:
        known = self._containers.get(unit.resource_id)
        if known is None:
            try:
                response = self.hook.get_conn().read_namespaced_pod(
                    unit.resource_id,
                    self._namespace(unit),
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
                pod = json.loads(response.data)
            except Exception as exc:
                result.warnings.append(f"unit {unit.index}: cannot read pod {unit.resource_id}: {_why(exc)}")
                return []
            known = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
            self._containers[unit.resource_id] = known
        if containers is None or containers is False:
            return known[:1]
        if containers is True:
            return known
        missing = [c for c in containers if c not in known]
        if missing:
            result.warnings.append(f"unit {unit.index}: pod {unit.resource_id} has no container {missing}")
        return [c for c in containers if c in known]

    def _log(
        self,
        unit: Unit,
        container: str,
        result: LogRead,
        *,
        since: datetime | None = None,
        tail: int | None = None,
    ) -> list[LogLine]:
        options: dict[str, Any] = {"container": container, "timestamps": True, "limit_bytes": LIMIT_BYTES}
        if since is not None:
            reach = datetime.now(UTC) - since + SKEW_MARGIN
            options["since_seconds"] = max(1, math.ceil(reach.total_seconds()))
        if tail is not None:
            options["tail_lines"] = tail
        try:
            response = self.hook.get_conn().read_namespaced_pod_log(
                unit.resource_id,
                self._namespace(unit),
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
                **options,
            )
            data: bytes = response.data
        except Exception as exc:
            result.warnings.append(
                f"unit {unit.index}: cannot read the log of container {container} "
                f"of pod {unit.resource_id}: {_why(exc)}"
            )
            return []
        return [_line(raw, container) for raw in data.split(b"\n") if raw]


def _line(raw: bytes, container: str) -> LogLine:
    match = _STAMP.match(raw)
    if match is None:
        return LogLine(None, container, clean_line(raw))
    fraction = (match.group(2) or b"").decode()[:6].ljust(6, "0")
    at = datetime.fromisoformat(f"{match.group(1).decode()}.{fraction}+00:00")
    return LogLine(at, container, clean_line(raw[match.end() :]))


def _why(exc: BaseException) -> str:
    """A short reason: the API's status and message, or the exception's name and text."""
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    message = ""
    if isinstance(body, bytes | str):
        try:
            message = str(json.loads(body).get("message") or "")
        except (ValueError, AttributeError):
            message = str(body)[:200]
    if status == 404:
        return f"it no longer exists (404){': ' + message if message else ''}"
    if status is not None:
        return f"HTTP {status}{': ' + message if message else ''}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


__all__ = ["LIMIT_BYTES", "REQUEST_TIMEOUT", "KubernetesLogReader"]
