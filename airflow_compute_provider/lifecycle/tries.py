"""One try of one compute execution: what every step of the lifecycle is handed.

``execute`` starts a ``Try`` once the state store began it, and ``execute_complete`` starts it
again when a deferred try resumes (its attempt and token travel in the trigger's event). It holds:

    execution           tenant and execution id: the key of the operation and its ledger rows
    attempt             the try's number, as the state store numbered it for the execution (a
                        new DAG run of the same execution id is simply its next try)
    token               names the process running the try (``hostname:pid:random``); with the
                        attempt it is ``ref``, which every store write names, so the store refuses
                        the writes of a try that is no longer the newest (a zombie, a double run)
    airflow_try_number  Airflow's try number (shown in logs; the store keeps it too)
    args                the validated, rendered arguments (``arguments.ComputeArguments``)
    provider            ``"ecs"`` or ``"kubernetes"``, for the ledger and the metrics
    log                 a logger with tenant, operation, execution id, provider and attempt bound

``Heartbeat`` renews the try's sign of life while a blocking wait polls, at most every
``HEARTBEAT_INTERVAL_SECONDS``; a deferred try records instead that it is alive until its
deadline. The reconciler reads that heartbeat, never the try's start, to call a hold stale.

The lifecycle (``operators/base.py``), the ledger bookkeeping (``ledger.py``), the rollback
(``rollback.py``) and the callbacks after Airflow's decision (``decisions.py``) read it; none
of them changes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from airflow_compute_provider.hooks.base import ExecutionRef
from airflow_compute_provider.lifecycle.arguments import ComputeArguments
from airflow_compute_provider.observability import operation_logger
from airflow_compute_provider.state.clock import HEARTBEAT_INTERVAL_SECONDS
from airflow_compute_provider.state.models import TryRef
from airflow_compute_provider.state.store import TenantStateStore


@dataclass(frozen=True)
class Try:
    """One try of one execution, as execute() and its resumption see it."""

    execution: ExecutionRef
    attempt: int
    args: ComputeArguments
    provider: str
    log: Any
    token: str | None = None
    airflow_try_number: int | None = None

    @classmethod
    def start(
        cls,
        execution: ExecutionRef,
        attempt: int,
        args: ComputeArguments,
        *,
        provider: str,
        token: str | None = None,
        airflow_try_number: int | None = None,
    ) -> Try:
        log = operation_logger(
            tenant_id=execution.tenant_id,
            operation=args.operation,
            execution_id=execution.execution_id,
            provider=provider,
            attempt=attempt,
        )
        return cls(
            execution=execution,
            attempt=attempt,
            args=args,
            provider=provider,
            log=log,
            token=token,
            airflow_try_number=airflow_try_number,
        )

    @property
    def tenant_id(self) -> str:
        return self.execution.tenant_id

    @property
    def execution_id(self) -> str:
        return self.execution.execution_id

    @property
    def ref(self) -> TryRef | None:
        """What the try's store writes name; ``None`` for a try resumed from an event that
        carried no token (a trigger deferred by an older version): its writes go unchecked."""
        return TryRef(self.attempt, self.token) if self.token else None


class Heartbeat:
    """A blocking wait's sign of life: ``renew()`` on every poll writes at most once an interval."""

    def __init__(
        self, store: TenantStateStore, t: Try, *, interval: float = HEARTBEAT_INTERVAL_SECONDS
    ) -> None:
        self._store, self._t, self._interval = store, t, interval
        self._last = time.monotonic()  # begin_operation was the first beat

    def renew(self) -> None:
        ref = self._t.ref
        if ref is None or time.monotonic() - self._last < self._interval:
            return
        # A superseded try learns it here (SupersededTryError) and stops waiting.
        self._store.heartbeat(self._t.tenant_id, self._t.execution_id, by=ref)
        self._last = time.monotonic()


__all__ = ["Heartbeat", "Try"]
