"""``RecoverySettings``: what one maintenance run covers and how hard its cleanup tries.

Every value is checked when the settings are built (``ComputeConfigError`` naming the
argument), so a bad DAG argument fails before the first store read or provider call.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from airflow_compute_provider import registry
from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.state import validate as v
from airflow_compute_provider.state.clock import HEARTBEAT_INTERVAL_SECONDS

#: the fields that say which rows a run covers; the others say how hard it tries
_SCOPE = ("tenant_id", "provider", "dry_run")

DEFAULT_STALE_AFTER = timedelta(hours=1)
#: a try misses this many heartbeats in a row before its hold may be stale: a slow database write
#: or a long poll must not make a live try look dead
MIN_STALE_AFTER = timedelta(seconds=4 * HEARTBEAT_INTERVAL_SECONDS)
DEFAULT_CLEANUP_ATTEMPTS = 3
DEFAULT_CLEANUP_BACKOFF = timedelta(seconds=2)
DEFAULT_CLEANUP_MAX_BACKOFF = timedelta(seconds=30)
DEFAULT_STUCK_GRACE_PERIOD = timedelta(minutes=5)


@dataclass(frozen=True)
class RecoverySettings:
    """One maintenance run.

    :param tenant_id: only this tenant (``None``: every tenant).
    :param provider: only this provider, a name of the registry's (``None``: every provider).
    :param dry_run: look and report what would happen; write nothing, stop nothing.
    :param stale_after: a held tenant whose try has shown no sign of life (its heartbeat, or a
        deferred try's deadline) for this long, and whose units all ended, is released back to
        its proper state. At least ``MIN_STALE_AFTER`` (four heartbeat intervals); zero is
        allowed and means "every held try whose units ended now", for a platform operator who
        knows the workers are gone.
    :param cleanup_attempts: stop requests per resource in one run before it stays
        ``pending_cleanup`` (a non-retriable failure ends the attempts at once).
    :param cleanup_backoff: the wait before the second attempt; it doubles for each further one.
    :param cleanup_max_backoff: the longest wait between two attempts.
    :param stuck_grace_period: a unit left pending with an error (image pull back-off,
        unschedulable) for this long has failed; it is handed to cleanup.
    """

    tenant_id: str | None = None
    provider: str | None = None
    dry_run: bool = False
    stale_after: timedelta = DEFAULT_STALE_AFTER
    cleanup_attempts: int = DEFAULT_CLEANUP_ATTEMPTS
    cleanup_backoff: timedelta = DEFAULT_CLEANUP_BACKOFF
    cleanup_max_backoff: timedelta = DEFAULT_CLEANUP_MAX_BACKOFF
    stuck_grace_period: timedelta = DEFAULT_STUCK_GRACE_PERIOD

    def __post_init__(self) -> None:
        if self.tenant_id is not None:
            v.tenant_id(self.tenant_id)
        if self.provider is not None and self.provider not in registry.names():
            raise ComputeConfigError(
                f"must be one of {', '.join(registry.names())} (or None for all), got {self.provider!r}",
                argument="provider",
            )
        if not isinstance(self.dry_run, bool):
            raise ComputeConfigError("must be True or False", argument="dry_run")
        for name in ("stale_after", "cleanup_backoff", "cleanup_max_backoff", "stuck_grace_period"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise ComputeConfigError("must be a timedelta of zero or more", argument=name)
        if timedelta(0) < self.stale_after < MIN_STALE_AFTER:
            raise ComputeConfigError(
                f"must be at least {MIN_STALE_AFTER} (four heartbeat intervals of a waiting try), "
                f"or zero; got {self.stale_after}",
                argument="stale_after",
            )
        attempts = self.cleanup_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ComputeConfigError("must be an integer of at least 1", argument="cleanup_attempts")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one."""
        first = self.cleanup_backoff.total_seconds()
        return float(min(self.cleanup_max_backoff.total_seconds(), first * 2 ** (attempt - 1)))

    @classmethod
    def tuning_names(cls) -> tuple[str, ...]:
        """The fields that say how hard a run tries: every one but the scope (``scope()``)."""
        return tuple(f.name for f in fields(cls) if f.name not in _SCOPE)

    def tuning(self) -> dict[str, Any]:
        """How hard the run tries, as ``ComputeReconcileOperator``'s keyword arguments."""
        return {name: getattr(self, name) for name in self.tuning_names()}

    def scope(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _SCOPE}

    def covers(self, tenant_id: str, provider: str) -> bool:
        """Whether a row of ``tenant_id`` on ``provider`` is this run's business."""
        return (self.tenant_id is None or tenant_id == self.tenant_id) and (
            self.provider is None or provider == self.provider
        )
