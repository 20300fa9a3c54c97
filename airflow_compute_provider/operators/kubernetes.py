"""``KubernetesComputeOperator``: run pods for a tenant, on the shared compute lifecycle.

This module only says what to launch: a pod manifest, built from simple fields (image, cmds,
arguments, env vars, resources) or taken from a full pod template (a dict in the API's JSON
form, or a ``V1Pod``), and the backend that creates it (``KubernetesComputeHook``). One pod per
unit, names derived from the execution, waiting, stuck-pending detection and error handling are
``BaseComputeOperator``'s and the hook's.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any, ClassVar

from pydantic import Field

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.hooks.base import ComputeBackend
from airflow_compute_provider.hooks.container_logs import ContainerLogReader
from airflow_compute_provider.lifecycle.arguments import Validator, typed
from airflow_compute_provider.links import KubernetesPodLink
from airflow_compute_provider.operators.base import BaseComputeOperator
from airflow_compute_provider.triggers.progress import DEFAULT_PENDING_GRACE_PERIOD

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_CONTAINER_NAME = "main"


def _string_map(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError("must be a mapping of strings to strings")
    return {str(k): str(v) for k, v in value.items()}


def _env_vars(value: Any) -> list[dict[str, Any]] | None:
    """``{"NAME": "value"}`` or a list of ``{"name", "value" | "valueFrom"}`` (or V1EnvVar)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return [{"name": str(k), "value": str(v)} for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [_as_json(item) for item in value]
    raise ValueError("must be a mapping of names to values, or a list of env var objects")


def _pod_template(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    pod = _as_json(value)
    if not isinstance(pod, dict) or not isinstance(pod.get("spec"), Mapping):
        raise ValueError("must be a pod manifest with a 'spec'")
    containers = pod["spec"].get("containers")
    if not isinstance(containers, list) or not containers:
        raise ValueError("its spec needs at least one container")
    return pod


def _as_json(value: Any) -> Any:
    """The API's JSON form of a kubernetes client model (V1Pod, V1EnvVar...), or the value."""
    if hasattr(value, "to_dict") and hasattr(value, "openapi_types"):
        from kubernetes.client import ApiClient

        return ApiClient().sanitize_for_serialization(value)
    return copy.deepcopy(value)


class KubernetesComputeOperator(BaseComputeOperator):
    """Run ``count`` pods in ``namespace`` for a tenant.

    Give either ``image`` (with ``cmds``, ``arguments``, ``env_vars``, ``container_resources``)
    or a full ``pod_template``; labels, annotations and ``service_account_name`` apply to both.

    :param namespace: where the pods run; templated.
    :param image: the container image; templated.
    :param cmds: the container's entrypoint; templated.
    :param arguments: the container's arguments; templated.
    :param env_vars: ``{"NAME": "value"}`` or a list of env var objects; values are treated as
        secrets in logs.
    :param container_resources: ``{"requests": {...}, "limits": {...}}`` (or a
        ``V1ResourceRequirements``).
    :param pod_template: a full pod manifest (dict in the API's JSON form, or ``V1Pod``).
    :param labels: extra pod labels; templated.
    :param annotations: extra pod annotations; templated.
    :param service_account_name: the pods' service account.
    :param kubernetes_conn_id: the Kubernetes provider's connection (``kubernetes_default``).

    Container output (``get_logs``, ``container_logs``: the pod's first container by default)
    is read through the API server's ``pods/{name}/log``; a failed pod that printed nothing
    gives its last events instead (``docs/howto/container-logs.md``).

    ``wait_for="running"`` means every pod is Ready (or exited 0). A pod stuck pending
    (unschedulable, image pull back-off, config error) fails the operation once it has been stuck
    for ``pending_grace_period`` (default 2 minutes, KubernetesPodOperator's startup timeout), or is
    still stuck at the deadline, with its own error, and is deleted. Every other parameter is
    ``BaseComputeOperator``'s.
    """

    provider = "kubernetes"
    provider_argument_types: ClassVar[Mapping[str, Validator]] = {
        "namespace": typed(Annotated[str, Field(pattern=_DNS_LABEL)]),
        "image": typed(Annotated[str, Field(min_length=1, max_length=4096)] | None),
        "cmds": typed(list[str] | None),
        "arguments": typed(list[str] | None),
        "env_vars": _env_vars,
        "container_resources": lambda v: None if v is None else typed(dict[str, Any])(_as_json(v)),
        "pod_template": _pod_template,
        "labels": _string_map,
        "annotations": _string_map,
        "service_account_name": typed(Annotated[str, Field(pattern=_DNS_SUBDOMAIN)] | None),
        "kubernetes_conn_id": typed(Annotated[str, Field(min_length=1, max_length=250)]),
    }

    operator_extra_links = (KubernetesPodLink(),)
    template_fields: Sequence[str] = (
        *BaseComputeOperator.template_fields,
        "namespace",
        "image",
        "cmds",
        "arguments",
        "env_vars",
        "labels",
        "annotations",
    )

    def __init__(
        self,
        *,
        namespace: str,
        image: str | None = None,
        cmds: list[str] | None = None,
        arguments: list[str] | None = None,
        env_vars: Mapping[str, str] | list[Any] | None = None,
        container_resources: Any = None,
        pod_template: Any = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        service_account_name: str | None = None,
        kubernetes_conn_id: str = "kubernetes_default",
        pending_grace_period: timedelta = DEFAULT_PENDING_GRACE_PERIOD,
        **kwargs: Any,
    ) -> None:
        self.namespace = namespace
        self.image = image
        self.cmds = cmds
        self.arguments = arguments
        self.env_vars = env_vars
        self.container_resources = container_resources
        self.pod_template = pod_template
        self.labels = labels
        self.annotations = annotations
        self.service_account_name = service_account_name
        self.kubernetes_conn_id = kubernetes_conn_id
        super().__init__(pending_grace_period=pending_grace_period, **kwargs)

    def provider_arguments(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "image": self.image,
            "cmds": self.cmds,
            "arguments": self.arguments,
            "env_vars": self.env_vars,
            "container_resources": self.container_resources,
            "pod_template": self.pod_template,
            "labels": self.labels,
            "annotations": self.annotations,
            "service_account_name": self.service_account_name,
            "kubernetes_conn_id": self.kubernetes_conn_id,
        }

    def _validated(self, *, skip_templates: bool) -> dict[str, Any]:
        args = super()._validated(skip_templates=skip_templates)
        if args.get("pod_template") is None and args.get("image") is None:
            raise ComputeConfigError("give an image, or a pod_template", argument="image")
        return args

    def make_backend(self) -> ComputeBackend:
        from airflow_compute_provider.hooks.kubernetes import KubernetesComputeHook

        return KubernetesComputeHook(kubernetes_conn_id=self.kubernetes_conn_id, namespace=self.namespace)

    def launch_request(self) -> dict[str, Any]:
        args = self._validated(skip_templates=False)
        pod: dict[str, Any] = args["pod_template"] or {"spec": {"containers": [{"name": _CONTAINER_NAME}]}}
        metadata = pod.setdefault("metadata", {})
        metadata["labels"] = {**(metadata.get("labels") or {}), **(args["labels"] or {})}
        metadata["annotations"] = {**(metadata.get("annotations") or {}), **(args["annotations"] or {})}
        spec = pod["spec"]
        if args["service_account_name"]:
            spec["serviceAccountName"] = args["service_account_name"]
        container = spec["containers"][0]
        container.setdefault("name", _CONTAINER_NAME)
        if args["image"]:
            container["image"] = args["image"]
        if args["cmds"] is not None:
            container["command"] = list(args["cmds"])
        if args["arguments"] is not None:
            container["args"] = list(args["arguments"])
        if args["env_vars"]:
            container["env"] = [*(container.get("env") or []), *args["env_vars"]]
        if args["container_resources"]:
            container["resources"] = args["container_resources"]
        return pod

    def make_log_reader(self) -> ContainerLogReader:
        from airflow_compute_provider.hooks.kubernetes import KubernetesComputeHook
        from airflow_compute_provider.hooks.kubernetes_logs import KubernetesLogReader

        hook = KubernetesComputeHook(kubernetes_conn_id=self.kubernetes_conn_id, namespace=self.namespace)
        return KubernetesLogReader(hook)

    def _conn_id(self) -> str | None:
        return self.kubernetes_conn_id
