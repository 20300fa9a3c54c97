"""The lifecycle model (``lifecycle_model.py``), on a budget.

CI runs ``MODEL_EXAMPLES`` examples (default 100: about a minute on a loaded 2-core machine;
derandomized, so every run explores the same ones); ``make model`` runs a deep, random one
(``MODEL_EXAMPLES=20000``). ``MODEL_STEPS`` bounds the steps of one example (default 30).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.model.harness import model_time
from tests.model.lifecycle_model import LifecycleModel

EXAMPLES = int(os.environ.get("MODEL_EXAMPLES", "100"))
STEPS = int(os.environ.get("MODEL_STEPS", "30"))
DEEP = "MODEL_EXAMPLES" in os.environ


@pytest.mark.timeout(0 if DEEP else 600)  # a deep run takes as long as its budget needs
def test_the_lifecycle_keeps_its_invariants_whatever_airflow_does() -> None:
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
        test("runTest").runTest()


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("CRITICAL")
