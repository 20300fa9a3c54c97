"""``KubernetesWatchSource``: pod statuses for a shared poller from one list + watch per namespace.

Polling pods costs requests every interval however they are batched; a watch costs none while
nothing changes and tells us at once when something does. This source keeps, per namespace,
every pod we manage (label ``app.kubernetes.io/managed-by=airflow-compute-provider``) in memory,
the way an informer does:

    list     one list with that selector gives the pods and a ``resourceVersion``
    watch    a watch from that version streams ADDED / MODIFIED / DELETED (and BOOKMARK) events
             into the cache, and calls the poller's ``changed()`` so triggers hear at once;
             the server ends it after ``watch_timeout_seconds`` and it resumes from the newest
             version seen (one request per period)
    410      "Gone" / "Expired" (the version was compacted away), as an HTTP status or as an
             ERROR event in the stream: relist, then watch from the new version
    failure  a transient one (throttled, 5xx, connection lost) marks the cache stale until a
             relist, which the next ``describe`` or the watch's own retry (Retry-After
             honoured) makes; a watch the server refuses for good (RBAC without ``watch``)
             leaves that namespace to plain polling through the hook's ``adescribe``

``describe(units)`` answers from the cache. A unit whose pod the cache does not hold (deleted,
or created a moment ago and its event not here yet) is read through the hook's ``adescribe``,
so a pod is never declared vanished on the cache's word alone. Statuses are cached per pod
``resourceVersion``: a pod that did not change is not read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from kubernetes_asyncio import client as async_k8s

from airflow_compute_provider.errors import Classification, ComputeError, ComputeOperationError
from airflow_compute_provider.hooks.base import Unit, UnitStatus
from airflow_compute_provider.hooks.error_context import ErrorContext, error_context
from airflow_compute_provider.hooks.kubernetes_pods import LABEL_MANAGED_BY, MANAGED_BY
from airflow_compute_provider.hooks.kubernetes_retry import async_retrying
from airflow_compute_provider.hooks.kubernetes_status import unit_status
from airflow_compute_provider.hooks.kubernetes_wire import read_body
from airflow_compute_provider.normalize import from_exception
from airflow_compute_provider.triggers.masking import mask_text

if TYPE_CHECKING:
    from airflow_compute_provider.hooks.kubernetes import KubernetesComputeHook

log = logging.getLogger(__name__)

PROVIDER = "kubernetes"
#: How long the server keeps one watch open; each renewal is one request.
WATCH_TIMEOUT_SECONDS = 300
#: Backoff of the watch after a transient failure (doubling), unless the server says longer.
WATCH_RETRY_SECONDS = 1.0
WATCH_RETRY_MAX_SECONDS = 60.0
#: A cache that heard nothing (no list, no event, no bookmark) for this long is listed again
#: before it is read: a watch connection can stall without failing (a proxy holding it open),
#: and a stale cache would let an operation time out on a unit that long finished.
STALE_AFTER_SECONDS = 15.0


def status_source(
    backend: KubernetesComputeHook, config: Mapping[str, Any], *, poll_interval: float, watch: bool = True
) -> KubernetesWatchSource | None:
    """The registry's status source of Kubernetes: one watch per namespace, unless ``watch`` is
    off (the trigger's ``kubernetes_watch``); then ``None``, and the shared poller lists pods."""
    return KubernetesWatchSource(backend) if watch else None


class _Gone(Exception):
    """The watch's resourceVersion is too old: relist."""


class KubernetesWatchSource:
    """A ``pollers.StatusSource`` for the pods of one ``KubernetesComputeHook``."""

    def __init__(
        self,
        hook: KubernetesComputeHook,
        *,
        watch_timeout_seconds: int = WATCH_TIMEOUT_SECONDS,
        selector: str = f"{LABEL_MANAGED_BY}={MANAGED_BY}",
    ) -> None:
        self.hook = hook
        self.watch_timeout_seconds = watch_timeout_seconds
        self.selector = selector
        self.namespaces: dict[str, _NamespaceCache] = {}
        self._changed: Callable[[], None] = lambda: None
        self._stack = contextlib.AsyncExitStack()
        self._core: async_k8s.CoreV1Api | None = None

    def start(self, changed: Callable[[], None]) -> None:
        self._changed = changed

    async def describe(self, units: Sequence[Unit]) -> list[UnitStatus]:
        by_namespace: dict[str, list[tuple[int, Unit]]] = {}
        for position, unit in enumerate(units):
            namespace = unit.locator.get("namespace") or self.hook.namespace
            by_namespace.setdefault(namespace, []).append((position, unit))
        statuses: dict[int, UnitStatus] = {}
        unknown: list[tuple[int, Unit]] = []
        for namespace, members in by_namespace.items():
            cache = await self._cache(namespace)
            if cache.watching and cache.stale():
                await cache.resync()
            for position, unit in members:
                status = cache.status(unit) if cache.watching else None
                if status is None:
                    unknown.append((position, unit))
                else:
                    statuses[position] = status
        if unknown:
            # Not in the cache: ask the API (one list per namespace and 100 exec keys).
            read = await self.hook.adescribe([unit for _, unit in unknown])
            statuses.update((position, status) for (position, _), status in zip(unknown, read, strict=True))
        return [statuses[i] for i in range(len(units))]

    async def aclose(self) -> None:
        for cache in self.namespaces.values():
            await cache.stop()
        await self._stack.aclose()

    async def _cache(self, namespace: str) -> _NamespaceCache:
        cache = self.namespaces.get(namespace)
        if cache is None:
            cache = self.namespaces[namespace] = _NamespaceCache(self, namespace)
        if cache.watching:
            await cache.ensure_synced()
            cache.ensure_watching()
        return cache

    async def core(self) -> async_k8s.CoreV1Api:
        """One client (one connection pool) for every list and watch of this source."""
        if self._core is None:
            with error_context(ErrorContext(PROVIDER), _normalize):
                api = await self._stack.enter_async_context(self.hook.async_kube_hook.get_conn())
            self._core = async_k8s.CoreV1Api(api)
        return self._core

    def changed(self) -> None:
        self._changed()


class _NamespaceCache:
    """The managed pods of one namespace, kept current by a list and a watch."""

    def __init__(self, source: KubernetesWatchSource, namespace: str) -> None:
        self.source = source
        self.namespace = namespace
        self.pods: dict[str, Mapping[str, Any]] = {}
        self.resource_version: str | None = None
        self.synced = False
        #: ``False`` once the server refused the watch for good: plain polling from then on
        self.watching = True
        self.lists = 0
        self.watches = 0
        self._statuses: dict[str, tuple[str, UnitStatus]] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        #: when the cache last heard from the server (monotonic seconds)
        self.heard_at = time.monotonic()

    # reading

    def status(self, unit: Unit) -> UnitStatus | None:
        pod = self.pods.get(unit.resource_id)
        if pod is None:
            return None
        version = str((pod.get("metadata") or {}).get("resourceVersion") or "")
        cached = self._statuses.get(unit.resource_id)
        if cached is not None and cached[0] == version and cached[1].unit == unit:
            return cached[1]
        status = unit_status(unit, pod)
        self._statuses[unit.resource_id] = (version, status)
        return status

    # the list

    def stale(self) -> bool:
        return time.monotonic() - self.heard_at > STALE_AFTER_SECONDS

    async def resync(self) -> None:
        """List again now, whatever the watch says (it may have stalled)."""
        async with self._lock:
            if self.stale():
                await self._relist()

    async def ensure_synced(self) -> None:
        """A fresh list when the cache cannot be trusted; ``ComputeOperationError`` if it fails."""
        async with self._lock:
            if not self.synced:
                await self._relist()

    async def _relist(self) -> None:
        core = await self.source.core()

        async def call() -> dict[str, Any]:
            response = await core.list_namespaced_pod(
                self.namespace, label_selector=self.source.selector, _preload_content=False
            )
            data: dict[str, Any] = json.loads(await read_body(response))
            return data

        self.lists += 1
        with error_context(ErrorContext(PROVIDER, resource_id=f"namespace/{self.namespace}"), _normalize):
            data: dict[str, Any] = await async_retrying(self.source.hook.retry_settings)(call)
        self.pods = {_name(pod): _trimmed(pod) for pod in data.get("items") or []}
        self._statuses = {k: v for k, v in self._statuses.items() if k in self.pods}
        self.resource_version = str((data.get("metadata") or {}).get("resourceVersion") or "") or None
        self.synced = True
        self.heard_at = time.monotonic()
        if self.lists > 1:
            self.source.changed()  # a relist: what changed while we were not watching

    # the watch

    def ensure_watching(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._watch_forever(), name=f"pod watch {self.namespace}"
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _watch_forever(self) -> None:
        failures = 0
        while True:
            try:
                await self.ensure_synced()
                await self._watch_once()
                failures = 0
            except _Gone:
                log.info("Pod watch in %s expired (410); listing again", self.namespace)
                self.synced = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = _error(exc, f"namespace/{self.namespace}")
                self.synced = False  # events may have been missed
                if error.classification is not Classification.RETRIABLE:
                    log.warning(
                        "Pod watch in %s refused (%s); polling instead: %s",
                        self.namespace,
                        error.code.value,
                        mask_text(error.message),
                    )
                    self.watching = False
                    return
                failures += 1
                delay = min(WATCH_RETRY_MAX_SECONDS, WATCH_RETRY_SECONDS * 2 ** (failures - 1))
                if error.retry_after_seconds is not None:
                    delay = max(delay, float(error.retry_after_seconds))
                log.warning(
                    "Pod watch in %s failed (%s); again in %.1fs", self.namespace, error.code.value, delay
                )
                await asyncio.sleep(delay)

    async def _watch_once(self) -> None:
        core = await self.source.core()
        timeout = self.source.watch_timeout_seconds
        self.watches += 1
        response = await core.list_namespaced_pod(
            self.namespace,
            label_selector=self.source.selector,
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout,
            _preload_content=False,
            # No total limit (the server ends the watch); a silent connection still ends.
            _request_timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=timeout + 30),
        )
        try:
            if response.status == 410:
                raise _Gone
            if not 200 <= response.status <= 299:
                await read_body(response)  # raises the ApiException
            buffer = bytearray()
            async for chunk in response.content.iter_any():
                buffer.extend(chunk)
                while (end := buffer.find(b"\n")) >= 0:
                    line = bytes(buffer[:end])
                    del buffer[: end + 1]
                    if line.strip():
                        self._apply(json.loads(line))
        finally:
            response.release()

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj: Mapping[str, Any] = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone
            raise _status_exception(obj)
        self.heard_at = time.monotonic()
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)
        if kind == "BOOKMARK":
            return
        name = _name(obj)
        if _older(obj, self.pods.get(name)):
            return  # the watch lags a resync's list: keep the newer state
        if kind == "DELETED":
            self.pods.pop(name, None)
            self._statuses.pop(name, None)
        else:
            self.pods[name] = _trimmed(obj)
        self.source.changed()


