"""Real Airflow for the tests: an isolated AIRFLOW_HOME, ``dag.test()`` runs, and the shared
``airflow standalone`` stack of the slow suite.

    (import time)        AIRFLOW_HOME and friends are set for this process *before anything
                         imports airflow*: Airflow reads its config and opens its metadata DB on
                         first import. The home is a temp dir, removed when pytest ends.
    airflow_home         session fixture: ``Path`` of that home, its SQLite metadata DB migrated
                         once (``airflow db migrate``); ``airflow_home / "dags"`` is the DAG bundle
    airflow_env          function fixture: ``AirflowEnv`` (see ``airflow_dagrun``)::

                             run = airflow_env.run_dag(TESTS_DAGS / "harness_hello.py", "harness_hello",
                                                       conf={...}, logical_date=None)
                             run.state(); run.task_states(); run.try_numbers(); run.xcom("hello")
                             child = airflow_env.run_dag_in_subprocess(source, dag_id, logical_date=when)
                             child.kill(); child.wait(); child.record.task_states()

                         DAG sources are a ``Path`` (copied) or a ``str`` (written as
                         ``<dag_id>.py``); the files are removed after the test.
    airflow_standalone   session fixture for tests marked ``slow``: ``StandaloneHandle`` with
                         ``.base_url``, ``.username`` / ``.password`` (admin), ``.client``
                         (``AirflowRestClient``) and ``.add_dag(path)``; one stack per session on a
                         PostgreSQL metadata DB from ``postgres_server``. Every file of
                         ``tests/dags/`` is in its DAG folder from the start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.airflow_dagrun import AirflowEnv
from tests.harness.airflow_stack import AirflowRestClient, StandaloneStack
from tests.harness.postgres import PostgresServer

TESTS_DAGS = Path(__file__).resolve().parents[1] / "dags"
# Any valid Fernet key: encrypted connection fields in a throwaway DB.
FERNET_KEY = "8oEvcgbuJ6zd3CeIqN1ydzwq0qGDO4OcsHEZjP3JTLA="


def _isolate_airflow() -> Path:
    if "airflow" in sys.modules:
        raise RuntimeError(
            "airflow was imported before tests.harness.airflow_env set AIRFLOW_HOME; load this "
            "plugin before anything that imports airflow (see tests/conftest.py)"
        )
    home = Path(tempfile.mkdtemp(prefix="compute-airflow-home-"))
    (home / "dags").mkdir()
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": FERNET_KEY,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        }
    )
    return home


AIRFLOW_HOME = _isolate_airflow()


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, check=False, cwd=AIRFLOW_HOME
    )
    if migrate.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{migrate.stderr.decode(errors='replace')[-4000:]}")
    return AIRFLOW_HOME


@pytest.fixture
def airflow_env(airflow_home: Path) -> Iterator[AirflowEnv]:
    env = AirflowEnv(airflow_home)
    yield env
    env.cleanup()


@dataclass(frozen=True)
class StandaloneHandle:
    base_url: str
    username: str
    password: str
    client: AirflowRestClient
    stack: StandaloneStack

    def add_dag(self, source: Path) -> Path:
        """Copy a DAG file into the stack's DAG folder; ``client.wait_for_dag`` sees it parsed."""
        return self.stack.add_dag(source)


@pytest.fixture(scope="session")
def airflow_standalone(postgres_server: PostgresServer) -> Iterator[StandaloneHandle]:
    stack = StandaloneStack(postgres_server.create_database("airflow_standalone"))
    for dag_file in sorted(TESTS_DAGS.glob("*.py")):
        stack.add_dag(dag_file)
    stack.start()
    try:
        yield StandaloneHandle(
            base_url=stack.base_url,
            username=stack.info().username,
            password=stack.info().password,
            client=stack.client(),
            stack=stack,
        )
    finally:
        stack.stop()
