"""Operator extra links: from a compute task in the Airflow UI to what it runs on the provider.

    EcsTaskConsoleLink   "ECS task": the AWS console page of the task (one unit), or of the
                         cluster's task list (several units)
    KubernetesPodLink    "Kubernetes pod": the pod (namespace / name) of the first unit, through
                         ``[compute_provider] kubernetes_pod_url_template`` (``{namespace}`` and
                         ``{name}`` placeholders: a Kubernetes Dashboard, Headlamp...); without
                         it, the Compute Health page's look-up of that pod in the ledger

How Airflow 3 uses them: when a try ends or defers, the worker calls ``get_link`` with the
operator that ran (its templated fields rendered) and keeps the URL as an XCom, which the UI
reads. The units come from that operator (``compute_units``: what the try launched, adopted
or watches) or, for a try that failed before it watched anything, from the XComs it pushed
(``return_value`` and ``compute_error`` list every unit with its resource id).

The URL builders (``ecs_console_url``, ``kubernetes_pod_url``) are pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

CONFIG_SECTION = "compute_provider"
POD_URL_OPTION = "kubernetes_pod_url_template"
#: the Compute Health page (plugins/), relative to Airflow's base URL
HEALTH_PAGE = "compute-health/"

#: AWS partition -> the console's host for a region
_CONSOLE_HOSTS = {
    "aws": "{region}.console.aws.amazon.com",
    "aws-cn": "{region}.console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}


@dataclass(frozen=True)
class LinkUnit:
    """What a link needs of a unit: its index and the provider's id for it."""

    index: int
    resource_id: str


class _ComputeLink(BaseOperatorLink):
    name: ClassVar[str] = ""

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return self.url_for(operator, units_of(operator, ti_key))

    def url_for(self, operator: Any, units: Sequence[LinkUnit]) -> str:
        raise NotImplementedError


class EcsTaskConsoleLink(_ComputeLink):
    name: ClassVar[str] = "ECS task"

    def url_for(self, operator: Any, units: Sequence[LinkUnit]) -> str:
        if not units:
            return ""
        return ecs_console_url(
            [u.resource_id for u in units],
            cluster=str(getattr(operator, "cluster", "") or ""),
            region=getattr(operator, "region_name", None),
        )


class KubernetesPodLink(_ComputeLink):
    name: ClassVar[str] = "Kubernetes pod"

    def url_for(self, operator: Any, units: Sequence[LinkUnit]) -> str:
        if not units:
            return ""
        return kubernetes_pod_url(
            str(getattr(operator, "namespace", "") or ""),
            units[0].resource_id,
            template=_config(POD_URL_OPTION),
            airflow_base_url=_config("base_url", section="api"),
        )


# -- the URLs ------------------------------------------------------------------------------------


def ecs_console_url(task_arns: Sequence[str], *, cluster: str, region: str | None = None) -> str:
    """The console page of the task (one ARN) or of the cluster's tasks (several).

    Region, partition and cluster come from the task ARN
    (``arn:<partition>:ecs:<region>:<account>:task/<cluster>/<id>``); the ``cluster`` argument
    (a name or an ARN) covers the old ARN format without the cluster. ``""`` when neither says
    which region or cluster it is.
    """
    if not task_arns:
        return ""
    arn = _parse_arn(task_arns[0])
    partition = arn.get("partition", "aws")
    region = arn.get("region") or region
    cluster_name = arn.get("cluster") or cluster.rsplit("/", 1)[-1]
    host = _CONSOLE_HOSTS.get(partition)
    if not (region and cluster_name and host):
        return ""
    base = f"https://{host.format(region=region)}/ecs/v2/clusters/{quote(cluster_name, safe='')}/tasks"
    if len(task_arns) == 1 and arn.get("task"):
        return f"{base}/{quote(arn['task'], safe='')}/configuration?region={quote(region)}"
    return f"{base}?region={quote(region)}"


def ecs_unit_console_url(resource_id: str, locator: Mapping[str, str]) -> str | None:
    """The console page of one ECS task from its ledger row (the registry's ``console_url``)."""
    url = ecs_console_url([resource_id], cluster=locator.get("cluster", ""), region=locator.get("region"))
    return url or None


def kubernetes_pod_url(
    namespace: str, name: str, *, template: str | None = None, airflow_base_url: str | None = None
) -> str:
    """The pod's page from ``template``; without one, the Compute Health page's look-up of it."""
    if not (namespace and name):
        return ""
    if template:
        return template.format(namespace=quote(namespace, safe=""), name=quote(name, safe=""))
    # Relative to the Airflow UI's origin, under its base path when it has one.
    base_path = urlsplit(airflow_base_url or "").path.rstrip("/")
    return f"{base_path}/{HEALTH_PAGE}?namespace={quote(namespace, safe='')}&resource={quote(name, safe='')}"


def _parse_arn(value: str) -> dict[str, str]:
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        # a bare task id
        return {"task": value} if value and "/" not in value else {}
    found = {"partition": parts[1], "region": parts[3]}
    resource = parts[5].split("/")
    if resource[0] == "task":
        if len(resource) == 3:
            found["cluster"], found["task"] = resource[1], resource[2]
        elif len(resource) == 2:
            found["task"] = resource[1]
    return found


# -- the units -----------------------------------------------------------------------------------


def units_of(operator: Any, ti_key: Any) -> list[LinkUnit]:
    """The units to link to: the operator's own, else those its XComs list."""
    own = [LinkUnit(u.index, u.resource_id) for u in getattr(operator, "compute_units", ()) if u.resource_id]
    if own:
        return _newest_first_index(own)
    from airflow.sdk.execution_time.xcom import XCom

    from airflow_compute_provider.lifecycle.xcom import XCOM_ERROR_KEY

    return units_from_xcoms(
        XCom.get_value(ti_key=ti_key, key="return_value"),
        XCom.get_value(ti_key=ti_key, key=XCOM_ERROR_KEY),
    )


def units_from_xcoms(result: Any, error: Any) -> list[LinkUnit]:
    """Units from a success result (``units``) or a ``compute_error`` (its units report)."""
    found: list[LinkUnit] = []
    if isinstance(result, Mapping):
        found += _units(result.get("units"))
    if isinstance(error, Mapping) and isinstance(error.get("units"), Mapping):
        report = error["units"]
        for bucket in ("running", "pending", "succeeded", "failed"):
            found += _units(report.get(bucket))
    return _newest_first_index(found)


def _units(items: Any) -> list[LinkUnit]:
    if not isinstance(items, Iterable) or isinstance(items, str | bytes | Mapping):
        return []
    return [
        LinkUnit(int(item.get("index", 0)), str(item["resource_id"]))
        for item in items
        if isinstance(item, Mapping) and item.get("resource_id")
    ]


def _newest_first_index(units: Iterable[LinkUnit]) -> list[LinkUnit]:
    """One unit per index (the last one listed), by index."""
    by_index = {u.index: u for u in units}
    return [by_index[i] for i in sorted(by_index)]


def _config(option: str, *, section: str = CONFIG_SECTION) -> str | None:
    from airflow.sdk.configuration import conf

    value = conf.get(section, option, fallback=None)
    return str(value) if value else None


__all__ = [
    "EcsTaskConsoleLink",
    "KubernetesPodLink",
    "LinkUnit",
    "ecs_console_url",
    "ecs_unit_console_url",
    "kubernetes_pod_url",
    "units_from_xcoms",
    "units_of",
]
