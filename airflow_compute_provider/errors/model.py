"""``ComputeError``: the one shape every compute failure takes, whatever the provider.

A ``ComputeError`` is plain data (pydantic, JSON-serializable) so that it can travel through
XCom, the state store and logs unchanged. Its parts:

    ComputeError
     ├── code, classification, message        what happened, and what may be done about it
     ├── root_cause: RootCause                the provider's own words (code, status, ids)
     ├── provider, operation, execution_id,   where it happened
     │   tenant_id, attempt, occurred_at
     ├── retry_after_seconds                  a provider's hint, when it gave one
     ├── units: UnitsReport                   per unit: succeeded / running / failed / pending
     ├── cleanup: CleanupReport               what was done with what had started
     └── output: ContainerOutput              (v1.1, optional) the failed unit's last lines

Contract versions: v1.1 adds ``output`` and nothing else. It is left out of the JSON when
unset, so an error without container output is a v1 error to the byte (``schema_version`` stays
1: v1.1 is additive).

``classification`` is derived from ``code`` (see ``catalog``); for ``PARTIAL_FAILURE`` it is
the most severe classification among the failed units. A payload that states a different
classification is refused, so a stored or received error can always be trusted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from airflow_compute_provider.errors.catalog import CATALOG, Classification, ErrorCode

SCHEMA_VERSION: Literal[1] = 1

CleanupAction = Literal["none", "rolled_back", "marked_for_cleanup", "left_running"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_serialization_defaults_required=True)


class RootCause(_Frozen):
    """The provider's own account of the failure, kept verbatim where it gave one."""

    provider: str | None = Field(None, description="Who reported the failure: ecs, kubernetes, network.")
    provider_code: str | None = Field(None, description="The provider's error code or reason.")
    provider_message: str | None = Field(None, description="The provider's message, as given.")
    http_status: int | None = Field(None, description="HTTP status of the failed API call.")
    request_id: str | None = Field(None, description="The provider's request id, for its support.")
    resource_id: str | None = Field(None, description="The task, pod or other resource concerned.")
    exit_code: int | None = Field(None, description="The container's exit code, when one exited.")
    reason: str | None = Field(None, description="The provider's stop or failure reason.")


class UnitReport(_Frozen):
    """One unit of a multi-unit operation; ``error`` is set for a failed unit."""

    index: int = Field(ge=0)
    resource_id: str | None = None
    error: ComputeError | None = None


class UnitsReport(_Frozen):
    """Every unit of an operation, by where it ended up."""

    succeeded: list[UnitReport] = Field(default_factory=list)
    running: list[UnitReport] = Field(default_factory=list)
    failed: list[UnitReport] = Field(default_factory=list)
    pending: list[UnitReport] = Field(default_factory=list)


class CleanupReport(_Frozen):
    """What happened to the units that had started when the operation failed."""

    action: CleanupAction = "none"
    resources: list[str] = Field(default_factory=list)


class ContainerOutput(_Frozen):
    """The failed unit's last container lines (contract v1.1): bounded, secrets masked.

    ``lines`` are the main container's last lines, oldest first, each cut at a bound and marked
    when cut; ``events`` the pod's last events (Kubernetes, for a pod that never started)."""

    container: str | None = Field(None, description="The container the lines are from.")
    lines: list[str] = Field(default_factory=list, description="Its last lines, oldest first.")
    truncated: bool = Field(False, description="Earlier lines, or parts of lines, were left out.")
    events: list[str] = Field(default_factory=list, description="The unit's last provider events.")


class ComputeError(_Frozen):
    """A normalized compute failure: same fields and codes for every provider."""

    schema_version: Literal[1] = SCHEMA_VERSION
    code: ErrorCode
    classification: Classification = Field(
        None,  # type: ignore[assignment]  # always filled in by _derive_classification
        validate_default=False,
        description="Derived from code; for PARTIAL_FAILURE the most severe failed unit's.",
    )
    message: str
    root_cause: RootCause = Field(default_factory=RootCause)
    provider: str | None = None
    operation: str | None = None
    execution_id: str | None = None
    tenant_id: str | None = None
    attempt: int | None = Field(None, ge=1)
    retry_after_seconds: float | None = Field(None, ge=0)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    units: UnitsReport | None = None
    cleanup: CleanupReport | None = None
    #: v1.1: absent from the JSON when unset, so an error without it reads as v1 everywhere
    output: ContainerOutput | None = Field(
        None,
        exclude_if=lambda value: value is None,
        description="v1.1: the failed unit's last container lines (optional).",
    )

    @model_validator(mode="before")
    @classmethod
    def _derive_classification(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "code" not in data:
            return data
        derived = _classification_for(data["code"], data.get("units"))
        if derived is None:
            return data  # an unknown code: the field validator names it
        given = data.get("classification")
        if given is not None and Classification(given) != derived:
            raise ValueError(
                f"classification {Classification(given).value!r} contradicts code "
                f"{ErrorCode(data['code']).value!r}, which is {derived.value!r}"
            )
        return {**data, "classification": derived}

    @model_validator(mode="after")
    def _utc_timestamp(self) -> Self:
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must carry a time zone")
        return self

    def with_context(self, **context: Any) -> ComputeError:
        """A copy with the operation context filled in (only fields not already set)."""
        updates = {k: v for k, v in context.items() if v is not None and getattr(self, k) is None}
        if not updates:
            return self
        return ComputeError.model_validate({**self.model_dump(), **updates})

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON form, as pushed to XCom and stored."""
        return self.model_dump(mode="json")


def _classification_for(code: Any, units: Any) -> Classification | None:
    try:
        error_code = ErrorCode(code)
    except ValueError:
        return None
    if error_code is not ErrorCode.PARTIAL_FAILURE or units is None:
        return CATALOG[error_code].classification
    failed = units.failed if isinstance(units, UnitsReport) else (units or {}).get("failed", [])
    classes = []
    for unit in failed:
        error = unit.error if isinstance(unit, UnitReport) else (unit or {}).get("error")
        if isinstance(error, ComputeError):
            classes.append(error.classification)
        elif isinstance(error, dict) and "code" in error:
            unit_class = _classification_for(error["code"], error.get("units"))
            if unit_class is not None:
                classes.append(unit_class)
    return Classification.most_severe(classes) or CATALOG[error_code].classification


UnitReport.model_rebuild()
