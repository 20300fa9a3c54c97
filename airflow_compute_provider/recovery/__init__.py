"""Recovery: following work that outlived its try, and resources left for cleanup, to the end.

A timed-out try leaves its units running on purpose, a rollback whose stop failed leaves
resources ``pending_cleanup``, and a worker that died leaves its tenant held. This package
finds each of them in the tenant state store, asks the provider what became of it, and
writes the end of the story: the eventual outcome, the cleaned resource, the tenant released
or held for investigation.

    settings.py    RecoverySettings: scope (tenant, provider, dry run) and how hard cleanup tries
    backends.py    ledger rows -> the backend that reaches them; rows grouped for batched describes
    outcomes.py    the decisions, pure: ledger moves, eventual outcomes, where a tenant goes
    cleanup.py     Cleaner: verify a resource is the ledger row's, then stop it with retries
    reconciler.py  Reconciler.run(settings) -> RecoveryReport: reads, decides, writes
    report.py      RecoveryReport: per-item outcomes, summary counts, the CLEANUP_FAILED error

Nothing here imports Airflow's task context: ``operators/cleanup.py`` wraps it in an operator,
``airflow_compute_provider.dags.create_maintenance_dag`` in a scheduled DAG.
"""

from airflow_compute_provider.recovery.reconciler import Reconciler
from airflow_compute_provider.recovery.report import Action, Item, RecoveryReport
from airflow_compute_provider.recovery.settings import RecoverySettings

__all__ = ["Action", "Item", "Reconciler", "RecoveryReport", "RecoverySettings"]
