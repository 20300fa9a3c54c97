"""An in-memory compute provider that honours the whole ``ComputeBackend`` contract.

It lets the lifecycle (``operators/``) and the reconciler (``recovery/``) run in microseconds, so
they can be tested step by step and model-checked (``tests/model/``). Two classes:

    MemoryCloud            the provider's side: every unit ever started, by resource id; the
                           idempotency tokens it has seen; and the faults a test scripts
                           (``refuse_next``, ``lose_next_answer``, ``land_next_then_fail``,
                           ``hold_next_token``, ``fail_next_call``, ``refuse_next_stop``) and
                           the units' fate
                           (``set_phase``, ``vanish``)
    MemoryComputeBackend   the ``ComputeBackend`` a try talks to: ``launch``, ``find``,
                           ``describe``, ``stop``, ``adescribe``; several backends may share
                           one cloud, the way several tries and the reconciler share a provider

What it promises, like the real hooks:

* a launch request carries ``UnitLaunch.token``; a token the cloud has seen returns the unit it
  started then, never a second one (ECS ``clientToken``, the Kubernetes pod name);
* a refused unit is data (``LaunchResult.refused``), never a raised error; a lost answer is a
  refusal with ``PROVIDER_UNREACHABLE`` and no HTTP status, after the unit did start;
* ``find`` returns every generation of an execution's units still known to the provider;
* ``describe`` reports a unit the provider no longer knows as ``vanished``;
* ``stop`` ends a unit (``failed`` with ``CANCELLED``, like a stopped ECS task or deleted pod)
  and returns the units it could not stop, with why;
* every whole-call failure leaves as ``ComputeOperationError``.

It lives in the package rather than under ``tests/`` so that the provider registry (and a DAG
author's own unit tests) can build it from ``backend_config()`` like any other backend: clouds are
named, and ``MemoryComputeBackend(cloud="name")`` in the triggerer finds the one the test made.
``ENTRY`` is its registry entry; ``with registered():`` plugs it in for a test, and the
trigger, the reconciler and the lifecycle then reach it as they reach ECS or Kubernetes.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from airflow_compute_provider import registry
from airflow_compute_provider.errors import ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.errors.model import RootCause
from airflow_compute_provider.hooks.base import (
    TOKEN_HELD,
    ExecutionRef,
    LaunchPlan,
    LaunchResult,
    Unit,
    UnitLaunch,
    UnitPhase,
    UnitStatus,
)

PROVIDER = "memory"

#: The in-memory provider's registry entry: a ledger row's locator names its cloud and namespace.
ENTRY = registry.ComputeProvider(
    name=PROVIDER,
    hook=f"{__name__}.MemoryComputeBackend",
    locator_arguments={"cloud": "cloud", "namespace": "namespace"},
    required_locator=("cloud",),
)


@contextlib.contextmanager
def registered() -> Iterator[registry.ComputeProvider]:
    """The in-memory provider plugged into the registry while the block runs."""
    registry.register(ENTRY)
    try:
        yield ENTRY
    finally:
        registry.unregister(PROVIDER)


@dataclass
class MemoryUnit:
    """One unit on the provider, with every phase it went through (for a test's assertions)."""

    resource_id: str
    execution_key: str
    index: int
    generation: int
    token: str
    phase: UnitPhase = UnitPhase.PENDING
    exit_code: int | None = None
    error: ComputeError | None = None
    history: list[UnitPhase] = field(default_factory=lambda: [UnitPhase.PENDING])

    @property
    def live(self) -> bool:
        return self.phase in (UnitPhase.PENDING, UnitPhase.RUNNING)

    def as_unit(self, locator: dict[str, str]) -> Unit:
        return Unit(self.index, self.generation, self.resource_id, locator)


def _error(code: ErrorCode, message: str, *, http_status: int | None = None, **cause: Any) -> ComputeError:
    return ComputeError(
        code=code,
        message=message,
        provider=PROVIDER,
        root_cause=RootCause(provider=PROVIDER, http_status=http_status, **cause),
    )


def unreachable(what: str = "the connection dropped before the answer came") -> ComputeError:
    """A call whose answer never came: the request may or may not have arrived."""
    return _error(ErrorCode.PROVIDER_UNREACHABLE, what)


def _held() -> ComputeError:
    return _error(
        ErrorCode.CONFLICT, "the token is held by something not ours", http_status=409, reason=TOKEN_HELD
    )


class MemoryCloud:
    """The provider's side of every ``MemoryComputeBackend`` built on it."""

    #: clouds by name, so ``backend_config()`` can rebuild a backend in another component
    registry: ClassVar[dict[str, MemoryCloud]] = {}

    def __init__(self, name: str = "default") -> None:
        self.name = name
        self.units: dict[str, MemoryUnit] = {}
        #: units the provider forgot (``vanish``), for a test's own reads
        self.gone: dict[str, MemoryUnit] = {}
        self.tokens: dict[str, str] = {}
        #: tokens something not ours holds (``hold_next_token``): every launch of one is refused
        self.held: set[str] = set()
        self._ids = itertools.count(1)
        # scripted faults, consumed in order
        self._launch_faults: deque[tuple[str, ComputeError]] = deque()
        #: per call name: [calls to let through first, the error], in order
        self._call_faults: dict[str, deque[list[Any]]] = {}
        self._stop_faults: deque[ComputeError] = deque()
        #: how many times each call was made, by name
        self.calls: dict[str, int] = {}
        MemoryCloud.registry[name] = self

    # -- scripting faults --------------------------------------------------------------------------

    def refuse_next(self, error: ComputeError) -> None:
        """The next unit launched is refused with ``error``; nothing starts."""
        self._launch_faults.append(("refuse", error))

    def lose_next_answer(self) -> None:
        """The next unit launched starts, but its answer is lost (``PROVIDER_UNREACHABLE``)."""
        self._launch_faults.append(("lost", unreachable()))

    def land_next_then_fail(self, error: ComputeError) -> None:
        """The next unit launched starts, yet the answer is ``error`` (a 5xx whose request landed)."""
        self._launch_faults.append(("landed", error))

    def hold_next_token(self) -> None:
        """Something not ours takes the token of the next unit launched, for good (a stranger's
        pod under our pod name): that launch, and every later one of the token, is refused with
        ``CONFLICT`` / ``TOKEN_HELD``."""
        self._launch_faults.append(("hold", _held()))

    def fail_next_call(self, call: str, error: ComputeError | None = None, *, skip: int = 0) -> None:
        """A ``call`` ("launch", "find", "describe", "stop") raises ``error`` as a whole: the next
        one, or the one after ``skip`` calls that go through."""
        self._call_faults.setdefault(call, deque()).append([skip, error or unreachable()])

    def refuse_next_stop(self, error: ComputeError | None = None) -> None:
        """The next unit asked to stop is not stopped (returned by ``stop`` with ``error``)."""
        self._stop_faults.append(
            error or _error(ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE, "stop failed", http_status=503)
        )

    def clear_faults(self) -> None:
        """Forget every scripted fault not yet consumed: the provider answers well from now on."""
        self._launch_faults.clear()
        self._call_faults.clear()
        self._stop_faults.clear()

    # -- the units' fate -----------------------------------------------------------------------------

    def set_phase(
        self,
        resource_id: str,
        phase: UnitPhase,
        *,
        exit_code: int | None = None,
        error: ComputeError | None = None,
    ) -> None:
        unit = self.units[resource_id]
        unit.phase, unit.exit_code, unit.error = phase, exit_code, error
        unit.history.append(phase)

    def succeed(self, resource_id: str) -> None:
        self.set_phase(resource_id, UnitPhase.SUCCEEDED, exit_code=0)

    def fail(
        self, resource_id: str, code: ErrorCode = ErrorCode.CONTAINER_FAILED, exit_code: int | None = 1
    ) -> None:
        error = _error(
            code, f"unit {resource_id} failed ({code.value})", resource_id=resource_id, exit_code=exit_code
        )
        self.set_phase(resource_id, UnitPhase.FAILED, exit_code=exit_code, error=error)

    def vanish(self, resource_id: str) -> None:
        """The provider forgets the unit (deleted, aged out of its API)."""
        unit = self.units.pop(resource_id)
        unit.history.append(UnitPhase.VANISHED)
        unit.phase = UnitPhase.VANISHED
        self.gone[resource_id] = unit

    def of_execution(self, execution: ExecutionRef) -> list[MemoryUnit]:
        return [u for u in self.units.values() if u.execution_key == execution.key]

    # -- what the backends call ---------------------------------------------------------------------

    def call(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        faults = self._call_faults.get(name)
        if faults:
            if faults[0][0] > 0:
                faults[0][0] -= 1
                return
            raise ComputeOperationError(faults.popleft()[1])

    def start(
        self, execution: ExecutionRef, launch: UnitLaunch
    ) -> tuple[MemoryUnit | None, ComputeError | None]:
        token = launch.token(execution)
        if token in self.tokens:
            # the same request again: the unit it started then (it may since have vanished)
            existing = self.units.get(self.tokens[token])
            if existing is not None:
                return existing, None
        if token in self.held:
            return None, _held()
        kind, error = self._launch_faults.popleft() if self._launch_faults else ("ok", None)
        if kind == "hold":
            self.held.add(token)
        if kind in ("refuse", "hold"):
            return None, error
        unit = MemoryUnit(
            resource_id=f"{self.name}/{execution.key}-{launch.index}-g{launch.generation}-{next(self._ids)}",
            execution_key=execution.key,
            index=launch.index,
            generation=launch.generation,
            token=token,
        )
        self.units[unit.resource_id] = unit
        self.tokens[token] = unit.resource_id
        return unit, error  # "lost" and "landed": the unit started, yet the answer is an error

    def stop_one(self, resource_id: str, reason: str) -> ComputeError | None:
        if self._stop_faults:
            return self._stop_faults.popleft()
        unit = self.units.get(resource_id)
        if unit is not None and unit.live:
            error = _error(
                ErrorCode.CANCELLED, f"stopped: {reason}", resource_id=resource_id, reason="stopped"
            )
            self.set_phase(resource_id, UnitPhase.FAILED, error=error)
        return None


class MemoryComputeBackend:
    """A ``ComputeBackend`` on a ``MemoryCloud`` (found by name, or handed in)."""

    provider = PROVIDER
    refusal_frees_token = True  # as Kubernetes: a refused launch's token starts a unit later

    def __init__(self, cloud: str | MemoryCloud = "default", namespace: str = "default") -> None:
        self.cloud = cloud if isinstance(cloud, MemoryCloud) else MemoryCloud.registry[cloud]
        self.namespace = namespace

    def backend_config(self) -> dict[str, Any]:
        return {"cloud": self.cloud.name, "namespace": self.namespace}

    def locator(self) -> dict[str, str]:
        return {"cloud": self.cloud.name, "namespace": self.namespace}

    def launch(self, plan: LaunchPlan) -> LaunchResult:
        self.cloud.call("launch")
        launched: list[Unit] = []
        refused: list[tuple[UnitLaunch, ComputeError]] = []
        for launch in plan.units:
            unit, error = self.cloud.start(plan.execution, launch)
            if error is not None:
                refused.append((launch, error))
            elif unit is not None:
                launched.append(unit.as_unit(self.locator()))
        return LaunchResult(launched=launched, refused=refused)

    def find(self, execution: ExecutionRef) -> list[Unit]:
        self.cloud.call("find")
        units = self.cloud.of_execution(execution)
        return sorted((u.as_unit(self.locator()) for u in units), key=lambda u: (u.index, u.generation))

    def describe(self, units: Sequence[Unit]) -> list[UnitStatus]:
        self.cloud.call("describe")
        statuses = []
        for unit in units:
            known = self.cloud.units.get(unit.resource_id)
            if known is None:
                statuses.append(UnitStatus(unit=unit, phase=UnitPhase.VANISHED))
            else:
                statuses.append(
                    UnitStatus(unit=unit, phase=known.phase, exit_code=known.exit_code, error=known.error)
                )
        return statuses

    def stop(self, units: Sequence[Unit], reason: str) -> list[tuple[Unit, ComputeError]]:
        self.cloud.call("stop")
        not_stopped = []
        for unit in units:
            error = self.cloud.stop_one(unit.resource_id, reason)
            if error is not None:
                not_stopped.append((unit, error))
        return not_stopped

    async def adescribe(self, units: Sequence[Unit]) -> list[UnitStatus]:
        return self.describe(units)


__all__ = [
    "ENTRY",
    "PROVIDER",
    "MemoryCloud",
    "MemoryComputeBackend",
    "MemoryUnit",
    "registered",
    "unreachable",
]
