"""An auth manager that can say no per DAG, for the slow suite's authorization tests.

Airflow's simple auth manager grants a role on every DAG at once; this subclass also limits some
users to some DAGs, read from ``COMPUTE_TEST_DAG_ACCESS`` (``"alice=dag_a|dag_b;bob=dag_c"``).
For a limited user, ``is_authorized_dag`` on a DAG outside their list is refused whatever their
role; with no DAG named (Airflow asking about DAGs in general) their role decides, and Airflow
then filters every DAG list through ``filter_authorized_dag_ids``, which asks per DAG. Users not
listed are exactly the simple auth manager's, so the rest of the slow suite sees no difference.

The standalone stack (``airflow_stack.py``) configures it as ``[core] auth_manager``.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

ACCESS_VARIABLE = "COMPUTE_TEST_DAG_ACCESS"


def dag_access(spec: str) -> dict[str, frozenset[str]]:
    """``"alice=a|b;bob=c"`` -> ``{"alice": {"a", "b"}, "bob": {"c"}}``."""
    limits: dict[str, frozenset[str]] = {}
    for entry in filter(None, (part.strip() for part in spec.split(";"))):
        user, _, dags = entry.partition("=")
        limits[user.strip()] = frozenset(filter(None, (d.strip() for d in dags.split("|"))))
    return limits


class DagLimitedAuthManager(SimpleAuthManager):
    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        allowed = dag_access(os.environ.get(ACCESS_VARIABLE, "")).get(user.get_name())
        dag_id = getattr(details, "id", None)
        if allowed is not None and dag_id is not None and dag_id not in allowed:
            return False
        return bool(
            super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
        )
