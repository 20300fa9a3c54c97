"""The fast lifecycle tests' fixtures, and the lifecycle model's closing line.

    store   the tenant state store on a SQLite file of the test's own
    cloud   a ``MemoryCloud`` named after the test

The model's closing line (``lifecycle_model.TALLY``) is printed whenever it ran, in
``tests/model`` alone as in the whole suite (``make test``)::

lifecycle model: <examples> examples, <steps> steps, <violations> violations
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_compute_provider.state import SqlTenantStateStore
from airflow_compute_provider.testing.memory import MemoryCloud
from tests.model.lifecycle_model import TALLY


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlTenantStateStore]:
    s = SqlTenantStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


@pytest.fixture
def cloud(request: pytest.FixtureRequest) -> MemoryCloud:
    return MemoryCloud(request.node.name)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY.ran:
        return
    terminalreporter.section("lifecycle model")
    terminalreporter.write_line(TALLY.coverage())
    terminalreporter.write_line(TALLY.line())
