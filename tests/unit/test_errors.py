"""The error contract: catalog, model, exceptions and the published schema."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import jsonschema
import pytest
from pydantic import ValidationError

from airflow_compute_provider.errors import (
    CATALOG,
    Classification,
    ComputeConfigError,
    ComputeError,
    ComputeOperationError,
    ErrorCode,
)
from airflow_compute_provider.errors.model import (
    CleanupReport,
    ContainerOutput,
    RootCause,
    UnitReport,
    UnitsReport,
)
from airflow_compute_provider.errors.schema import V1_SCHEMA_FILE, json_schema, published_schema

R, N, M = "retriable", "non_retriable", "requires_manual_intervention"

# The catalog table of DESIGN.md ("The error contract (v1)"), code -> default classification.
DESIGN_CATALOG = {
    "PROVIDER_TEMPORARILY_UNAVAILABLE": R,
    "PROVIDER_THROTTLED": R,
    "PROVIDER_UNREACHABLE": R,
    "INSUFFICIENT_CAPACITY": R,
    "INFRASTRUCTURE_INTERRUPTED": R,
    "IMAGE_PULL_FAILED": R,
    "CONFLICT": R,
    "OPERATION_TIMEOUT": R,
    "QUOTA_EXCEEDED": N,
    "INVALID_CONFIGURATION": N,
    "RESOURCE_NOT_FOUND": N,
    "IMAGE_NOT_FOUND": N,
    "CONTAINER_FAILED": N,
    "OUT_OF_MEMORY": N,
    "CONTAINER_START_FAILED": N,
    "DEADLINE_EXCEEDED": N,
    "CANCELLED": N,
    "PARTIAL_FAILURE": R,  # with no failed units known; otherwise its most severe unit's
    "PERMISSION_DENIED": M,
    "AUTHENTICATION_FAILED": M,
    "CLEANUP_FAILED": M,
    "TENANT_STATE_CONFLICT": M,
    "UNKNOWN_PROVIDER_ERROR": M,
}


def test_catalog_is_exactly_the_design_catalog() -> None:
    assert {c.value for c in ErrorCode} == set(DESIGN_CATALOG)
    assert all(c.name == c.value for c in ErrorCode)
    assert {c.value: e.classification.value for c, e in CATALOG.items()} == DESIGN_CATALOG
    assert all(entry.description for entry in CATALOG.values())


def test_classifications_order_by_severity_not_alphabet() -> None:
    assert [c.value for c in Classification] == [R, N, M]
    assert (
        Classification.RETRIABLE < Classification.NON_RETRIABLE < Classification.REQUIRES_MANUAL_INTERVENTION
    )
    assert max(Classification) is Classification.REQUIRES_MANUAL_INTERVENTION
    assert Classification.most_severe([]) is None


@pytest.mark.parametrize("code", list(ErrorCode))
def test_classification_defaults_from_the_catalog(code: ErrorCode) -> None:
    assert ComputeError(code=code, message="m").classification is CATALOG[code].classification


def test_a_contradicting_classification_is_refused() -> None:
    with pytest.raises(ValidationError, match="contradicts code 'OUT_OF_MEMORY'"):
        ComputeError(code=ErrorCode.OUT_OF_MEMORY, classification=Classification.RETRIABLE, message="m")


def _failed(index: int, code: ErrorCode) -> UnitReport:
    return UnitReport(index=index, resource_id=f"r{index}", error=ComputeError(code=code, message="unit"))


@pytest.mark.parametrize(
    ("unit_codes", "expected"),
    [
        ([ErrorCode.INSUFFICIENT_CAPACITY], R),
        ([ErrorCode.INSUFFICIENT_CAPACITY, ErrorCode.QUOTA_EXCEEDED], N),
        ([ErrorCode.CONTAINER_FAILED, ErrorCode.PERMISSION_DENIED, ErrorCode.PROVIDER_THROTTLED], M),
    ],
)
def test_partial_failure_takes_its_most_severe_failed_unit(
    unit_codes: list[ErrorCode], expected: str
) -> None:
    units = UnitsReport(
        succeeded=[UnitReport(index=0, resource_id="ok")],
        failed=[_failed(i + 1, code) for i, code in enumerate(unit_codes)],
    )
    error = ComputeError(code=ErrorCode.PARTIAL_FAILURE, message="2 of 3", units=units)
    assert error.classification.value == expected
    again = ComputeError.model_validate(json.loads(json.dumps(error.to_json_dict())))
    assert again == error


def test_round_trips_through_json_with_every_field() -> None:
    error = ComputeError(
        code=ErrorCode.PROVIDER_THROTTLED,
        message="Rate exceeded",
        root_cause=RootCause(
            provider="ecs",
            provider_code="ThrottlingException",
            provider_message="Rate exceeded",
            http_status=400,
            request_id="req-1",
            resource_id="arn:aws:ecs:eu-west-1:1:task/c/1",
            exit_code=None,
            reason=None,
        ),
        provider="ecs",
        operation="provision",
        execution_id="dag:run:task:-1",
        tenant_id="acme",
        attempt=2,
        retry_after_seconds=3.5,
        units=UnitsReport(running=[UnitReport(index=0, resource_id="t")]),
        cleanup=CleanupReport(action="left_running", resources=["t"]),
    )
    dumped = error.model_dump(mode="json")
    assert set(dumped) == {
        "schema_version", "code", "classification", "message", "root_cause", "provider", "operation",
        "execution_id", "tenant_id", "attempt", "retry_after_seconds", "occurred_at", "units", "cleanup",
    }  # fmt: skip
    assert ComputeError.model_validate(dumped) == error
    jsonschema.validate(dumped, published_schema())


def test_unknown_fields_and_codes_are_refused() -> None:
    with pytest.raises(ValidationError):
        ComputeError.model_validate({"code": "NOT_A_CODE", "message": "m"})
    with pytest.raises(ValidationError):
        ComputeError.model_validate({"code": "CONFLICT", "message": "m", "colour": "red"})


def test_with_context_fills_only_missing_fields() -> None:
    error = ComputeError(code=ErrorCode.CONFLICT, message="m", tenant_id="acme")
    filled = error.with_context(tenant_id="other", execution_id="e1", attempt=3)
    assert (filled.tenant_id, filled.execution_id, filled.attempt) == ("acme", "e1", 3)


def test_exception_is_one_readable_line_and_survives_pickling() -> None:
    error = ComputeError(code=ErrorCode.QUOTA_EXCEEDED, message="exceeded quota: q1", execution_id="e-7")
    exc = ComputeOperationError(error)
    assert str(exc) == "QUOTA_EXCEEDED (non_retriable): exceeded quota: q1 [execution_id=e-7]"
    assert "\n" not in str(exc)
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is ComputeOperationError
    assert clone.error == error
    path, args, kwargs = exc.serialize()
    assert path.endswith("ComputeOperationError")
    assert ComputeOperationError(*args, **kwargs).error == error


def test_config_error_names_the_argument() -> None:
    exc = ComputeConfigError("must be at least 1, got 0", argument="count")
    assert exc.error.code is ErrorCode.INVALID_CONFIGURATION
    assert exc.argument == "count"
    assert "'count'" in str(exc)
    assert isinstance(exc, ComputeOperationError)
    assert pickle.loads(pickle.dumps(exc)).argument == "count"
    with pytest.raises(ValueError, match="INVALID_CONFIGURATION"):
        ComputeConfigError(ComputeError(code=ErrorCode.CONFLICT, message="m"))


def test_published_schema_matches_the_model() -> None:
    assert published_schema() == json_schema(), (
        "schemas/compute_error.v1.1.json drifted from ComputeError; "
        "run python -m airflow_compute_provider.errors.schema --write"
    )


def test_v1_1_is_additive_an_error_without_output_is_a_v1_error() -> None:
    # v1 readers validate against the v1 schema as first published: an error without container
    # output has exactly v1's fields; v1.1's schema accepts every v1 error.
    v1 = published_schema(V1_SCHEMA_FILE)
    plain = ComputeError(code=ErrorCode.CONTAINER_FAILED, message="exit 1").to_json_dict()
    assert "output" not in plain
    jsonschema.validate(plain, v1)
    jsonschema.validate(plain, published_schema())
    assert v1["$defs"]["ComputeError"]["required"] == published_schema()["$defs"]["ComputeError"]["required"]


def test_v1_1_output_round_trips_and_validates() -> None:
    output = ContainerOutput(container="main", lines=["step 3 of 4", "boom"], truncated=True)
    error = ComputeError(code=ErrorCode.CONTAINER_FAILED, message="exit 1", output=output)
    dumped = json.loads(json.dumps(error.to_json_dict()))
    assert dumped["output"]["lines"] == ["step 3 of 4", "boom"]
    assert dumped["schema_version"] == 1
    jsonschema.validate(dumped, published_schema())
    assert ComputeError.model_validate(dumped) == error
    # a v1.1 error in a unit of a partial failure keeps its lines
    unit = UnitReport(index=1, resource_id="t", error=error)
    partial = ComputeError(code=ErrorCode.PARTIAL_FAILURE, message="1 of 2", units=UnitsReport(failed=[unit]))
    again = ComputeError.model_validate(json.loads(json.dumps(partial.to_json_dict())))
    assert again.units is not None
    assert again.units.failed[0].error == error


def test_importing_the_contract_loads_no_provider_sdk() -> None:
    code = (
        "import sys, airflow_compute_provider.errors;"
        "print(sorted(m for m in ('boto3', 'botocore', 'kubernetes', 'kubernetes_asyncio', 'aiobotocore')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
