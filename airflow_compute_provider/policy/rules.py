"""The rules of a ``ComputeRetryPolicy``: what one code or classification gets, and how long to wait.

    Retry(...)       retry with backoff; every field left out is the policy's own
    Abort(...)       fail the task at once
    parse_rule_key   "OPERATION_TIMEOUT" -> ErrorCode, "retriable" -> Classification
    Backoff          a Retry with every field filled in from the policy's defaults
    match_rule       which rule applies to a ComputeError (code, then classification, then the
                     defaults; PARTIAL_FAILURE first tries itself, then its most severe unit's code)
    backoff_delay    how long until the next try: exponential, capped, jittered, and never
                     shorter than the provider's own retry-after hint

Everything here is pure: no Airflow, no I/O, randomness comes in as an argument. ``policy/__init__.py``
turns a match and a delay into Airflow's ``RetryDecision``.
"""

from __future__ import annotations

import difflib
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from airflow_compute_provider.errors import Classification, ComputeConfigError, ComputeError, ErrorCode

Jitter = Literal["full", "equal", "none"]
RuleKey = ErrorCode | Classification


def config_error(exc: ValidationError, *, prefix: str = "") -> ComputeConfigError:
    """A pydantic failure as the ComputeConfigError DAG authors see, naming the argument."""

    def path(loc: tuple[Any, ...]) -> str:
        return ".".join(str(part) for part in (prefix, *loc) if part != "")

    def text(error: Any) -> str:
        # A validator's own ValueError reads better without pydantic's "Value error, " prefix.
        if error["type"] == "value_error" and "error" in error.get("ctx", {}):
            return str(error["ctx"]["error"])
        return str(error["msg"])

    errors = exc.errors()
    if len(errors) == 1:
        message = text(errors[0])
    else:
        message = "; ".join(f"{path(e['loc'])}: {text(e)}" for e in errors)
    return ComputeConfigError(message, argument=path(errors[0]["loc"]) or None)


class _Rule(BaseModel):
    # Delays travel as seconds in serialize(); pydantic reads numbers as seconds as well.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_timedelta="float")

    def __init__(self, **data: Any) -> None:
        # A rule is built in a DAG file: a mistake must read like every other argument error.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc, prefix=type(self).__name__) from None


def _non_negative(value: timedelta | None) -> timedelta | None:
    if value is not None and value < timedelta(0):
        raise ValueError(f"must not be negative, got {value.total_seconds():g}s")
    return value


class Retry(_Rule):
    """Retry this code or classification; each field left out is the policy's.

    ``max_attempts`` counts tries: ``Retry(max_attempts=2)`` fails the second failure.
    ``timeout_factor`` multiplies the operation timeout for each earlier try that timed out.
    """

    action: Literal["retry"] = "retry"
    max_attempts: int | None = Field(None, ge=1)
    initial_delay: timedelta | None = None
    backoff: float | None = Field(None, ge=1.0)
    max_delay: timedelta | None = None
    jitter: Jitter | None = None
    timeout_factor: float | None = Field(None, ge=1.0)

    @field_validator("initial_delay", "max_delay")
    @classmethod
    def delays_not_negative(cls, value: timedelta | None) -> timedelta | None:
        return _non_negative(value)


class Abort(_Rule):
    """Fail the task at once, whatever attempts are left."""

    action: Literal["abort"] = "abort"
    reason: str | None = Field(None, description="Added to the decision's reason.")


Rule = Retry | Abort

_RULE: TypeAdapter[Rule] = TypeAdapter(Annotated[Retry | Abort, Field(discriminator="action")])


def rule_of(value: Any, argument: str) -> Rule:
    """A rule as ``Retry`` / ``Abort``, given as one or as its mapping (``{"action": "retry",
    ...}``); a bad one is a ComputeConfigError naming where it sits (``rules.OOM.max_attempts``),
    not the class the mapping would have become (``Retry.max_attempts``)."""
    if isinstance(value, Retry | Abort):
        return value
    try:
        return _RULE.validate_python(value)
    except ValidationError as exc:
        raise config_error(exc, prefix=argument) from None
    except ComputeConfigError as exc:  # raised by the rule's own __init__, named after its class
        field = (exc.argument or "").partition(".")[2]
        detail = exc.error.message.removeprefix(f"invalid argument {exc.argument!r}: ")
        raise ComputeConfigError(detail, argument=f"{argument}.{field}" if field else argument) from None


@dataclass(frozen=True)
class Backoff:
    """A ``Retry`` with the policy's defaults filled in: every value concrete."""

    max_attempts: int
    initial_delay: timedelta
    backoff: float
    max_delay: timedelta
    jitter: Jitter
    timeout_factor: float

    def overridden_by(self, rule: Retry) -> Backoff:
        given = rule.model_dump(exclude={"action"}, exclude_none=True)
        return Backoff(**{**self.__dict__, **given})


