"""``KubernetesComputeHook``: the ``ComputeBackend`` of pods, on the Kubernetes provider's hooks.

One unit is one pod named ``<exec_key>-<index>-g<generation>`` in the hook's namespace. The
pieces, each in its own module:

    kubernetes_pods.py    names, labels, annotations; building a unit's manifest from the
                          template, recognising our pods again (no I/O)
    kubernetes_status.py  a pod's state as a ``UnitStatus`` (no I/O)
    kubernetes_retry.py   bounded retries of transient API failures, Retry-After honoured
    kubernetes.py         this hook: the API calls, and what each failure becomes

The clients come from the provider: ``KubernetesHook`` (sync) and ``AsyncKubernetesHook``
(``kubernetes_asyncio``, for the triggerer), so the connection works as it does for
``KubernetesPodOperator``: in-cluster, a kubeconfig path or an inline kubeconfig in the
connection extras, or the ``config_file`` / ``cluster_context`` / ``in_cluster`` arguments.

What failures become:

    launch    a create refused for one unit (quota, invalid spec, a foreign pod holding our
              name) refuses that unit, the others still launch; a 409 for a pod that *is*
              this unit and generation is adoption. A failure of the call itself (server
              unreachable, throttled beyond our retries, RBAC, missing namespace) stops the
              launch: the units not created yet are not tried, and are refused with it, so
              what did start is never lost. Only when nothing was launched and the server
              never answered (unreachable: a create may have arrived) is it
              ``ComputeOperationError`` instead, with no unit reported as refused. This is
              how the ECS hook treats its answers too, so a throttled or forbidden launch
              reports its units the same way on both providers.
    find, describe, adescribe
              one list call per namespace (label selector on the exec keys); transient
              failures retried, then ``ComputeOperationError``.
    stop      deletes with a grace period; a 404 is success; the rest is returned per unit.

Pod lists are read as raw JSON rather than through the client's models: the status poller
reads many pods often, and building model objects for each costs more than the call itself.

What the server said goes to the debug log (``observability.log_raw_response``, redacted):
the status, headers and body of every API error, and the JSON of every failed or stuck pod.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from functools import cached_property
from typing import Any, TypeVar

import urllib3
from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook, KubernetesHook
from airflow.sdk import BaseHook
from kubernetes import client as k8s
from kubernetes_asyncio import client as async_k8s

from airflow_compute_provider.errors import ComputeConfigError, ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.errors.model import RootCause
from airflow_compute_provider.hooks.base import (
    TOKEN_HELD,
    ExecutionRef,
    LaunchPlan,
    LaunchResult,
    Unit,
    UnitLaunch,
    UnitStatus,
)
from airflow_compute_provider.hooks.connection_lookup import with_lookup_patience
from airflow_compute_provider.hooks.error_context import ErrorContext, error_context
from airflow_compute_provider.hooks.kubernetes_pods import (
    LABEL_MANAGED_BY,
    MANAGED_BY,
    belongs_to,
    exec_key_selector,
    is_dns_label,
    is_same_unit,
    is_terminating,
    parse_pod_name,
    unit_of,
    unit_pod,
)
from airflow_compute_provider.hooks.kubernetes_retry import DEFAULT_RETRY, async_retrying, retrying
from airflow_compute_provider.hooks.kubernetes_status import unit_status
from airflow_compute_provider.hooks.kubernetes_wire import read_body
from airflow_compute_provider.normalize import from_exception
from airflow_compute_provider.observability import log_raw_response

log = logging.getLogger(__name__)

PROVIDER = "kubernetes"
T = TypeVar("T")

#: Failures of the API call itself rather than of one unit's request: after one of these,
#: creating or deleting the next pod would fail the same way.
CALL_LEVEL_CODES = frozenset(
    {
        ErrorCode.PROVIDER_UNREACHABLE,
        ErrorCode.PROVIDER_THROTTLED,
        ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE,
        ErrorCode.AUTHENTICATION_FAILED,
        ErrorCode.PERMISSION_DENIED,
        ErrorCode.RESOURCE_NOT_FOUND,
    }
)


class KubernetesComputeHook(BaseHook):
    """Launch, find, describe and stop the pods of an execution in one namespace.

    :param kubernetes_conn_id: the Kubernetes provider's connection (``kubernetes`` type)
    :param namespace: where the pods live
    :param cluster_context: kubeconfig context, overriding the connection's
    :param config_file: kubeconfig path, overriding the connection's ``kube_config_path``
    :param in_cluster: use the pod's service account, overriding the connection
    :param delete_grace_period_seconds: grace period of ``stop``'s deletes
    """

    provider = PROVIDER
    refusal_frees_token = True  # a refused create leaves the pod's name free
    conn_name_attr = "kubernetes_conn_id"
    default_conn_name = "kubernetes_default"
    hook_name = "Kubernetes compute"

    #: retries of transient API failures (every call of this hook)
    retry_settings = DEFAULT_RETRY
    #: exec keys in one list call's selector; about 35 bytes each keeps the URL short
    max_keys_per_list = 100

    def __init__(
        self,
        kubernetes_conn_id: str = default_conn_name,
        *,
        namespace: str,
        cluster_context: str | None = None,
        config_file: str | None = None,
        in_cluster: bool | None = None,
        delete_grace_period_seconds: int = 30,
    ) -> None:
        super().__init__()
        if not isinstance(namespace, str) or not is_dns_label(namespace):
            raise ComputeConfigError(f"{namespace!r} is not a valid namespace name", argument="namespace")
        if isinstance(delete_grace_period_seconds, bool) or not isinstance(delete_grace_period_seconds, int):
            raise ComputeConfigError("must be an integer", argument="delete_grace_period_seconds")
        if delete_grace_period_seconds < 0:
            raise ComputeConfigError("must not be negative", argument="delete_grace_period_seconds")
        self.kubernetes_conn_id = kubernetes_conn_id
        self.namespace = namespace
        self.cluster_context = cluster_context
        self.config_file = config_file
        self.in_cluster = in_cluster
        self.delete_grace_period_seconds = delete_grace_period_seconds

    # -- identity -----------------------------------------------------------------------------

    def backend_config(self) -> dict[str, Any]:
        return {
            "kubernetes_conn_id": self.kubernetes_conn_id,
            "namespace": self.namespace,
            "cluster_context": self.cluster_context,
            "config_file": self.config_file,
            "in_cluster": self.in_cluster,
            "delete_grace_period_seconds": self.delete_grace_period_seconds,
        }

    def locator(self) -> dict[str, str]:
        return {"namespace": self.namespace}

    # -- clients ------------------------------------------------------------------------------

    @cached_property
    def kube_hook(self) -> KubernetesHook:
        """The provider's sync hook this one is built on."""
        return KubernetesHook(
            conn_id=self.kubernetes_conn_id,
            cluster_context=self.cluster_context,
            config_file=self.config_file,
            in_cluster=self.in_cluster,
        )

    @cached_property
    def async_kube_hook(self) -> AsyncKubernetesHook:
        """The provider's async hook, for ``adescribe``."""
        return _AsyncHook(
            conn_id=self.kubernetes_conn_id,
            cluster_context=self.cluster_context,
            config_file=self.config_file,
            in_cluster=self.in_cluster,
        )

    def get_conn(self) -> k8s.CoreV1Api:
        """The sync CoreV1 client; a connection that cannot give one is a configuration error."""
        return self._core_v1

    @cached_property
    def _core_v1(self) -> k8s.CoreV1Api:
        try:
            core: k8s.CoreV1Api = with_lookup_patience(
                lambda: self.kube_hook.core_v1_client, self.kubernetes_conn_id
            )
        except Exception as exc:
            raise self._client_error(exc) from exc
        _without_transport_retries(core.api_client)
        return core

    def _client_error(self, exc: BaseException) -> ComputeConfigError:
        return ComputeConfigError(
            f"cannot build a Kubernetes client from connection {self.kubernetes_conn_id!r}: "
            f"{type(exc).__name__}: {exc}",
            argument="kubernetes_conn_id",
        )

    def _retry(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        result: T = retrying(self.retry_settings)(fn, *args, **kwargs)
        return result

    def _namespace_of(self, unit: Unit) -> str:
        return unit.locator.get("namespace") or self.namespace

    # -- launch -------------------------------------------------------------------------------

    def launch(self, plan: LaunchPlan) -> LaunchResult:
        # Every manifest is built (and a bad template refused) before the first API call.
        manifests = [
            (unit, unit_pod(plan.request, plan.execution, unit, self.namespace, plan.operation))
            for unit in plan.units
        ]
        core = self.get_conn()
        launched: list[Unit] = []
        refused: list[tuple[UnitLaunch, ComputeError]] = []
        for position, (unit, manifest) in enumerate(manifests):
            try:
                outcome = self._launch_one(core, plan, unit, manifest)
            except Exception as exc:
                # One unit's surprise (a malformed answer) is that unit's refusal: the units
                # launched before it keep their ids, the ones after it are still tried.
                log.warning("Launching unit %d failed unexpectedly", unit.index, exc_info=True)
                outcome = self._malformed(plan, manifest["metadata"]["name"], exc)
            if isinstance(outcome, Unit):
                launched.append(outcome)
                continue
            if outcome.code not in CALL_LEVEL_CODES:
                refused.append((unit, outcome))
                continue
            if not launched and outcome.root_cause.http_status is None:
                raise ComputeOperationError(outcome)
            refused.extend(
                (rest, _for_resource(outcome, pod["metadata"]["name"], replace=True))
                for rest, pod in manifests[position:]
            )
            break
        return LaunchResult(launched=launched, refused=refused)

    def _launch_one(
        self, core: k8s.CoreV1Api, plan: LaunchPlan, unit: UnitLaunch, manifest: dict[str, Any]
    ) -> Unit | ComputeError:
        """Create one unit's pod, or adopt it when a create of ours already made it."""
        name = manifest["metadata"]["name"]
        context = {"operation": plan.operation or None, "resource_id": name}
        launched = Unit(unit.index, unit.generation, name, self.locator())
        # Twice at most: a pod that holds our name can vanish between the 409 and our read.
        for _ in range(2):
            try:
                _read_json(
                    self._retry(core.create_namespaced_pod, self.namespace, manifest, _preload_content=False)
                )
                return launched
            except Exception as exc:
                if _status(exc) != 409:
                    return self._normalized(exc, plan.execution, **context)
            try:
                existing = self._read_pod(core, name)
            except Exception as exc:
                if _status(exc) == 404:
                    continue
                return self._normalized(exc, plan.execution, **context)
            if not is_same_unit(existing, plan.execution, unit):
                return self._conflict(
                    plan, name, "already exists and is not this unit of this execution", reason=TOKEN_HELD
                )
            if is_terminating(existing):
                return self._conflict(
                    plan, name, "is being deleted; it can be launched again once it is gone"
                )
            log.info("Adopted pod %s/%s, created by an earlier launch of the same unit", self.namespace, name)
            return launched
        return self._conflict(plan, name, "kept appearing and vanishing while it was being created")

    def _read_pod(self, core: k8s.CoreV1Api, name: str) -> dict[str, Any]:
        pod = _read_json(self._retry(core.read_namespaced_pod, name, self.namespace, _preload_content=False))
        if not isinstance(pod, dict) or not isinstance(pod.get("metadata"), dict):
            raise ValueError(f"the API server answered the read of pod {name} with no pod metadata")
        return pod

    def _malformed(self, plan: LaunchPlan, name: str, exc: BaseException) -> ComputeError:
        return ComputeError(
            code=ErrorCode.UNKNOWN_PROVIDER_ERROR,
            message=f"pod {self.namespace}/{name}: the API server's answer could not be read ({exc})",
            provider=PROVIDER,
            operation=plan.operation or None,
            execution_id=plan.execution.execution_id,
            tenant_id=plan.execution.tenant_id,
            root_cause=RootCause(provider=PROVIDER, resource_id=name, reason="malformed_answer"),
        )

    def _conflict(self, plan: LaunchPlan, name: str, why: str, reason: str | None = None) -> ComputeError:
        return ComputeError(
            code=ErrorCode.CONFLICT,
            message=f"pod {self.namespace}/{name} {why}",
            provider=PROVIDER,
            operation=plan.operation or None,
            execution_id=plan.execution.execution_id,
            tenant_id=plan.execution.tenant_id,
            root_cause=RootCause(
                provider=PROVIDER,
                provider_code="AlreadyExists",
                http_status=409,
                resource_id=name,
                reason=reason or why,
            ),
        )

    # -- find / describe ----------------------------------------------------------------------

    def find(self, execution: ExecutionRef) -> list[Unit]:
        pods = self._list(self.namespace, exec_key_selector([execution.key]))
        units = [unit_of(pod, self.namespace) for pod in pods if belongs_to(pod, execution)]
        return sorted((u for u in units if u is not None), key=lambda u: (u.index, u.generation))

    def describe(self, units: Sequence[Unit]) -> list[UnitStatus]:
        pods: dict[tuple[str, str], dict[str, Any]] = {}
        for namespace, selector in self._list_requests(units):
            for pod in self._list(namespace, selector):
                if (name := _name_of(pod)) is not None:
                    pods[(namespace, name)] = pod
        return self._statuses(units, pods)

    async def adescribe(self, units: Sequence[Unit]) -> list[UnitStatus]:
        requests = self._list_requests(units)
        pods: dict[tuple[str, str], dict[str, Any]] = {}
        if requests:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    api = await stack.enter_async_context(self.async_kube_hook.get_conn())
                except Exception as exc:
                    raise self._client_error(exc) from exc
                core = async_k8s.CoreV1Api(api)
                for namespace, selector in requests:
                    for pod in await self._alist(core, namespace, selector):
                        if (name := _name_of(pod)) is not None:
                            pods[(namespace, name)] = pod
        return self._statuses(units, pods)

    def _list_requests(self, units: Sequence[Unit]) -> list[tuple[str, str]]:
        """The list calls that cover ``units``: one per namespace (per ``max_keys_per_list``
        exec keys), selecting on the exec keys their pod names carry."""
        keys: dict[str, set[str]] = defaultdict(set)
        unparsed: set[str] = set()
        for unit in units:
            namespace = self._namespace_of(unit)
            parsed = parse_pod_name(unit.resource_id)
            if parsed is None:
                unparsed.add(namespace)
            else:
                keys[namespace].add(parsed[0])
        requests: list[tuple[str, str]] = []
        for namespace in sorted(set(keys) | unparsed):
            if namespace in unparsed:
                # A name we did not give (never one of our launches): every pod we manage there.
                requests.append((namespace, f"{LABEL_MANAGED_BY}={MANAGED_BY}"))
                continue
            ordered = sorted(keys[namespace])
            for start in range(0, len(ordered), self.max_keys_per_list):
                requests.append(
                    (namespace, exec_key_selector(ordered[start : start + self.max_keys_per_list]))
                )
        return requests

    def _statuses(
        self, units: Sequence[Unit], pods: Mapping[tuple[str, str], dict[str, Any]]
    ) -> list[UnitStatus]:
        statuses = []
        for unit in units:
            pod = pods.get((self._namespace_of(unit), unit.resource_id))
            status = unit_status(unit, pod)
            if status.error is not None and pod is not None:
                what = (
                    "Kubernetes pod that failed" if status.phase.terminal else "Kubernetes pod stuck pending"
                )
                log_raw_response(self.log, pod, what=what)
            statuses.append(status)
        return statuses

    def _list(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        core = self.get_conn()

        def call() -> list[dict[str, Any]]:
            response = core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
            items: list[dict[str, Any]] = _read_json(response).get("items") or []
            return items

        with self._errors(f"namespace/{namespace}"):
            return self._retry(call)

    async def _alist(self, core: async_k8s.CoreV1Api, namespace: str, selector: str) -> list[dict[str, Any]]:
        async def call() -> list[dict[str, Any]]:
            response = await core.list_namespaced_pod(
                namespace, label_selector=selector, _preload_content=False
            )
            # Without preloading, kubernetes_asyncio leaves the status check to us.
            data = await read_body(response)
            items: list[dict[str, Any]] = json.loads(data).get("items") or []
            return items

        with self._errors(f"namespace/{namespace}"):
            result: list[dict[str, Any]] = await async_retrying(self.retry_settings)(call)
            return result

    # -- stop ---------------------------------------------------------------------------------

    def stop(self, units: Sequence[Unit], reason: str) -> list[tuple[Unit, ComputeError]]:
        core = self.get_conn()
        grace = self.delete_grace_period_seconds
        options = k8s.V1DeleteOptions(grace_period_seconds=grace, propagation_policy="Background")
        failures: list[tuple[Unit, ComputeError]] = []
        call_failure: ComputeError | None = None
        for unit in units:
            namespace = self._namespace_of(unit)
            if call_failure is not None:
                failures.append((unit, _for_resource(call_failure, unit.resource_id, replace=True)))
                continue
            log.info("Deleting pod %s/%s (grace %ss): %s", namespace, unit.resource_id, grace, reason)
            try:
                _read_json(
                    self._retry(
                        core.delete_namespaced_pod,
                        unit.resource_id,
                        namespace,
                        body=options,
                        grace_period_seconds=grace,
                        _preload_content=False,
                    )
                )
            except Exception as exc:
                if _status(exc) == 404:
                    continue  # already gone: stopped is what we wanted
                error = self._normalized(exc, resource_id=unit.resource_id)
                failures.append((unit, error))
                if error.code in CALL_LEVEL_CODES:
                    call_failure = error
        return failures

    # -- errors -------------------------------------------------------------------------------

    def _normalize(self, exc: BaseException) -> ComputeError:
        log_raw_response(self.log, _raw_response(exc), what="Kubernetes API error response")
        return from_exception(exc, PROVIDER)

    def _normalized(
        self,
        exc: BaseException,
        execution: ExecutionRef | None = None,
        *,
        operation: str | None = None,
        resource_id: str | None = None,
    ) -> ComputeError:
        return self._context(execution, operation, resource_id).error(exc, self._normalize)

    @staticmethod
    def _context(
        execution: ExecutionRef | None = None, operation: str | None = None, resource_id: str | None = None
    ) -> ErrorContext:
        # The unit's own id, as the units and cleanup reports name it, even where the server's
        # Status details named the object its way ("pods/<name>"): one id joins the reports.
        return ErrorContext(PROVIDER, execution, operation, resource_id, replace_resource=True)

    def _errors(self, resource_id: str | None = None) -> AbstractContextManager[ErrorContext]:
        """Every exception of the block leaves as a ``ComputeOperationError`` (``error_context``)."""
        return error_context(self._context(resource_id=resource_id), self._normalize)


class _AsyncHook(AsyncKubernetesHook):
    """The provider's async hook, made to honour ``config_file`` the way the sync hook does
    (the async one only reads ``kube_config_path`` from the connection extras)."""

    async def _get_field(self, field_name: str) -> Any:
        if self.config_file and field_name == "kube_config_path":
            return self.config_file
        if self.config_file and field_name == "kube_config":
            return None  # the explicit file wins, as in the sync hook
        return await super()._get_field(field_name)


def _without_transport_retries(api_client: k8s.ApiClient) -> None:
    """Leave retrying to ``kubernetes_retry`` alone.

    urllib3 retries three times by default, and a 429 or 503 with ``Retry-After`` among them,
    sleeping as long as the server says; under our own retries that multiplies the attempts
    and escapes our cap on the wait. The async client (aiohttp) does not retry at all.
    """
    pool_manager = api_client.rest_client.pool_manager
    pool_manager.connection_pool_kw["retries"] = urllib3.Retry(total=0, respect_retry_after_header=False)
    pool_manager.clear()  # pools made before this keep their own setting


def _raw_response(exc: BaseException) -> Any:
    """What the API server answered, for the debug log: status, headers and the body (the
    ``Status`` object when it is JSON); anything that never got an answer as its repr."""
    if not isinstance(exc, (k8s.ApiException, async_k8s.ApiException)):
        return repr(exc)
    body: Any = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        with contextlib.suppress(ValueError):
            body = json.loads(body)
    return {
        "status": exc.status,
        "reason": exc.reason,
        "headers": dict(exc.headers or {}),
        "body": body,
    }


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, (k8s.ApiException, async_k8s.ApiException)):
        return int(exc.status) if exc.status is not None else None
    return None


def _name_of(pod: Any) -> str | None:
    """A listed pod's name; ``None`` for an item without one (a malformed answer), which then
    matches no unit rather than failing the whole list."""
    metadata = pod.get("metadata") if isinstance(pod, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else None


def _read_json(response: Any) -> Any:
    """The decoded body of a sync call made with ``_preload_content=False``."""
    try:
        data = response.data
    finally:
        response.release_conn()
    return json.loads(data) if data else {}


def _for_resource(error: ComputeError, resource_id: str, *, replace: bool = False) -> ComputeError:
    """``error`` naming ``resource_id`` in its root cause, unless it already names one (or
    ``replace``: one call's failure reported for each unit it kept from being handled)."""
    if error.root_cause.resource_id and not replace:
        return error
    return error.model_copy(
        update={"root_cause": error.root_cause.model_copy(update={"resource_id": resource_id})}
    )
