"""Argument validation for compute operators, before any provider call.

Each argument has a validator (``ARGUMENT_TYPES`` for the common ones; provider operators
add theirs): a pydantic ``TypeAdapter``'s ``validate_python``, or one of the state store's own
checks where the store will see the value too, so both refuse exactly the same input.
``validate_arguments`` checks every argument it is given and raises one
``ComputeConfigError`` naming the first bad one, whatever the validator raised (pydantic's
``ValidationError``, or a plain ``ValueError`` / ``TypeError`` from a hand-written check).
Operators call it twice:

* at DAG parse time, skipping values that are still Jinja templates (``"{{ ... }}"``);
* at the start of ``execute``, after rendering, on every value.

so a static mistake fails the DAG import and a templated one fails the task before it touches
the provider or the tenant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.state import validate as store_checks

Validator = Callable[[Any], Any]


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


def _optional(check: Validator) -> Validator:
    return lambda value: None if value is None else check(value)


def typed(annotation: Any) -> Validator:
    """A validator from a type annotation (pydantic's lax coercion: "3" is a fine count)."""
    return TypeAdapter(annotation).validate_python


def no_booleans(check: Validator) -> Validator:
    """``check``, refusing booleans first: to Python and to pydantic's lax mode True is 1 (one
    unit, one second), but ``count=True`` or ``timeout=True`` is a mistake, not a number (the
    state store refuses them likewise)."""

    def validate(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"must be a number or a duration, not a boolean ({value!r})")
        return check(value)

    return validate


Duration = Annotated[timedelta, AfterValidator(_positive)]

ARGUMENT_TYPES: Mapping[str, Validator] = {
    "tenant_id": store_checks.tenant_id,
    "operation": lambda value: store_checks.text(value, "operation"),
    "execution_id": _optional(store_checks.execution_id),
    "count": no_booleans(typed(Annotated[int, Field(ge=1, le=1000)])),
    "wait_for": typed(Literal["completion", "running"]),
    "timeout": no_booleans(typed(Duration)),
    "timeout_factor": no_booleans(typed(Annotated[float, Field(ge=1.0, le=100.0)])),
    "max_timeout": no_booleans(typed(Duration | None)),
    "on_partial_failure": typed(Literal["rollback", "retry_failed"]),
    "on_kill_action": typed(Literal["keep", "stop"]),
    "poll_interval": no_booleans(typed(Annotated[float, Field(gt=0, le=3600)])),
    "pending_grace_period": no_booleans(typed(Annotated[timedelta, Field(ge=timedelta(0))])),
    "state_conn_id": lambda value: store_checks.text(value, "state_conn_id"),
}


def valid_or_none(value: Any, argument: str) -> Any:
    """``value`` when it passes its check, else ``None``: for the context of an error about
    another argument (an error must not carry a rejected value, even as its context)."""
    try:
        return ARGUMENT_TYPES[argument](value)
    except (ComputeConfigError, ValidationError, ValueError, TypeError):
        return None


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def validate_arguments(
    values: Mapping[str, Any],
    types: Mapping[str, Validator],
    *,
    skip_templates: bool,
) -> dict[str, Any]:
    """Validated (and coerced) values; raises ``ComputeConfigError`` for the first bad one."""
    validated: dict[str, Any] = {}
    for name, value in values.items():
        if skip_templates and is_template(value):
            validated[name] = value
            continue
        check = types.get(name)
        if check is None:
            validated[name] = value
            continue
        try:
            validated[name] = check(value)
        except ValidationError as exc:
            raise ComputeConfigError(f"{_first_problem(exc)} (got {_kind(value)})", argument=name) from None
        except (ValueError, TypeError) as exc:
            # The provider operators' own checks (tags, strategies, pod templates) raise plain
            # errors; they are argument errors all the same, and must name the argument. Their
            # text is written here and names the rule, never the value.
            raise ComputeConfigError(f"{exc} (got {_kind(value)})", argument=name) from None
    return validated


# A rejected value is never part of the message: the message reaches XCom, the state store and
# the log before Airflow's masker sees it, and the value may be an env var, a pod template, an
# override or a connection field holding a secret. The rule, where in the value, and its type
# say enough to find the mistake in the DAG file.


def _first_problem(exc: ValidationError) -> str:
    """Pydantic's rule (its messages name what was expected, not the input) and where in the
    value it failed (keys and positions, e.g. ``containerOverrides.0.cpu``)."""
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "is not valid"
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _kind(value: Any) -> str:
    """The value's type, and its length for a sized one: never the value itself."""
    kind = type(value).__name__
    try:
        return f"a {kind} of length {len(value)}"
    except TypeError:
        return f"a {kind}"
