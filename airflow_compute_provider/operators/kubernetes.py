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
from typing import Annotated, Any

from pydantic import Field, PlainValidator

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.hooks.base import ComputeBackend
from airflow_compute_provider.hooks.container_logs import ContainerLogReader
from airflow_compute_provider.lifecycle.arguments import ComputeArguments, argument
from airflow_compute_provider.links import KubernetesPodLink
from airflow_compute_provider.operators.base import BaseComputeOperator

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


def _resources(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    resources = _as_json(value)
    if not isinstance(resources, dict):
        raise ValueError("must be a mapping of requests and limits, or a V1ResourceRequirements")
    return resources


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


_PodName = Annotated[str, Field(pattern=_DNS_LABEL)]
_Image = Annotated[str, Field(min_length=1, max_length=4096)]
_ConnId = Annotated[str, Field(min_length=1, max_length=250)]


class KubernetesArguments(ComputeArguments):
    """The arguments of ``KubernetesComputeOperator``: ``ComputeArguments``' and these."""

    namespace: _PodName = argument(meaning="where the pods run")
    image: _Image | None = argument(None, "the container image; give it or a `pod_template`")
    cmds: list[str] | None = argument(None, "the container's `command`")
    arguments: list[str] | None = argument(None, "the container's `args`")
    env_vars: Annotated[list[dict[str, Any]] | None, PlainValidator(_env_vars)] = argument(
        None,
        '`{"NAME": "value"}` or a list of env var objects (`valueFrom` too); values are treated as secrets',
    )
    container_resources: Annotated[dict[str, Any] | None, PlainValidator(_resources)] = argument(
        None, '`{"requests": {...}, "limits": {...}}` or a `V1ResourceRequirements`'
    )
    pod_template: Annotated[dict[str, Any] | None, PlainValidator(_pod_template)] = argument(
        None,
        "a whole pod manifest (a dict in the API's JSON form, or a `V1Pod`); the fields above apply "
        "to its first container",
    )
    labels: Annotated[dict[str, str] | None, PlainValidator(_string_map)] = argument(
        None, "extra pod labels; the operator adds its own"
    )
    annotations: Annotated[dict[str, str] | None, PlainValidator(_string_map)] = argument(
        None, "extra pod annotations"
    )
    service_account_name: Annotated[str, Field(pattern=_DNS_SUBDOMAIN)] | None = argument(
        None, "the pods' service account"
    )
    kubernetes_conn_id: _ConnId = argument(
        "kubernetes_default",
        "the Kubernetes provider's connection (in-cluster, kubeconfig file or content, context)",
    )

    @classmethod
    def check_together(cls, values: Mapping[str, Any]) -> None:
        super().check_together(values)
        if values.get("pod_template") is None and values.get("image") is None:
            raise ComputeConfigError("give an image, or a pod_template", argument="image")


class KubernetesComputeOperator(BaseComputeOperator):
    """Run ``count`` pods in ``namespace`` for a tenant.

    Give either ``image`` (with ``cmds``, ``arguments``, ``env_vars``, ``container_resources``)
    or a full ``pod_template``; labels, annotations and ``service_account_name`` apply to both.

    Container output (``get_logs``, ``container_logs``: the pod's first container by default)
    is read through the API server's ``pods/{name}/log``; a failed pod that printed nothing
    gives its last events instead (``docs/howto/container-logs.md``).

    ``wait_for="running"`` means every pod is Ready (or exited 0). A pod stuck pending
    (unschedulable, image pull back-off, config error) fails the operation once it has been stuck
    for ``pending_grace_period`` (default 2 minutes, KubernetesPodOperator's startup timeout), or is
    still stuck at the deadline, with its own error, and is deleted. The parameters are
    ``KubernetesArguments``': ``BaseComputeOperator``'s and the Kubernetes ones, listed below
    from the model.
    """

    provider = "kubernetes"
    arguments_model = KubernetesArguments

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
        image: str | None = KubernetesArguments.DEFAULTS.image,
        cmds: list[str] | None = KubernetesArguments.DEFAULTS.cmds,
        arguments: list[str] | None = KubernetesArguments.DEFAULTS.arguments,
        env_vars: Mapping[str, str] | list[Any] | None = KubernetesArguments.DEFAULTS.env_vars,
        container_resources: Any = KubernetesArguments.DEFAULTS.container_resources,
        pod_template: Any = KubernetesArguments.DEFAULTS.pod_template,
        labels: Mapping[str, str] | None = KubernetesArguments.DEFAULTS.labels,
        annotations: Mapping[str, str] | None = KubernetesArguments.DEFAULTS.annotations,
        service_account_name: str | None = KubernetesArguments.DEFAULTS.service_account_name,
        kubernetes_conn_id: str = KubernetesArguments.DEFAULTS.kubernetes_conn_id,
        **kwargs: Any,
    ) -> None:
        self._keep_arguments(dict(locals()))
        super().__init__(**kwargs)

    def make_backend(self) -> ComputeBackend:
        from airflow_compute_provider.hooks.kubernetes import KubernetesComputeHook

        return KubernetesComputeHook(kubernetes_conn_id=self.kubernetes_conn_id, namespace=self.namespace)

    def launch_request(self, args: ComputeArguments) -> dict[str, Any]:
        assert isinstance(args, KubernetesArguments)
        template = args.pod_template or {"spec": {"containers": [{"name": _CONTAINER_NAME}]}}
        pod: dict[str, Any] = copy.deepcopy(template)
        metadata = pod.setdefault("metadata", {})
        metadata["labels"] = {**(metadata.get("labels") or {}), **(args.labels or {})}
        metadata["annotations"] = {**(metadata.get("annotations") or {}), **(args.annotations or {})}
        spec = pod["spec"]
        if args.service_account_name:
            spec["serviceAccountName"] = args.service_account_name
        container = spec["containers"][0]
        container.setdefault("name", _CONTAINER_NAME)
        if args.image:
            container["image"] = args.image
        if args.cmds is not None:
            container["command"] = list(args.cmds)
        if args.arguments is not None:
            container["args"] = list(args.arguments)
        if args.env_vars:
            container["env"] = [*(container.get("env") or []), *args.env_vars]
        if args.container_resources:
            container["resources"] = args.container_resources
        return pod

    def make_log_reader(self) -> ContainerLogReader:
        from airflow_compute_provider.hooks.kubernetes import KubernetesComputeHook
        from airflow_compute_provider.hooks.kubernetes_logs import KubernetesLogReader

        hook = KubernetesComputeHook(kubernetes_conn_id=self.kubernetes_conn_id, namespace=self.namespace)
        return KubernetesLogReader(hook)

    def _conn_id(self) -> str | None:
        conn_id: str | None = self.kubernetes_conn_id
        return conn_id
