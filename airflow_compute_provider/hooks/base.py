"""The provider-agnostic backend interface that the operation lifecycle talks to.

The lifecycle (``operators/base.py``) launches *units* (one ECS task, one pod) for an
*execution* and follows them to the end; it never sees an ARN or a namespace. Each provider
hook implements ``ComputeBackend`` with these types:

    ExecutionRef   who the work is for: tenant id, execution id, and the derived exec key
    UnitLaunch     one unit to start: index, generation, idempotency token
    LaunchPlan     the execution, the units to start, and the provider's request template
    Unit           a unit that exists on the provider: its resource id and locator
    LaunchResult   what a launch started, and which units it could not start (with why)
    UnitStatus     where a unit is now: phase, exit code, health, and its ComputeError if failed

A backend is rebuilt from ``backend_config()`` inside the triggerer (``registry.py`` knows which
class each provider's is), so everything a status call needs (connection id, region and cluster,
or namespace) lives in that plain dict.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from airflow_compute_provider.errors import ComputeError

#: Prefix of every provider-side name we create, so a name says whose it is.
EXEC_KEY_PREFIX = "cx"
#: ``root_cause.reason`` of a launch refused because something not ours holds the unit's
#: idempotency token (a pod of another owner under our pod name). The token is not free: a
#: re-send is refused the same way, and so is a stalled sender's late request.
TOKEN_HELD = "token_held"
_EXEC_KEY_HEX = 32


def exec_key(tenant_id: str, execution_id: str) -> str:
    """The short, provider-safe key of an execution (``cx`` + 32 hex digits).

    Provider names cannot hold execution ids as they are (run ids carry ``:`` and ``+``;
    label values and pod names stop at 63 characters, ECS ``startedBy`` at 36), so every
    provider-side identifier is derived from this key and the full ids travel in tags.
    The NUL separator keeps ("a", "bc") and ("ab", "c") apart.
    """
    digest = hashlib.sha256(f"{tenant_id}\x00{execution_id}".encode()).hexdigest()
    return EXEC_KEY_PREFIX + digest[:_EXEC_KEY_HEX]


def idempotency_token(key: str, index: int, generation: int) -> str:
    """The token of one launch request: the same unit and generation always get the same one."""
    return f"{key}-u{index}-g{generation}"


@dataclass(frozen=True)
class ExecutionRef:
    tenant_id: str
    execution_id: str

    @property
    def key(self) -> str:
        return exec_key(self.tenant_id, self.execution_id)


@dataclass(frozen=True)
class UnitLaunch:
    index: int
    generation: int

    def token(self, execution: ExecutionRef) -> str:
        return idempotency_token(execution.key, self.index, self.generation)


@dataclass(frozen=True)
class LaunchPlan:
    """What to launch. ``request`` is the provider's template (RunTask kwargs, a pod manifest);
    the backend adds the per-unit parts (tokens, tags or labels, names) itself."""

    execution: ExecutionRef
    units: Sequence[UnitLaunch]
    request: Mapping[str, Any]
    operation: str = ""


@dataclass(frozen=True)
class Unit:
    """A unit that exists on the provider side."""

    index: int
    generation: int
    resource_id: str
    locator: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "generation": self.generation,
            "resource_id": self.resource_id,
            "locator": dict(self.locator),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Unit:
        return cls(
            index=int(data["index"]),
            generation=int(data["generation"]),
            resource_id=str(data["resource_id"]),
            locator={str(k): str(v) for k, v in dict(data.get("locator") or {}).items()},
        )


@dataclass(frozen=True)
class LaunchResult:
    launched: Sequence[Unit] = ()
    refused: Sequence[tuple[UnitLaunch, ComputeError]] = ()


class UnitPhase(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: the provider no longer knows the unit (deleted, or aged out of its API)
    VANISHED = "vanished"

    @property
    def terminal(self) -> bool:
        return self in (UnitPhase.SUCCEEDED, UnitPhase.FAILED, UnitPhase.VANISHED)


@dataclass(frozen=True)
class UnitStatus:
    """A unit's state. ``healthy`` is ``None`` where no health check is defined; ``error`` is set
    for a failed unit and for one stuck pending (image pull back-off, unschedulable).
    ``running_since`` is the provider's own time of the unit's start (ECS ``startedAt``, the
    main container's ``startedAt``), kept after it stopped; ``None`` for a unit that never ran
    or when the provider does not say."""

    unit: Unit
    phase: UnitPhase
    exit_code: int | None = None
    healthy: bool | None = None
    error: ComputeError | None = None
    #: when the unit entered its current waiting state, for grace periods (ISO 8601, UTC)
    stuck_since: str | None = None
    #: when the provider says the unit started running (ISO 8601, UTC), for launch-to-running
    running_since: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit.to_dict(),
            "phase": self.phase.value,
            "exit_code": self.exit_code,
            "healthy": self.healthy,
            "error": self.error.to_json_dict() if self.error else None,
            "stuck_since": self.stuck_since,
            "running_since": self.running_since,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnitStatus:
        error = data.get("error")
        return cls(
            unit=Unit.from_dict(data["unit"]),
            phase=UnitPhase(data["phase"]),
            exit_code=data.get("exit_code"),
            healthy=data.get("healthy"),
            error=ComputeError.model_validate(error) if error else None,
            stuck_since=data.get("stuck_since"),
            # absent from the events of a trigger that ran an older version
            running_since=data.get("running_since"),
        )


@runtime_checkable
class ComputeBackend(Protocol):
    """What every provider hook offers the lifecycle. Every failure leaves a backend as
    ``ComputeOperationError``; per-unit failures are data (``refused``, ``UnitStatus.error``)."""

    provider: str
    #: whether a launch the provider refused leaves its idempotency token free for a later
    #: request to start a unit (Kubernetes: a refused create leaves the pod name free), or the
    #: provider answers that token with the same refusal (ECS: RunTask keeps a token's answer
    #: for 24 hours). Where it is free, the lifecycle re-sends a refused re-sent intent with its
    #: own token rather than a new generation (``lifecycle/reconcile.py``), unless the refusal
    #: was ``TOKEN_HELD``.
    refusal_frees_token: bool

    def backend_config(self) -> dict[str, Any]:
        """Plain, JSON-serializable kwargs that rebuild this backend (for the trigger)."""
        ...

    def locator(self) -> dict[str, str]:
        """Where this backend's units live (region and cluster, or namespace), for the ledger."""
        ...

    def launch(self, plan: LaunchPlan) -> LaunchResult: ...

    def find(self, execution: ExecutionRef) -> list[Unit]:
        """Units that exist on the provider for this execution (every generation)."""
        ...

    def describe(self, units: Sequence[Unit]) -> list[UnitStatus]: ...

    def stop(self, units: Sequence[Unit], reason: str) -> list[tuple[Unit, ComputeError]]:
        """Stop units; returns the ones that could not be stopped, with why."""
        ...

    async def adescribe(self, units: Sequence[Unit]) -> list[UnitStatus]: ...
