"""How a unit of work becomes a pod, and how a pod is recognised as one of ours again.

No I/O here: ``kubernetes.py`` sends what these functions build and reads back what they
parse. A pod of ours carries its identity three times over:

    name         ``<exec_key>-<index>-g<generation>``  unique per unit and generation, so a
                 repeated create is a 409 for our own name (adoption), never a duplicate
    labels       exec key, tenant id, unit index, generation  for label-selector lists
                 (values are cut to what a label value may hold)
    annotations  the full tenant id and execution id  the proof that a pod is really ours:
                 a label can collide or be copied, the annotations must match exactly

Pods travel as plain dicts in the API's JSON form (camelCase, as ``kubectl get -o json``
prints them), the same form for the sync and the async client.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.hooks.base import ExecutionRef, Unit, UnitLaunch

#: Every label and annotation key we set lives under this prefix.
LABEL_PREFIX = "compute.airflow-provider.io"
LABEL_EXEC_KEY = f"{LABEL_PREFIX}/exec-key"
LABEL_TENANT_ID = f"{LABEL_PREFIX}/tenant-id"
LABEL_UNIT_INDEX = f"{LABEL_PREFIX}/unit-index"
LABEL_GENERATION = f"{LABEL_PREFIX}/generation"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "airflow-compute-provider"

ANNOTATION_TENANT_ID = f"{LABEL_PREFIX}/tenant-id"
ANNOTATION_EXECUTION_ID = f"{LABEL_PREFIX}/execution-id"
ANNOTATION_TOKEN = f"{LABEL_PREFIX}/idempotency-token"
ANNOTATION_OPERATION = f"{LABEL_PREFIX}/operation"

_LABEL_VALUE_MAX = 63
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_POD_NAME = re.compile(r"^(?P<key>cx[0-9a-f]{32})-(?P<index>\d+)-g(?P<generation>\d+)$")
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
# Server-owned metadata a template copied from a live pod may still carry; sending it back
# makes the create fail or aim at the template's own pod.
_SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "selfLink",
    "managedFields",
    "generateName",
)


def pod_name(key: str, index: int, generation: int) -> str:
    """The pod name of one unit and generation (DESIGN.md): the idempotency token of a create."""
    return f"{key}-{index}-g{generation}"


def parse_pod_name(name: str) -> tuple[str, int, int] | None:
    """``(exec_key, index, generation)`` of a pod name we gave, or ``None`` for any other name."""
    match = _POD_NAME.match(name)
    if match is None:
        return None
    return match["key"], int(match["index"]), int(match["generation"])


def label_value(text: str) -> str:
    """``text`` as a valid label value: unchanged when it already is one, otherwise cleaned,
    shortened and suffixed with a hash of the original so distinct ids stay distinct."""
    if len(text) <= _LABEL_VALUE_MAX and _LABEL_VALUE.match(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")
    cleaned = cleaned[: _LABEL_VALUE_MAX - len(digest) - 1].rstrip("-_.")
    return f"{cleaned}-{digest}" if cleaned else digest


def is_dns_label(text: str) -> bool:
    """Whether ``text`` may name a namespace."""
    return bool(_DNS_LABEL.match(text))


def exec_key_selector(keys: Iterable[str]) -> str:
    """A label selector for the pods of one or several exec keys."""
    unique = sorted(set(keys))
    if not unique:
        raise ValueError("a selector needs at least one exec key")
    if len(unique) == 1:
        return f"{LABEL_EXEC_KEY}={unique[0]}"
    return f"{LABEL_EXEC_KEY} in ({','.join(unique)})"


def unit_pod(
    template: Mapping[str, Any],
    execution: ExecutionRef,
    unit: UnitLaunch,
    namespace: str,
    operation: str = "",
) -> dict[str, Any]:
    """The manifest of one unit's pod: the template with our name, labels and annotations.

    Our label and annotation keys overwrite the template's; every other key of the template
    is kept. ``restartPolicy`` is always ``Never``: a unit runs once, and its generation, not
    the kubelet, decides about a rerun.
    """
    manifest = copy.deepcopy(dict(template))
    kind = manifest.get("kind", "Pod")
    if kind != "Pod":
        raise ComputeConfigError(
            "the request must be a Pod manifest (kind 'Pod')",
            argument="request",
        )
    manifest["apiVersion"] = manifest.get("apiVersion") or "v1"
    manifest["kind"] = "Pod"
    manifest.pop("status", None)
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        raise ComputeConfigError("the pod manifest has no spec", argument="request")
    spec["restartPolicy"] = "Never"

    metadata = manifest.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ComputeConfigError("the pod manifest's metadata must be a mapping", argument="request")
    template_namespace = metadata.get("namespace")
    if template_namespace and template_namespace != namespace:
        raise ComputeConfigError(
            f"the pod template names another namespace than the one the hook launches in ({namespace!r})",
            argument="namespace",
        )
    for field in _SERVER_METADATA:
        metadata.pop(field, None)
    key = execution.key
    metadata["name"] = pod_name(key, unit.index, unit.generation)
    metadata["namespace"] = namespace
    metadata["labels"] = {
        **(metadata.get("labels") or {}),
        LABEL_EXEC_KEY: key,
        LABEL_TENANT_ID: label_value(execution.tenant_id),
        LABEL_UNIT_INDEX: str(unit.index),
        LABEL_GENERATION: str(unit.generation),
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    annotations = {
        **(metadata.get("annotations") or {}),
        ANNOTATION_TENANT_ID: execution.tenant_id,
        ANNOTATION_EXECUTION_ID: execution.execution_id,
        ANNOTATION_TOKEN: unit.token(execution),
    }
    if operation:
        annotations[ANNOTATION_OPERATION] = operation
    metadata["annotations"] = annotations
    manifest["metadata"] = metadata
    return manifest


def belongs_to(pod: Mapping[str, Any], execution: ExecutionRef) -> bool:
    """Whether ``pod`` was launched for ``execution``: exec-key label and both full ids match."""
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    return (
        labels.get(LABEL_EXEC_KEY) == execution.key
        and annotations.get(ANNOTATION_TENANT_ID) == execution.tenant_id
        and annotations.get(ANNOTATION_EXECUTION_ID) == execution.execution_id
    )


def unit_of(pod: Mapping[str, Any], namespace: str) -> Unit | None:
    """The ``Unit`` a pod of ours stands for, from its labels (``None`` if they are unreadable)."""
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    try:
        index = int(labels[LABEL_UNIT_INDEX])
        generation = int(labels[LABEL_GENERATION])
    except (KeyError, TypeError, ValueError):
        return None
    name = metadata.get("name")
    if not name or index < 0 or generation < 0:
        return None
    return Unit(index=index, generation=generation, resource_id=str(name), locator={"namespace": namespace})


def is_same_unit(pod: Mapping[str, Any], execution: ExecutionRef, unit: UnitLaunch) -> bool:
    """Whether an existing pod is this very unit and generation (a create we may adopt)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return (
        belongs_to(pod, execution)
        and labels.get(LABEL_UNIT_INDEX) == str(unit.index)
        and labels.get(LABEL_GENERATION) == str(unit.generation)
    )


def is_terminating(pod: Mapping[str, Any]) -> bool:
    """Whether the pod is being deleted (it still exists until its grace period ends)."""
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))
