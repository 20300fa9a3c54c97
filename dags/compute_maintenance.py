"""The compute maintenance DAG: reconciles timed-out work, cleans up, releases stale holds.

Every 10 minutes by default; see ``airflow_compute_provider.dags.create_maintenance_dag`` for
the arguments (scope, cleanup attempts, stale-hold age, state store connection).
"""

from airflow_compute_provider.dags import create_maintenance_dag

dag = create_maintenance_dag()
