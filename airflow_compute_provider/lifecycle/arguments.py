"""The arguments of compute operators, each written once: a pydantic model per operator.

``ComputeArguments`` holds the arguments every compute operator takes; a provider operator's
model extends it with its own (``EcsArguments``, ``KubernetesArguments``). A field is one
argument: its type and rule (the annotation, with the state store's own checks where the store
will see the value too, so both refuse exactly the same input), its default, and its meaning
(the description). From the model follow:

    validation      ``validate_arguments``: every field by its own rule, then the model's
                    ``check_together`` for rules across fields; one ``ComputeConfigError``
                    naming the first bad argument, whatever the rule raised
    the defaults    the operators' signatures read them from ``DEFAULTS`` of their model
    the lifecycle   reads the validated model (``Try.args.count``), never string keys
    the reference   ``docs/tables.py`` writes the parameter tables of the docs from the fields

Operators validate twice:

* at DAG parse time, skipping values that are still Jinja templates (``"{{ ... }}"``);
* at the start of ``execute``, after rendering, on every value, into the model the try reads.

so a static mistake fails the DAG import and a templated one fails the task before it touches
the provider or the tenant. The operators' ``__init__`` keep plain keyword arguments (Airflow
applies ``default_args`` by the signature, and editors complete it), with the defaults the
model gives.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from airflow.configuration import conf
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
)
from pydantic.fields import FieldInfo

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.lifecycle.container_logs import (
    DEFAULT_FETCH_INTERVAL,
    DEFAULT_LAST_LINES,
    chosen_containers,
)
from airflow_compute_provider.state import validate as store_checks
from airflow_compute_provider.state.config import DEFAULT_CONN_ID
from airflow_compute_provider.triggers.progress import DEFAULT_PENDING_GRACE_PERIOD

Validator = Callable[[Any], Any]


def _not_a_boolean(value: Any) -> Any:
    """To Python and to pydantic's lax mode True is 1 (one unit, one second), but ``count=True``
    or ``timeout=True`` is a mistake, not a number (the state store refuses them likewise)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number or a duration, not a boolean ({value!r})")
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


NotABoolean = BeforeValidator(_not_a_boolean)
Duration = Annotated[timedelta, NotABoolean, AfterValidator(_positive)]
Seconds = Annotated[float, NotABoolean, Field(gt=0, le=3600)]


