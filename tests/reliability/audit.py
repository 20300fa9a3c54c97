"""What exists on the providers, held against the ledger: lost, duplicated and leaked units.

    ecs_inventory(ecs)          every ECS task of the test cluster that carries our tags, read
                                from moto directly (never through a fault proxy)
    kube_inventory(core, ns)    every pod we manage in those namespaces, read from the API server
    audit(units, ledger)        the three promises, checked unit by unit:

        duplicated  two provider units for one (execution, unit index, generation), or two
                    units of one (execution, unit index) that both ran to success or still run
        leaked      a provider unit the ledger has no row for (by exec key, index, generation
                    and resource id), or one still alive whose row says it is over
        lost        a row that says its unit launched, runs or is being stopped, whose unit the
                    provider does not have

Units are matched through the exec key (``hooks.base.exec_key``) of each row's tenant and
execution, the same derivation the hooks use, so an id that tags cannot hold as it is (ECS tag
values) still matches its row. ``tenants`` limits both sides to some tenants (tests with decoys
audit each tenant's view too).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_compute_provider.hooks import ecs_tags, kubernetes_pods
from airflow_compute_provider.hooks.base import exec_key
from airflow_compute_provider.state.models import LedgerEntry
from airflow_compute_provider.state.status import ResourceStatus

_LEDGER_ALIVE = frozenset({ResourceStatus.LAUNCHED, ResourceStatus.RUNNING, ResourceStatus.STOPPING})
_LEDGER_OVER = frozenset(
    {ResourceStatus.SUCCEEDED, ResourceStatus.FAILED, ResourceStatus.STOPPED, ResourceStatus.CLEANED}
)


@dataclass(frozen=True)
class ProviderUnit:
    provider: str
    tenant_id: str
    exec_key: str
    index: int
    generation: int
    resource_id: str
    #: still running, or about to (not stopped, not being deleted)
    alive: bool
    #: ended with exit code 0
    succeeded: bool

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.exec_key, self.index, self.generation)


@dataclass
class Audit:
    units: int = 0
    rows: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.leaked)

    def problems(self) -> str:
        lines = [f"lost: {x}" for x in self.lost] + [f"duplicated: {x}" for x in self.duplicated]
        return "\n".join(lines + [f"leaked: {x}" for x in self.leaked])

    def record(self, tally: Any) -> None:
        tally.add(lost=len(self.lost), duplicated=len(self.duplicated), leaked=len(self.leaked))


def ecs_inventory(ecs: Any, cluster: str) -> list[ProviderUnit]:
    arns: list[str] = []
    for desired in ("RUNNING", "STOPPED"):
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"cluster": cluster, "desiredStatus": desired, "maxResults": 100}
            if token:
                kwargs["nextToken"] = token
            page = ecs.list_tasks(**kwargs)
            arns += [a for a in page["taskArns"] if a not in arns]
            token = page.get("nextToken")
            if not token:
                break
    units: list[ProviderUnit] = []
    for start in range(0, len(arns), 100):
        described = ecs.describe_tasks(cluster=cluster, tasks=arns[start : start + 100], include=["TAGS"])
        for task in described["tasks"]:
            tags = ecs_tags.tags_of(task)
            if ecs_tags.EXEC_KEY_TAG not in tags:
                continue
            stopped = task.get("lastStatus") == "STOPPED"
            exit_codes = [c.get("exitCode") for c in task.get("containers") or []]
            units.append(
                ProviderUnit(
                    provider="ecs",
                    tenant_id=tags.get(ecs_tags.TENANT_ID_TAG, ""),
                    exec_key=tags[ecs_tags.EXEC_KEY_TAG],
                    index=int(tags[ecs_tags.UNIT_INDEX_TAG]),
                    generation=int(tags[ecs_tags.GENERATION_TAG]),
                    resource_id=task["taskArn"],
                    alive=task.get("desiredStatus") != "STOPPED" and not stopped,
                    succeeded=stopped and bool(exit_codes) and all(c == 0 for c in exit_codes),
                )
            )
    return units


def kube_inventory(core: Any, namespaces: Iterable[str]) -> list[ProviderUnit]:
    selector = f"{kubernetes_pods.LABEL_MANAGED_BY}={kubernetes_pods.MANAGED_BY}"
    units: list[ProviderUnit] = []
    for namespace in namespaces:
        for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
            labels = pod.metadata.labels or {}
            annotations = pod.metadata.annotations or {}
            phase = pod.status.phase if pod.status else None
            units.append(
                ProviderUnit(
                    provider="kubernetes",
                    tenant_id=annotations.get(kubernetes_pods.ANNOTATION_TENANT_ID, ""),
                    exec_key=labels.get(kubernetes_pods.LABEL_EXEC_KEY, ""),
                    index=int(labels[kubernetes_pods.LABEL_UNIT_INDEX]),
                    generation=int(labels[kubernetes_pods.LABEL_GENERATION]),
                    resource_id=pod.metadata.name,
                    alive=pod.metadata.deletion_timestamp is None and phase in ("Pending", "Running"),
                    succeeded=phase == "Succeeded",
                )
            )
    return units


def audit(
    units: Sequence[ProviderUnit],
    ledger: Sequence[LedgerEntry],
    *,
    provider: str,
    tenants: Iterable[str] | None = None,
) -> Audit:
    wanted = set(tenants) if tenants is not None else None
    units = [u for u in units if u.provider == provider and (wanted is None or u.tenant_id in wanted)]
    rows = [e for e in ledger if e.provider == provider and (wanted is None or e.tenant_id in wanted)]
    result = Audit(units=len(units), rows=len(rows))
    by_key: dict[tuple[str, int, int], LedgerEntry] = {}
    for row in rows:
        by_key[(exec_key(row.tenant_id, row.execution_id), row.unit_index, row.generation)] = row

    same_generation: dict[tuple[str, int, int], list[ProviderUnit]] = defaultdict(list)
    good_per_index: dict[tuple[str, int], list[ProviderUnit]] = defaultdict(list)
    for unit in units:
        same_generation[unit.key].append(unit)
        if unit.alive or unit.succeeded:
            good_per_index[(unit.exec_key, unit.index)].append(unit)
    for key, found in same_generation.items():
        if len(found) > 1:
            result.duplicated.append(f"{len(found)} units for {key}: {[u.resource_id for u in found]}")
    for key, found in good_per_index.items():
        if len(found) > 1:
            result.duplicated.append(
                f"{len(found)} live or succeeded generations of unit {key}: {[u.resource_id for u in found]}"
            )

    for unit in units:
        row = by_key.get(unit.key)
        if row is None or row.resource_id != unit.resource_id:
            result.leaked.append(f"{unit.resource_id} (unit {unit.key}) has no ledger row")
        elif unit.alive and row.status in _LEDGER_OVER:
            result.leaked.append(f"{unit.resource_id} still runs, its ledger row says {row.status.value}")

    present = {u.resource_id for u in units}
    for row in rows:
        if row.status in _LEDGER_ALIVE and row.resource_id and row.resource_id not in present:
            result.lost.append(
                f"ledger row {row.tenant_id}/{row.execution_id} unit {row.unit_index} g{row.generation} "
                f"({row.status.value}, {row.resource_id}) has no unit on the provider"
            )
    return result
