"""Where the state lives: the pure decision in config.py (Airflow itself: test_state_config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.state.config import (
    DEFAULT_CONN_ID,
    EMBEDDED_FILE,
    ExecutorInfo,
    choose_location,
    connection_url,
    same_database,
)

LOCAL = [ExecutorInfo("LocalExecutor", single_machine=True)]
PG = "postgresql+psycopg2://state:pw@db.internal:5432/compute_state"


def test_a_connection_wins_and_the_executor_is_not_even_asked(tmp_path: Path) -> None:
    def executors() -> list[ExecutorInfo]:
        raise AssertionError("executors must not be consulted when the connection exists")

    where = choose_location(
        DEFAULT_CONN_ID,
        connection_url=PG,
        executors=executors,
        airflow_home=tmp_path,
        metadata_url="postgresql://airflow@db.internal:5432/airflow",
    )
    assert (where.url, where.source) == (PG, "connection")
    assert "pw" not in where.describe()
    assert not (tmp_path / EMBEDDED_FILE).exists()


@pytest.mark.parametrize(
    "metadata",
    [
        "postgresql://airflow:other@db.internal:5432/compute_state",
        "postgresql+asyncpg://db.internal:5432/compute_state",
    ],
)
def test_the_airflow_metadata_database_is_refused(tmp_path: Path, metadata: str) -> None:
    with pytest.raises(ComputeConfigError) as refused:
        choose_location(
            "state", connection_url=PG, executors=LOCAL, airflow_home=tmp_path, metadata_url=metadata
        )
    assert refused.value.argument == "conn_id"
    assert "'state'" in str(refused.value)
    assert "metadata database" in str(refused.value)


def test_without_a_connection_a_single_machine_gets_an_embedded_sqlite_file(tmp_path: Path) -> None:
    home = tmp_path / "airflow-home"
    where = choose_location(
        DEFAULT_CONN_ID, connection_url=None, executors=LOCAL, airflow_home=home, metadata_url=None
    )
    url = sa.make_url(where.url)
    assert (url.get_backend_name(), where.source) == ("sqlite", "embedded")
    assert Path(url.database or "") == home / EMBEDDED_FILE
    assert home.is_dir()  # created, so SQLite can create its file


@pytest.mark.parametrize(
    "executors",
    [
        [ExecutorInfo("CeleryExecutor", single_machine=False)],
        [ExecutorInfo("LocalExecutor", single_machine=True), ExecutorInfo("KubernetesExecutor", False)],
    ],
    ids=["celery", "local-and-kubernetes"],
)
def test_without_a_connection_a_spread_executor_is_refused_naming_the_connection(
    tmp_path: Path, executors: list[ExecutorInfo]
) -> None:
    with pytest.raises(ComputeConfigError) as refused:
        choose_location(
            "tenant_state", connection_url=None, executors=executors, airflow_home=tmp_path, metadata_url=None
        )
    message = str(refused.value)
    assert refused.value.argument == "conn_id"
    assert "'tenant_state'" in message
    assert executors[-1].name in message
    assert not (tmp_path / EMBEDDED_FILE).exists()


@pytest.mark.parametrize(
    ("parts", "url"),
    [
        (
            {
                "conn_type": "postgres",
                "host": "db",
                "login": "u",
                "password": "p@ss",
                "port": 5432,
                "schema": "st",
            },
            "postgresql://u:p%40ss@db:5432/st",
        ),
        (
            {
                "conn_type": "postgresql+psycopg2",
                "host": "db",
                "schema": "st",
                "extra": {"sslmode": "require"},
            },
            "postgresql+psycopg2://db/st?sslmode=require",
        ),
        ({"conn_type": "sqlite", "schema": "/var/lib/state.db"}, "sqlite:////var/lib/state.db"),
        (
            {"conn_type": "generic", "extra": {"sqlalchemy_url": "mysql+pymysql://u@h/d"}},
            "mysql+pymysql://u@h/d",
        ),
    ],
    ids=["postgres-type", "driver-and-extras", "sqlite-path", "explicit-url-extra"],
)
def test_a_connections_parts_make_a_sqlalchemy_url(parts: dict[str, object], url: str) -> None:
    conn_type = parts.pop("conn_type")
    built = connection_url(conn_type, **parts)  # type: ignore[arg-type]
    assert built == url
    sa.make_url(built)  # and SQLAlchemy accepts it


def test_a_connection_without_a_type_is_refused() -> None:
    with pytest.raises(ComputeConfigError) as refused:
        connection_url(None, host="db")
    assert refused.value.argument == "conn_id"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("postgresql://a@h:5432/x", "postgresql+psycopg2://b:pw@h:5432/x", True),
        ("postgresql://h/x", "postgresql://h/y", False),
        ("postgresql://h:5432/x", "postgresql://h:5433/x", False),
        ("sqlite:////tmp/a/../a/state.db", "sqlite:////tmp/a/state.db", True),
        ("sqlite:////tmp/a/state.db", "postgresql://h/x", False),
        ("sqlite://", "sqlite://", False),  # two in-memory databases are never the same one
    ],
)
def test_same_database_ignores_drivers_and_credentials(a: str, b: str, same: bool) -> None:
    assert same_database(a, b) is same
