"""One try of one compute execution: what every step of the lifecycle is handed.

``execute`` starts a ``Try`` once the arguments are valid, and ``execute_complete`` starts it
again when a deferred try resumes. It holds:

    execution   tenant and execution id: the key of the operation and of its ledger rows
    attempt     Airflow's try number
    args        the validated, rendered arguments (``arguments.py``)
    provider    ``"ecs"`` or ``"kubernetes"``, for the ledger and the metrics
    log         a logger with tenant, operation, execution id, provider and attempt bound once

The lifecycle (``base.py``), the ledger bookkeeping (``ledger.py``), the rollback
(``rollback.py``) and the callbacks after Airflow's decision (``decisions.py``) read it; none
of them changes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_compute_provider.hooks.base import ExecutionRef
from airflow_compute_provider.observability import operation_logger


@dataclass(frozen=True)
class Try:
    """One try of one execution, as execute() and its resumption see it."""

    execution: ExecutionRef
    attempt: int
    args: Mapping[str, Any]
    provider: str
    log: Any

    @classmethod
    def start(cls, execution: ExecutionRef, attempt: int, args: Mapping[str, Any], *, provider: str) -> Try:
        log = operation_logger(
            tenant_id=execution.tenant_id,
            operation=args["operation"],
            execution_id=execution.execution_id,
            provider=provider,
            attempt=attempt,
        )
        return cls(execution=execution, attempt=attempt, args=args, provider=provider, log=log)

    @property
    def tenant_id(self) -> str:
        return self.execution.tenant_id

    @property
    def execution_id(self) -> str:
        return self.execution.execution_id


__all__ = ["Try"]