def _status_exception(status: Mapping[str, Any]) -> async_k8s.ApiException:
    """An ERROR event's ``Status`` as the ApiException the same failure would have raised."""
    error = async_k8s.ApiException(status=int(status.get("code") or 500), reason=str(status.get("reason")))
    error.body = json.dumps(dict(status))
    return error


def _older(pod: Mapping[str, Any], cached: Mapping[str, Any] | None) -> bool:
    """Whether ``pod`` is an older version than ``cached`` (etcd revisions are integers in
    practice; anything else counts as not older)."""
    if cached is None:
        return False
    try:
        new = int((pod.get("metadata") or {}).get("resourceVersion") or "")
        old = int((cached.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return False
    return new < old


def _name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name") or "")


def _trimmed(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod without its managed fields: the biggest part, and nothing a status needs."""
    metadata = pod.get("metadata") or {}
    if "managedFields" not in metadata:
        return pod
    return {**pod, "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}


def _normalize(exc: BaseException) -> ComputeError:
    return from_exception(exc, PROVIDER)


def _error(exc: BaseException, resource_id: str | None = None) -> ComputeError:
    if isinstance(exc, ComputeOperationError):
        return exc.error
    return ErrorContext(PROVIDER, resource_id=resource_id).error(exc, _normalize)