def argument(
    default: Any = ...,
    meaning: str = "",
    *,
    shown: str | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A field of an arguments model: its default (``...``: required), what it means, and how
    the reference shows the default when the value alone would not say (``shown``)."""
    extra: dict[str, Any] | None = {"shown": shown} if shown else None
    if factory is not None:
        return Field(default_factory=factory, description=meaning, json_schema_extra=extra)  # type: ignore[arg-type]
    return Field(default, description=meaning, json_schema_extra=extra)  # type: ignore[arg-type]


class ComputeArguments(BaseModel):
    """The arguments every compute operator takes (``BaseComputeOperator``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    tenant_id: Annotated[str, PlainValidator(store_checks.tenant_id)] = argument(
        meaning="whose work this is: 1 to 63 of `a-z`, `0-9`, `-`, starting and ending with a letter or "
        "digit (it becomes tags and labels)",
    )
    operation: Annotated[str, PlainValidator(lambda v: store_checks.text(v, "operation"))] = argument(
        meaning='what the work does (`"provision"`), kept with every try in the state store and in the error',
    )
    count: Annotated[int, NotABoolean, Field(ge=1, le=1000)] = argument(
        1, "how many units (ECS tasks, pods), 1 to 1000, each launched with its own idempotency token"
    )
    wait_for: Literal["completion", "running"] = argument(
        "completion",
        '`"completion"`: every unit exits 0; `"running"`: every unit runs (healthy, or Ready for a pod)',
    )
    timeout: Duration = argument(
        timedelta(hours=1),
        "how long one try waits; then `OPERATION_TIMEOUT`, and the work keeps running; a deferred "
        "try also stops waiting at its start + `execution_timeout`",
    )
    timeout_factor: Annotated[float, NotABoolean, Field(ge=1.0, le=100.0)] | None = argument(
        None,
        "each earlier timed-out try of the execution multiplies `timeout` by it (1 to 100)",
        shown="the policy's, else `1.0`",
    )
    max_timeout: Duration | None = argument(None, "the cap of a grown timeout (not shorter than `timeout`)")
    on_partial_failure: Literal["rollback", "retry_failed"] = argument(
        "rollback", '`"rollback"` stops what started; `"retry_failed"` keeps it for the next try'
    )
    execution_id: Annotated[
        str | None, PlainValidator(lambda v: None if v is None else store_checks.execution_id(v))
    ] = argument(
        None, "the idempotency key: the same on every try", shown="`dag_id:run_id:task_id:map_index`"
    )
    deferrable: bool = argument(
        meaning="wait in the triggerer (`ComputeStatusTrigger`)",
        shown="`[operators] default_deferrable`",
        factory=lambda: conf.getboolean("operators", "default_deferrable", fallback=False),
    )
    poll_interval: Seconds = argument(10.0, "seconds between status polls")
    pending_grace_period: Annotated[timedelta, NotABoolean, Field(ge=timedelta(0))] = argument(
        DEFAULT_PENDING_GRACE_PERIOD,
        "how long a unit may be stuck pending with an error (image pull back-off, unschedulable) "
        "before it counts as failed; at the try's deadline it fails with that error whatever is "
        "left of it",
    )
    on_kill_action: Literal["keep", "stop"] = argument(
        "keep",
        '`"keep"` or `"stop"`: what a kill of the task (worker shutdown, `execution_timeout`) does '
        "to its units",
    )
    state_conn_id: Annotated[str, PlainValidator(lambda v: store_checks.text(v, "state_conn_id"))] = argument(
        DEFAULT_CONN_ID,
        "the tenant state store's connection (any SQLAlchemy URL); without it, SQLite under "
        "`AIRFLOW_HOME` when every executor is local",
    )
    get_logs: bool = argument(
        True,
        "the units' container output in the task log (`[unit N] ...`), and a failed unit's last "
        "lines in its error's `output` ([Container logs](howto/container-logs.md))",
    )
    container_logs: Annotated[list[str] | bool | None, PlainValidator(chosen_containers)] = argument(
        None,
        "a container name, a list of them, or `True` for every container",
        shown="the main container",
    )
    log_lines_on_failure: Annotated[int, NotABoolean, Field(ge=0, le=1000)] = argument(
        DEFAULT_LAST_LINES, "how many of a failed unit's last lines its error carries (0: none)"
    )
    log_fetch_interval: Seconds = argument(
        DEFAULT_FETCH_INTERVAL,
        "seconds between log reads while a blocking try waits (a deferred try reads when it resumes)",
    )

    #: the model's defaults, for the operators' signatures (set for every model class below)
    DEFAULTS: ClassVar[Any]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.DEFAULTS = cls.model_construct()

    @classmethod
    def own_fields(cls) -> list[str]:
        """The arguments a provider operator's model adds to ``ComputeArguments``' own."""
        return [name for name in cls.model_fields if name not in ComputeArguments.model_fields]

    @classmethod
    def check_together(cls, values: Mapping[str, Any]) -> None:
        """Rules across arguments, on validated values (a template still unrendered is skipped)."""
        timeout, cap = values.get("timeout"), values.get("max_timeout")
        if isinstance(timeout, timedelta) and isinstance(cap, timedelta) and cap < timeout:
            raise ComputeConfigError(f"must not be shorter than timeout ({timeout})", argument="max_timeout")

    @classmethod
    def validated(cls, values: Mapping[str, Any]) -> ComputeArguments:
        """The model of rendered ``values``: every argument checked (``validate_arguments``)."""
        return cls.model_construct(**validate_arguments(cls, values, skip_templates=False))


ComputeArguments.DEFAULTS = ComputeArguments.model_construct()


def parameters_doc(model: type[BaseModel], names: Iterable[str], templated: Iterable[str] = ()) -> str:
    """Sphinx ``:param`` lines of ``names`` from ``model``'s fields: an operator's docstring
    lists its parameters from its model."""
    templated = set(templated)
    lines = []
    for name in names:
        info = model.model_fields[name]
        meaning = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", info.description or "").replace("`", "``")
        default = "required" if info.is_required() else f"default {shown_default(info)}".replace("`", "``")
        lines.append(f"    :param {name}: {meaning} ({default}{'; templated' if name in templated else ''}).")
    return "\n".join(lines)


def shown_default(info: FieldInfo) -> str:
    """How the reference shows a field's default: its ``shown`` text, else the value (Markdown)."""
    extra = info.json_schema_extra
    if isinstance(extra, dict) and extra.get("shown"):
        return str(extra["shown"])
    default = info.get_default(call_default_factory=True)
    if default is None:
        return "none"
    if isinstance(default, timedelta):
        return _duration(default)
    return f"`{default!r}`".replace("'", '"')


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


@functools.cache
def _rule(model: type[BaseModel], name: str) -> Validator:
    """The field's own rule, alone: its annotation with the constraints and validators on it."""
    info = model.model_fields[name]
    rule: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return TypeAdapter[Any](rule).validate_python


def valid_or_none(value: Any, name: str, model: type[BaseModel] = ComputeArguments) -> Any:
    """``value`` when it passes its rule, else ``None``: for the context of an error about
    another argument (an error must not carry a rejected value, even as its context)."""
    try:
        return _rule(model, name)(value)
    except (ComputeConfigError, ValidationError, ValueError, TypeError):
        return None


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def validate_arguments(
    model: type[ComputeArguments], values: Mapping[str, Any], *, skip_templates: bool
) -> dict[str, Any]:
    """Validated (and coerced) values of ``model``'s fields; raises ``ComputeConfigError`` for
    the first bad one, in the model's order, then for a broken rule across fields."""
    validated: dict[str, Any] = {}
    for name in model.model_fields:
        if name not in values:
            continue
        value = values[name]
        if skip_templates and is_template(value):
            validated[name] = value  # given, checked once rendered
            continue
        try:
            validated[name] = _rule(model, name)(value)
        except ValidationError as exc:
            raise ComputeConfigError(f"{_first_problem(exc)} (got {_kind(value)})", argument=name) from None
        except (ValueError, TypeError) as exc:
            # The provider operators' own checks (tags, strategies, pod templates) raise plain
            # errors; they are argument errors all the same, and must name the argument. Their
            # text is written here and names the rule, never the value.
            raise ComputeConfigError(f"{exc} (got {_kind(value)})", argument=name) from None
    model.check_together(validated)
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
