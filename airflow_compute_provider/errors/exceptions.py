"""The exceptions that carry a ``ComputeError`` out of hooks and operators.

    AirflowException                      (airflow.sdk.exceptions)
     └── ComputeOperationError            any compute failure; ``.error`` is the ComputeError
          └── ComputeConfigError          an argument failed validation (INVALID_CONFIGURATION)

Both survive pickling and Airflow's exception serialization with their ``ComputeError``
intact, because retry policies and failure callbacks read it after the task raised.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowException

from airflow_compute_provider.errors.catalog import ErrorCode
from airflow_compute_provider.errors.model import ComputeError, RootCause


class ComputeOperationError(AirflowException):
    """A compute operation failed; ``error`` says how, as data."""

    def __init__(self, error: ComputeError | dict[str, Any]) -> None:
        self.error = error if isinstance(error, ComputeError) else ComputeError.model_validate(error)
        super().__init__(self._one_line())

    def _one_line(self) -> str:
        e = self.error
        where = f" [execution_id={e.execution_id}]" if e.execution_id else ""
        return f"{e.code.value} ({e.classification.value}): {e.message}{where}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.error.to_json_dict()))

    def serialize(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        cls = type(self)
        return f"{cls.__module__}.{cls.__name__}", (), {"error": self.error.to_json_dict()}


class ComputeConfigError(ComputeOperationError):
    """An argument is invalid; raised before any provider call, naming the argument."""

    def __init__(
        self,
        error: ComputeError | dict[str, Any] | str,
        *,
        argument: str | None = None,
    ) -> None:
        if isinstance(error, str):
            message = f"invalid argument {argument!r}: {error}" if argument else error
            error = ComputeError(
                code=ErrorCode.INVALID_CONFIGURATION,
                message=message,
                root_cause=RootCause(provider="airflow-compute-provider", reason=argument),
            )
        super().__init__(error)
        if self.error.code is not ErrorCode.INVALID_CONFIGURATION:
            raise ValueError("ComputeConfigError always carries INVALID_CONFIGURATION")
        self.argument = argument if argument is not None else self.error.root_cause.reason


def _rebuild(cls: type[ComputeOperationError], error: dict[str, Any]) -> ComputeOperationError:
    return cls(error)
