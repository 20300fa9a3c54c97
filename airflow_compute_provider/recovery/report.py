"""What a maintenance run did: one ``Item`` per thing it looked at, and the summary counts.

    Item              one operation, ledger row or tenant, and what became of it (``Action``)
    RecoveryReport    every item, plus the tenants that need a human; ``to_json()`` is the
                      operator's XCom value, ``cleanup_error()`` the CLEANUP_FAILED it raises

The summary counts the issue asks for: operations reconciled (an eventual outcome recorded),
resources cleaned, resources still pending cleanup, tenants needing investigation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.errors.model import CleanupReport, RootCause

SOURCE = "airflow-compute-provider.recovery"


class Action(enum.StrEnum):
    # operations
    OUTCOME_RECORDED = "outcome_recorded"
    STILL_RUNNING = "still_running"
    EXECUTION_ACTIVE = "execution_active"
    # ledger rows
    OBSERVED = "observed"
    #: a launch whose fate the ledger did not know (an intent, a refusal), found on the provider
    FOUND = "found"
    #: the same, looked up and not there: it never started
    NOT_LAUNCHED = "not_launched"
    CLEANED = "cleaned"
    STOPPED = "stopped"
    REFUSED = "refused"
    CLEANUP_FAILED = "cleanup_failed"
    UNOBSERVABLE = "unobservable"
    # tenants
    TENANT_READY = "tenant_ready"
    TENANT_RELEASED = "tenant_released"
    TENANT_FLAGGED = "tenant_flagged"
    #: moved to needs_investigation by this run (the error that ended its try's story needs a human)
    TENANT_HELD = "tenant_held"
    TENANT_UNCHANGED = "tenant_unchanged"


#: rows that end a run still ``pending_cleanup`` after this run tried them
_STILL_PENDING = frozenset({Action.REFUSED, Action.CLEANUP_FAILED, Action.UNOBSERVABLE})


@dataclass(frozen=True)
class Item:
    kind: str  # "operation" | "resource" | "tenant"
    action: Action
    tenant_id: str
    execution_id: str | None = None
    attempt: int | None = None
    unit_index: int | None = None
    generation: int | None = None
    resource_id: str | None = None
    #: what the item ended as: an eventual status, a ledger status, a tenant status
    result: str | None = None
    detail: str = ""
    error: ComputeError | None = None
    #: whether this run wrote it (False in a dry run: it only says what would happen)
    applied: bool = True

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "action": self.action.value,
            "tenant_id": self.tenant_id,
            "applied": self.applied,
        }
        optional = {
            "execution_id": self.execution_id,
            "attempt": self.attempt,
            "unit_index": self.unit_index,
            "generation": self.generation,
            "resource_id": self.resource_id,
            "result": self.result,
        }
        out.update({k: value for k, value in optional.items() if value is not None})
        if self.detail:
            out["detail"] = self.detail
        if self.error is not None:
            out["error_code"] = self.error.code.value
            out["error"] = self.error.message
        return out


@dataclass
class RecoveryReport:
    scope: dict[str, Any]
    items: list[Item] = field(default_factory=list)
    #: tenant id -> why a human should look (held for investigation, or flagged by this run)
    needs_investigation: dict[str, str] = field(default_factory=dict)
    #: ``pending_cleanup`` rows in scope when the run ended (tried or not)
    pending_after: int = 0

    def add(self, item: Item) -> Item:
        self.items.append(item)
        return item

    def flag(self, tenant_id: str, why: str) -> None:
        self.needs_investigation.setdefault(tenant_id, why)

    def count(self, *actions: Action) -> int:
        return sum(1 for item in self.items if item.action in actions)

    @property
    def still_pending(self) -> list[Item]:
        """Rows this run tried to clean up (or could not even look at) that stay pending."""
        return [item for item in self.items if item.kind == "resource" and item.action in _STILL_PENDING]

    def summary(self) -> dict[str, Any]:
        return {
            "operations_reconciled": self.count(Action.OUTCOME_RECORDED),
            "operations_unsettled": self.count(Action.STILL_RUNNING, Action.EXECUTION_ACTIVE),
            "resources_cleaned": self.count(Action.CLEANED, Action.STOPPED),
            "resources_pending": self.pending_after,
            "tenants_released": self.count(Action.TENANT_READY, Action.TENANT_RELEASED),
            "tenants_needing_investigation": len(self.needs_investigation),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.scope,
            "summary": self.summary(),
            "tenants_needing_investigation": dict(sorted(self.needs_investigation.items())),
            "items": [item.to_json() for item in self.items],
        }

    def cleanup_error(self) -> ComputeError | None:
        """CLEANUP_FAILED naming every resource that stays pending, or ``None``.

        A dry run never fails: it changed nothing, so nothing it reports is its failure.
        """
        if self.scope.get("dry_run"):
            return None
        stuck = self.still_pending
        if not stuck:
            return None
        first = stuck[0]
        cause = first.error.root_cause if first.error is not None else RootCause()
        return ComputeError(
            code=ErrorCode.CLEANUP_FAILED,
            message=(
                f"{len(stuck)} resource(s) stay pending_cleanup after this maintenance run; "
                f"first: {first.resource_id or 'unit ' + str(first.unit_index)} of tenant "
                f"{first.tenant_id!r}: {first.detail}"
            ),
            root_cause=cause.model_copy(update={"provider": cause.provider or SOURCE}),
            tenant_id=first.tenant_id if len({i.tenant_id for i in stuck}) == 1 else None,
            operation="cleanup",
            cleanup=CleanupReport(
                action="marked_for_cleanup", resources=sorted({i.resource_id for i in stuck if i.resource_id})
            ),
        )
