"""What the fast lifecycle tests share: a try's arguments, a try, a store on a SQLite file."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow_compute_provider.hooks.base import ExecutionRef
from airflow_compute_provider.lifecycle.arguments import ComputeArguments
from airflow_compute_provider.lifecycle.tries import Try
from airflow_compute_provider.recovery.backends import BackendKey
from airflow_compute_provider.testing.memory import PROVIDER, MemoryCloud, MemoryComputeBackend

TENANT = "acme"
EXECUTION_ID = "dag:run:task:-1"


def args(**overrides: Any) -> ComputeArguments:
    """The validated arguments of a try, as the operator hands them to the lifecycle."""
    values: dict[str, Any] = {
        "tenant_id": TENANT,
        "operation": "provision",
        "execution_id": EXECUTION_ID,
        "count": 2,
        "wait_for": "completion",
        "timeout": timedelta(minutes=1),
        "timeout_factor": 1.0,
        "max_timeout": None,
        "on_partial_failure": "rollback",
        "on_kill_action": "keep",
        "poll_interval": 10.0,
        "pending_grace_period": timedelta(minutes=5),
        "state_conn_id": "compute_state_default",
    }
    values.update(overrides)
    return ComputeArguments.validated(values)


def a_try(
    attempt: int = 1, *, tenant_id: str = TENANT, execution_id: str = EXECUTION_ID, **overrides: Any
) -> Try:
    return Try.start(ExecutionRef(tenant_id, execution_id), attempt, args(**overrides), provider=PROVIDER)


def factory(cloud: MemoryCloud) -> Any:
    """The reconciler's backend factory: every ledger row of the memory provider is on ``cloud``."""

    def build(key: BackendKey) -> MemoryComputeBackend:
        assert key.provider == PROVIDER, key
        return MemoryComputeBackend(cloud, dict(key.locator).get("namespace", "default"))

    return build
