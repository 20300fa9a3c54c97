"""The lifecycle model (``lifecycle_model.py``), on a budget.

CI runs ``MODEL_EXAMPLES`` examples (default 150, derandomized so every run explores the same
ones); ``make model`` runs a deep, random one (``MODEL_EXAMPLES=20000``). ``MODEL_STEPS`` bounds
the steps of one example (default 30).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.model.harness import model_time
from tests.model.lifecycle_model import LifecycleModel

EXAMPLES = int(os.environ.get("MODEL_EXAMPLES", "150"))
STEPS = int(os.environ.get("MODEL_STEPS", "30"))
DEEP = "MODEL_EXAMPLES" in os.environ


@pytest.mark.timeout(0 if DEEP else 600)  # a deep run takes as long as its budget needs
def test_the_lifecycle_keeps_its_invariants_whatever_airflow_does(tmp_path: Path) -> None:
    # The store is the real SQLite one; on a RAM disk where there is one, since the model makes
    # tens of thousands of transactions and waiting for the disk's fsync adds nothing to it.
    ram = Path("/dev/shm")
    where = Path(tempfile.mkdtemp(dir=ram)) if ram.is_dir() and os.access(ram, os.W_OK) else tmp_path
    LifecycleModel.store_url = f"sqlite:///{where / 'model.db'}"
    LifecycleModel._store = None
    test = LifecycleModel.TestCase
    test.settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        derandomize=not DEEP,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    with model_time():
        try:
            test("runTest").runTest()
        finally:
            if LifecycleModel._store is not None:
                LifecycleModel._store.close()
                LifecycleModel._store = None
            if where != tmp_path:
                shutil.rmtree(where, ignore_errors=True)


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("CRITICAL")
