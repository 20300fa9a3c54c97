"""``ComputeReconcileOperator``: the maintenance task that follows every loose end to the end.

A thin shell around ``recovery.Reconciler``: it validates its arguments (static ones at DAG
parse, templated ones once rendered), opens the tenant state store, runs one maintenance pass,
and reports:

    log      one line per item, then the summary counts
    XCom     ``return_value``: the ``RecoveryReport`` as JSON (scope, ``summary``,
             ``tenants_needing_investigation``, ``items``); pushed before a failure is raised,
             so it is there either way
    failure  ``ComputeOperationError`` with CLEANUP_FAILED (also pushed to XCom
             ``compute_error``) when a resource stays ``pending_cleanup`` after its attempts,
             once everything else is recorded; a dry run never fails
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator

from airflow_compute_provider.errors import ComputeConfigError, ComputeOperationError
from airflow_compute_provider.lifecycle.xcom import XCOM_ERROR_KEY
from airflow_compute_provider.recovery import Reconciler, RecoverySettings
from airflow_compute_provider.recovery import settings as defaults
from airflow_compute_provider.state.config import DEFAULT_CONN_ID

XCOM_RETURN_KEY = "return_value"
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


class ComputeReconcileOperator(BaseOperator):
    """Record what became of timed-out work, clean up resources marked for cleanup, and release
    stale tenant holds.

    :param tenant_id: only this tenant (default: every tenant); templated.
    :param provider: only ``"ecs"`` or ``"kubernetes"`` (default: both); templated.
    :param dry_run: report what would happen, change nothing; templated ("true"/"false" work).
    :param stale_after: a held tenant whose try has been idle this long, with every unit over,
        is released back to its proper state.
    :param cleanup_attempts: stop requests per resource before it stays ``pending_cleanup``.
    :param cleanup_backoff: the wait before the second stop attempt, doubling after that.
    :param cleanup_max_backoff: the longest wait between two stop attempts.
    :param stuck_grace_period: how long a left-over unit may be stuck pending with an error
        before it counts as failed and is stopped.
    :param state_conn_id: the Airflow connection of the tenant state store.
    """

    template_fields: Sequence[str] = ("tenant_id", "provider", "dry_run")
    ui_color = "#fdf0e0"

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        provider: str | None = None,
        dry_run: bool | str = False,
        stale_after: timedelta = defaults.DEFAULT_STALE_AFTER,
        cleanup_attempts: int = defaults.DEFAULT_CLEANUP_ATTEMPTS,
        cleanup_backoff: timedelta = defaults.DEFAULT_CLEANUP_BACKOFF,
        cleanup_max_backoff: timedelta = defaults.DEFAULT_CLEANUP_MAX_BACKOFF,
        stuck_grace_period: timedelta = defaults.DEFAULT_STUCK_GRACE_PERIOD,
        state_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
        self.provider = provider
        self.dry_run = dry_run
        self.stale_after = stale_after
        self.cleanup_attempts = cleanup_attempts
        self.cleanup_backoff = cleanup_backoff
        self.cleanup_max_backoff = cleanup_max_backoff
        self.stuck_grace_period = stuck_grace_period
        self.state_conn_id = state_conn_id
        if not any(_templated(v) for v in (tenant_id, provider, dry_run)):
            self.settings()  # static mistakes fail the DAG import

    def settings(self) -> RecoverySettings:
        """The run's settings from the (rendered) arguments; ``ComputeConfigError`` if invalid."""
        return RecoverySettings(
            tenant_id=_optional_text(self.tenant_id, "tenant_id"),
            provider=_optional_text(self.provider, "provider"),
            dry_run=_boolean(self.dry_run),
            stale_after=self.stale_after,
            cleanup_attempts=self.cleanup_attempts,
            cleanup_backoff=self.cleanup_backoff,
            cleanup_max_backoff=self.cleanup_max_backoff,
            stuck_grace_period=self.stuck_grace_period,
        )

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_compute_provider.state.config import open_state_store

        settings = self.settings()
        store = open_state_store(self.state_conn_id)
        try:
            report = Reconciler(store).run(settings)
        finally:
            store.close()
        result = report.to_json()
        summary = result["summary"]
        self.log.info(
            "compute maintenance%s: %d operation(s) reconciled, %d resource(s) cleaned, %d still "
            "pending cleanup, %d tenant(s) needing investigation",
            " (dry run)" if settings.dry_run else "",
            summary["operations_reconciled"],
            summary["resources_cleaned"],
            summary["resources_pending"],
            summary["tenants_needing_investigation"],
        )
        for tenant_id, why in result["tenants_needing_investigation"].items():
            self.log.warning("tenant %s needs investigation: %s", tenant_id, why)
        error = report.cleanup_error()
        if error is not None:
            ti = context["ti"]
            ti.xcom_push(key=XCOM_RETURN_KEY, value=result)
            ti.xcom_push(key=XCOM_ERROR_KEY, value=error.to_json_dict())
            raise ComputeOperationError(error)
        return result


def _templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _optional_text(value: Any, argument: str) -> str | None:
    # A template of an absent param renders as "" or "None"; both mean "no filter".
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    if not isinstance(value, str):
        raise ComputeConfigError(f"must be a string or None, got {type(value).__name__}", argument=argument)
    return value.strip()


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ComputeConfigError(f"must be true or false, got {value!r}", argument="dry_run")


__all__ = ["ComputeReconcileOperator"]
