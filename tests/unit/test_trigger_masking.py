"""``triggers/masking.py`` on its own: what a triggerer process masks once a trigger brought its
secrets (the process-level test with a real endpoint is tests/distributed/test_triggerer_masking.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.observability import secret_values
from airflow_compute_provider.triggers import masking
from airflow_compute_provider.triggers.status import ComputeStatusTrigger


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    masking.forget_all()
    yield
    masking.forget_all()


def test_a_launch_requests_secret_values_are_its_env_values_and_secret_keys() -> None:
    request = {
        "overrides": {"containerOverrides": [{"environment": [{"name": "A", "value": "envvalue1"}]}]},
        "env_vars": {"B": "envvalue2"},
        "registry": {"password": "tokenvalue"},
        "cluster": "not-a-secret",
    }
    assert secret_values(request) == ["envvalue1", "envvalue2", "tokenvalue"]


def test_remembered_values_are_masked_in_text_errors_and_payloads() -> None:
    masking.remember(["s3cretvalue", "s3cretvalue-longer", "ab"])  # "ab": too short to mask by value
    assert masking.mask_text("x s3cretvalue-longer y s3cretvalue ab") == "x *** y *** ab"
    error = ComputeError(code=ErrorCode.PERMISSION_DENIED, message="denied: TOKEN=s3cretvalue")
    assert masking.mask_error(error).message == "denied: TOKEN=***"
    assert masking.mask_payload([{"error": {"message": "s3cretvalue"}}]) == [{"error": {"message": "***"}}]


def test_the_trigger_carries_its_secrets_but_its_repr_does_not_show_them() -> None:
    trigger = ComputeStatusTrigger(
        provider="ecs",
        backend_config={"cluster": "c"},
        units=[],
        deadline=datetime.now(UTC).isoformat(),
        secrets=["s3cretvalue"],
    )
    _, kwargs = trigger.serialize()
    assert kwargs["secrets"] == ["s3cretvalue"]
    assert ComputeStatusTrigger(**kwargs).secrets == ["s3cretvalue"]
    assert "s3cretvalue" not in repr(trigger)
