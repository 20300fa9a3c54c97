"""``ComputeRetryPolicy``: how a workflow handles compute errors, as an Airflow retry policy.

Airflow 3.3 asks a task's ``retry_policy`` after every failure, on the worker, with the real
exception; the answer (retry after a delay, fail now, or Airflow's default) and its reason are
stored with the task instance. This module plugs into that instead of building a second retry
engine::

    ComputeRetryPolicy(max_attempts=5, initial_delay=timedelta(seconds=10), rules={
        "PROVIDER_THROTTLED": Retry(initial_delay=timedelta(seconds=30)),
        "INVALID_CONFIGURATION": Abort(),
    })

The pieces:

    rules.py               Retry / Abort rules, which one applies to an error, the backoff delay
    ComputeRetryPolicy     evaluate(): exception -> ComputeError -> rule -> RetryDecision;
                           timeout_factor_for() for the operator's timeout growth;
                           serialize() / deserialize()
    attempt_number         which attempt of the execution a try is (clearing restarts the count)
    compute_policies_in    the ComputeRetryPolicies in what the author set (a chain too);
                           the operator wiring (``operators/policy_arguments.py``) sets
                           ``retries`` from them
    operator_aborts        whether the operator fails the task itself: with no policy for a
                           non-retriable error, and before Airflow 3.3 when the policy says FAIL

A RETRY decision cannot outrun the task's ``retries`` (Airflow caps it), which is why the
operator raises ``retries`` to what the policy may need. The policy never raises.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airflow_compute_provider.errors import Classification, ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.policy.rules import (
    Abort,
    Backoff,
    Jitter,
    Retry,
    Rule,
    RuleKey,
    backoff_delay,
    config_error,
    format_seconds,
    match_rule,
    parse_rule_key,
    retry_after_hint,
    rule_of,
)

try:
    from airflow.sdk.definitions.retry_policy import RetryAction, RetryDecision, RetryPolicy

    #: Airflow (3.3+) evaluates ``retry_policy`` itself; before that the operator does
    AIRFLOW_EVALUATES_POLICIES = True
except ImportError:  # Airflow < 3.3
    from airflow_compute_provider.policy.legacy import (  # type: ignore[assignment]
        RetryAction,
        RetryDecision,
        RetryPolicy,
    )

    AIRFLOW_EVALUATES_POLICIES = False

log = logging.getLogger(__name__)

SERIALIZATION_VERSION = 1


class _PolicySpec(BaseModel):
    """The validated settings of a policy; rules are keyed by the code's or classification's value."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_timedelta="float")

    max_attempts: int = Field(3, ge=1)
    initial_delay: timedelta = Field(timedelta(seconds=10), ge=timedelta(0))
    backoff: float = Field(2.0, ge=1.0)
    max_delay: timedelta = Field(timedelta(minutes=10), ge=timedelta(0))
    jitter: Jitter = "full"
    timeout_factor: float = Field(1.0, ge=1.0)
    rules: dict[str, Annotated[Retry | Abort, Field(discriminator="action")]] = Field(default_factory=dict)


