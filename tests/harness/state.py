"""A tenant state store of the test's own, where the operators and the maintenance DAG find it.

    default_state_url  the SQLAlchemy URL of a SQLite file in the test's tmp_path, set as the
                       default state connection (``AIRFLOW_CONN_COMPUTE_STATE_DEFAULT``), so
                       operators run by ``dag.test()``, their child processes and the maintenance
                       DAG all use it
    state_store        a ``SqlTenantStateStore`` on that URL, for the test's own reads and
                       writes; closed afterwards

A test that needs PostgreSQL, or a store the whole session shares, builds its own (the state
store tests' ``state_url``, from ``tests/unit/state/support.py``, runs on both databases).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_compute_provider.state import SqlTenantStateStore


@pytest.fixture
def default_state_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'compute_state.db'}"
    conn = {"conn_type": "sqlite", "extra": {"sqlalchemy_url": url}}
    monkeypatch.setenv("AIRFLOW_CONN_COMPUTE_STATE_DEFAULT", json.dumps(conn))
    return url


@pytest.fixture
def state_store(default_state_url: str) -> Iterator[SqlTenantStateStore]:
    store = SqlTenantStateStore(default_state_url)
    yield store
    store.close()