def parse_rule_key(key: object, *, argument: str = "rules") -> RuleKey:
    """A rule's key: an error code ("PROVIDER_THROTTLED") or a classification ("retriable")."""
    if isinstance(key, ErrorCode | Classification):
        return key
    text = str(key)
    if text in ErrorCode.__members__:
        return ErrorCode(text)
    if text in {c.value for c in Classification}:
        return Classification(text)
    known = [*ErrorCode.__members__, *(c.value for c in Classification)]
    close = difflib.get_close_matches(text, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ComputeConfigError(
        f"{text!r} is neither an error code nor a classification{hint}; "
        f"classifications are {', '.join(c.value for c in Classification)}",
        argument=argument,
    )


@dataclass(frozen=True)
class Match:
    """The rule that applies to one error, and how it was found (for the decision's reason)."""

    rule: Rule
    #: the key of the author's rule that matched, ``None`` for the defaults
    key: RuleKey | None
    #: the failed unit whose code matched, for a PARTIAL_FAILURE
    unit_index: int | None = None

    def describe(self) -> str:
        if self.key is None:
            return ""
        where = f" of failed unit {self.unit_index}" if self.unit_index is not None else ""
        return f"; rule {self.key.value}{where}"


def match_rule(rules: Mapping[RuleKey, Rule], error: ComputeError) -> Match:
    """A code rule beats a classification rule, which beats the defaults (retriable codes
    retry, the others abort). A PARTIAL_FAILURE tries its own code first, then the code of its
    most severe failed unit (the first such unit that has a rule), then its classification."""
    if error.code in rules:
        return Match(rules[error.code], error.code)
    if error.code is ErrorCode.PARTIAL_FAILURE and error.units is not None:
        for index, unit_error in _most_severe_units(error):
            if unit_error.code in rules:
                return Match(rules[unit_error.code], unit_error.code, unit_index=index)
    if error.classification in rules:
        return Match(rules[error.classification], error.classification)
    if error.classification is Classification.RETRIABLE:
        return Match(Retry(), None)
    return Match(Abort(), None)


def _most_severe_units(error: ComputeError) -> list[tuple[int, ComputeError]]:
    assert error.units is not None
    failed = sorted(
        ((u.index, u.error) for u in error.units.failed if u.error is not None), key=lambda p: p[0]
    )
    worst = Classification.most_severe(e.classification for _, e in failed)
    return [(i, e) for i, e in failed if e.classification is worst]


def retry_after_hint(error: ComputeError) -> float | None:
    """The provider's retry-after hint: the error's own, or the longest a failed unit carries."""
    hints = [error.retry_after_seconds]
    if error.units is not None:
        hints += [u.error.retry_after_seconds for u in error.units.failed if u.error is not None]
    given = [h for h in hints if h is not None]
    return max(given) if given else None


def backoff_delay(backoff: Backoff, attempt: int, retry_after: float | None, rng: random.Random) -> timedelta:
    """``max(jitter(min(max_delay, initial_delay * backoff ** (attempt - 1))), retry_after)``.

    ``attempt`` is the try that just failed (1-based). ``full`` jitter draws from
    ``[0, d]``, ``equal`` from ``[d/2, d]``, ``none`` is ``d``.
    """
    initial = backoff.initial_delay.total_seconds()
    cap = backoff.max_delay.total_seconds()
    try:
        grown = initial * backoff.backoff ** (attempt - 1)
    except OverflowError:
        grown = math.inf
    capped = min(cap, grown)
    if backoff.jitter == "full":
        jittered = rng.uniform(0.0, capped)
    elif backoff.jitter == "equal":
        jittered = capped / 2 + rng.uniform(0.0, capped / 2)
    else:
        jittered = capped
    return timedelta(seconds=max(jittered, retry_after or 0.0))


def format_seconds(delay: timedelta) -> str:
    """40s, 2.5s, 3m20s: short enough for the 500 characters Airflow keeps of a reason."""
    seconds = delay.total_seconds()
    if seconds < 10:
        return f"{seconds:.1f}s".replace(".0s", "s")
    whole = round(seconds)
    minutes, rest = divmod(whole, 60)
    if not minutes:
        return f"{rest}s"
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    return f"{hours}h{minutes:02d}m"


__all__ = [
    "Abort",
    "Backoff",
    "Jitter",
    "Match",
    "Retry",
    "Rule",
    "RuleKey",
    "backoff_delay",
    "config_error",
    "format_seconds",
    "match_rule",
    "parse_rule_key",
    "retry_after_hint",
    "rule_of",
]