class ComputeRetryPolicy(RetryPolicy):
    """Retry compute failures by code and classification; abort the ones no retry can fix.

    :param max_attempts: tries in all, the first included (``max_attempts=1`` never retries).
    :param initial_delay: delay after the first failed try.
    :param backoff: each further failed try multiplies the delay by this.
    :param max_delay: the delay never exceeds this, before jitter (a provider's ``Retry-After``
        hint may still ask for longer, and is honoured).
    :param jitter: ``"full"`` (uniform in ``[0, delay]``), ``"equal"`` (``[delay/2, delay]``)
        or ``"none"``.
    :param timeout_factor: each earlier try of the execution that timed out multiplies the
        operation timeout by this.
    :param rules: ``{code or classification: Retry(...) | Abort()}``. A code rule beats a
        classification rule, which beats the defaults: retriable codes retry, the others abort.
    :param rng: the random source of jitter (tests pass a seeded one); not serialized.
    """

    def __init__(
        self,
        *,
        max_attempts: int = 3,
        initial_delay: timedelta | float = timedelta(seconds=10),
        backoff: float = 2.0,
        max_delay: timedelta | float = timedelta(minutes=10),
        jitter: Jitter = "full",
        timeout_factor: float = 1.0,
        rules: Mapping[str | RuleKey, Rule | Mapping[str, Any]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        keyed: dict[str, Rule] = {}
        for key, rule in (rules or {}).items():
            name = parse_rule_key(key).value
            keyed[name] = rule_of(rule, f"rules.{name}")
        try:
            self._spec = _PolicySpec(
                max_attempts=max_attempts,
                initial_delay=initial_delay,  # type: ignore[arg-type]
                backoff=backoff,
                max_delay=max_delay,  # type: ignore[arg-type]
                jitter=jitter,
                timeout_factor=timeout_factor,
                rules=keyed,  # type: ignore[arg-type]
            )
        except ValidationError as exc:
            raise config_error(exc) from None
        self._rules: Mapping[RuleKey, Rule] = MappingProxyType(
            {parse_rule_key(key): rule for key, rule in self._spec.rules.items()}
        )
        s = self._spec
        self._defaults = Backoff(
            s.max_attempts, s.initial_delay, s.backoff, s.max_delay, s.jitter, s.timeout_factor
        )
        self._rng = rng or random.Random()

    # -- settings, read-only --------------------------------------------------------------------

    @property
    def max_attempts(self) -> int:
        return self._spec.max_attempts

    @property
    def initial_delay(self) -> timedelta:
        return self._spec.initial_delay

    @property
    def backoff(self) -> float:
        return self._spec.backoff

    @property
    def max_delay(self) -> timedelta:
        return self._spec.max_delay

    @property
    def jitter(self) -> Jitter:
        return self._spec.jitter

    @property
    def timeout_factor(self) -> float:
        return self._spec.timeout_factor

    @property
    def rules(self) -> Mapping[RuleKey, Rule]:
        return self._rules

    # -- Airflow's interface --------------------------------------------------------------------

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Any = None,
    ) -> RetryDecision:
        """Airflow's question after a failed try. Never raises: anything unexpected is DEFAULT."""
        if not isinstance(exception, ComputeOperationError):
            return RetryDecision(
                action=RetryAction.DEFAULT,
                reason=f"not a compute error ({type(exception).__name__}): the task's retries apply",
            )
        try:
            attempt = attempt_number(try_number, max_tries, task_retries(context))
            # Airflow retries a try only while try_number <= max_tries; past that, say so.
            return self.decide(exception.error, attempt, retries_left=try_number <= max_tries)
        except Exception:
            log.exception("ComputeRetryPolicy could not decide; Airflow's default applies")
            return RetryDecision.default()

    def decide(self, error: ComputeError, attempt: int, *, retries_left: bool = True) -> RetryDecision:
        """The decision for ``error`` on ``attempt`` (1-based, counted within the execution)."""
        match = match_rule(self._rules, error)
        head = f"{error.code.value} ({error.classification.value}): attempt {attempt}"
        if isinstance(match.rule, Abort):
            if match.key is None:
                why = f"not retried ({error.classification.value} errors abort by default)"
            else:
                why = f"aborted{f': {match.rule.reason}' if match.rule.reason else ''}"
            return RetryDecision.fail(f"{head}, {why}{match.describe()}")
        settings = self._defaults.overridden_by(match.rule)
        head = f"{head} of {settings.max_attempts}"
        if attempt >= settings.max_attempts:
            return RetryDecision.fail(f"{head}, no attempts left{match.describe()}")
        if not retries_left:
            return RetryDecision.fail(f"{head}, but the task's retries are used up{match.describe()}")
        delay = backoff_delay(settings, attempt, retry_after_hint(error), self._rng)
        return RetryDecision.retry(delay, f"{head}, next in {format_seconds(delay)}{match.describe()}")

    # -- what the operator asks -----------------------------------------------------------------

    def timeout_factor_for(self, code: ErrorCode | str) -> float:
        """How much longer each try's operation timeout grows after a try that ended in ``code``."""
        error_code = ErrorCode(code)
        rule = self._rules.get(error_code) or self._rules.get(error_code.classification)
        if isinstance(rule, Retry) and rule.timeout_factor is not None:
            return rule.timeout_factor
        return self._spec.timeout_factor

    def required_retries(self) -> int:
        """The ``retries`` the task needs so that no rule is cut short by Airflow's cap."""
        attempts = [self.max_attempts]
        attempts += [r.max_attempts for r in self._rules.values() if isinstance(r, Retry) and r.max_attempts]
        return max(attempts) - 1

    # -- serialization --------------------------------------------------------------------------

    def serialize(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "__type": f"{type(self).__module__}.{type(self).__qualname__}",
            "__version": SERIALIZATION_VERSION,
        }
        data.update(self._spec.model_dump(mode="json", exclude_none=True))
        return data

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> ComputeRetryPolicy:
        settings = {k: v for k, v in data.items() if not k.startswith("__")}
        version = data.get("__version", SERIALIZATION_VERSION)
        if version != SERIALIZATION_VERSION:
            raise ValueError(f"unknown ComputeRetryPolicy serialization version {version!r}")
        return cls(**settings)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ComputeRetryPolicy):
            return NotImplemented
        return self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash(json.dumps(self.serialize(), sort_keys=True))

    def __repr__(self) -> str:
        s = self._spec
        rules = {key: rule.model_dump(mode="json", exclude_none=True) for key, rule in s.rules.items()}
        return (
            f"ComputeRetryPolicy(max_attempts={s.max_attempts}, initial_delay={s.initial_delay}, "
            f"backoff={s.backoff}, max_delay={s.max_delay}, jitter={s.jitter!r}, "
            f"timeout_factor={s.timeout_factor}, rules={rules})"
        )


