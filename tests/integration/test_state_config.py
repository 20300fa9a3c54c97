"""Config resolution against real Airflow: a connection, the embedded fallback, the refusals.

Each test runs the command line in a fresh process with an isolated ``AIRFLOW_HOME``, because
Airflow reads its home and executor once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_compute_provider.state import SqlTenantStateStore
from airflow_compute_provider.state.config import EMBEDDED_FILE

CONN_ENV = "AIRFLOW_CONN_COMPUTE_STATE_DEFAULT"


def airflow_cli(home: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    return subprocess.run(
        [sys.executable, "-m", "airflow_compute_provider.state", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
        env={**clean, "AIRFLOW_HOME": str(home), "PYTHONWARNINGS": "ignore", **env},
    )


def _seed(url: str) -> None:
    store = SqlTenantStateStore(url)
    store.begin_operation("acme", "run-1", "provision", "ecs", 1)
    store.close()


def test_the_default_connection_points_at_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/elsewhere.db"
    _seed(url)
    result = airflow_cli(tmp_path / "home", "tenants", "--json", **{CONN_ENV: url})
    assert result.returncode == 0, result.stderr
    assert [t["tenant_id"] for t in json.loads(result.stdout)] == ["acme"]
    assert not (tmp_path / "home" / EMBEDDED_FILE).exists()


@pytest.mark.postgres
def test_a_postgres_connection_of_airflows_own_type(tmp_path: Path, postgres_db_url: str) -> None:
    _seed(postgres_db_url)
    parts = sa.make_url(postgres_db_url)
    # How a connection made in the Airflow UI looks: type "postgres", no driver in the scheme.
    as_airflow = f"postgres://{parts.username}@{parts.host}:{parts.port}/{parts.database}"
    result = airflow_cli(
        tmp_path, "tenants", "--conn-id", "tenant_state", AIRFLOW_CONN_TENANT_STATE=as_airflow
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:2] == ["acme", "operation_in_progress"]


def test_without_a_connection_a_local_executor_gets_an_embedded_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = airflow_cli(home, "tenants", AIRFLOW__CORE__EXECUTOR="LocalExecutor")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "(no tenants)\n"
    embedded = home / EMBEDDED_FILE
    assert embedded.is_file()
    _seed(f"sqlite:///{embedded}")
    again = airflow_cli(home, "tenants", "--json", AIRFLOW__CORE__EXECUTOR="LocalExecutor")
    assert [t["tenant_id"] for t in json.loads(again.stdout)] == ["acme"]


def test_without_a_connection_a_multi_machine_executor_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = airflow_cli(home, "tenants", AIRFLOW__CORE__EXECUTOR="KubernetesExecutor")
    assert result.returncode == 1
    assert "compute_state_default" in result.stderr
    assert "KubernetesExecutor" in result.stderr
    assert not (home / EMBEDDED_FILE).exists()


def test_the_airflow_metadata_database_is_refused(tmp_path: Path) -> None:
    metadata = f"sqlite:///{tmp_path}/airflow.db"
    result = airflow_cli(
        tmp_path, "tenants", AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata, **{CONN_ENV: metadata}
    )
    assert result.returncode == 1
    assert "metadata database" in result.stderr
    assert "compute_state_default" in result.stderr