# -- counting attempts ---------------------------------------------------------------------------


def attempt_number(try_number: int, max_tries: int, retries: int | None) -> int:
    """The attempt within the execution: ``try_number - (max_tries - retries)``.

    ``try_number`` keeps growing when a task is cleared, and clearing raises ``max_tries`` to
    ``try_number + retries``; the difference is the tries before the latest clear. With the
    task's ``retries`` unknown, or a ``max_tries`` that cannot be right, it is ``try_number``.
    """
    if retries is None or max_tries < retries:
        return max(1, try_number)
    return max(1, try_number - (max_tries - retries))


def task_retries(context: Any) -> int | None:
    """The task's ``retries``, from the Airflow context (``None`` without one)."""
    if not context:
        return None
    task = context.get("task") or getattr(context.get("ti"), "task", None)
    retries = getattr(task, "retries", None)
    return retries if isinstance(retries, int) else None


# -- finding our policy in whatever the author set -----------------------------------------------


def compute_policies_in(policy: Any) -> list[ComputeRetryPolicy]:
    """The ComputeRetryPolicies in ``policy``: itself, or those inside a ChainRetryPolicy."""
    if isinstance(policy, ComputeRetryPolicy):
        return [policy]
    inner = getattr(policy, "policies", None)
    if not isinstance(inner, list | tuple):
        return []
    return [found for p in inner for found in compute_policies_in(p)]


def find_compute_policy(policy: Any) -> ComputeRetryPolicy | None:
    """The first ComputeRetryPolicy in ``policy`` (see ``compute_policies_in``)."""
    found = compute_policies_in(policy)
    return found[0] if found else None


# -- what the operator wiring warns with (operators/policy_arguments.py) ------------------------


class ComputeRetryPolicyWarning(UserWarning):
    """A DAG's settings would cut a ComputeRetryPolicy short; shown as a DAG import warning."""


def operator_aborts(
    error: ComputeError,
    retry_policy: Any,
    context: Any = None,
    *,
    airflow_evaluates: bool = AIRFLOW_EVALUATES_POLICIES,
) -> bool:
    """Whether the operator must fail the task itself (``AirflowFailException``), no retry.

    - no retry policy: non-retriable and manual errors fail at once, as no retry fixes them;
    - Airflow 3.3+ with a policy: never; the policy decides, and AirflowFailException would
      bypass it;
    - before 3.3 with a ComputeRetryPolicy: the policy decides here, and FAIL aborts; a RETRY
      waits out Airflow's own ``retry_delay`` (the policy's delay has nowhere to go).
    """
    if retry_policy is not None and airflow_evaluates:
        return False
    policy = find_compute_policy(retry_policy)
    if policy is None:
        return error.classification is not Classification.RETRIABLE
    ti = context.get("ti") if context else None
    try_number = int(getattr(ti, "try_number", None) or error.attempt or 1)
    max_tries = getattr(ti, "max_tries", None)
    if not isinstance(max_tries, int):
        decision = policy.decide(error, try_number)
    else:
        attempt = attempt_number(try_number, max_tries, task_retries(context))
        decision = policy.decide(error, attempt, retries_left=try_number <= max_tries)
    log.info("ComputeRetryPolicy decided in the operator: %s", decision.reason)
    return bool(decision.action is RetryAction.FAIL)


__all__ = [
    "AIRFLOW_EVALUATES_POLICIES",
    "Abort",
    "ComputeRetryPolicy",
    "ComputeRetryPolicyWarning",
    "Retry",
    "attempt_number",
    "compute_policies_in",
    "find_compute_policy",
    "operator_aborts",
    "task_retries",
]
