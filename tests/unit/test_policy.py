"""ComputeRetryPolicy: every decision path, the backoff, serialization, composition, and how the
compute operator takes its ``retries`` from the policy (no servers; real Airflow objects)."""

from __future__ import annotations

import json
import random
import types
import warnings
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import ChainRetryPolicy
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, ExceptionRetryPolicy, RetryAction, RetryDecision, RetryRule

from airflow_compute_provider.errors import (
    Classification,
    ComputeConfigError,
    ComputeError,
    ComputeOperationError,
    ErrorCode,
)
from airflow_compute_provider.errors.model import UnitReport, UnitsReport
from airflow_compute_provider.operators.base import ComputeTaskAborted
from airflow_compute_provider.operators.ecs import EcsComputeOperator
from airflow_compute_provider.operators.policy_arguments import apply_policy_arguments, take_policy_arguments
from airflow_compute_provider.policy import (
    Abort,
    ComputeRetryPolicy,
    ComputeRetryPolicyWarning,
    Retry,
    attempt_number,
    compute_policies_in,
    operator_aborts,
)
from airflow_compute_provider.policy.rules import Backoff, backoff_delay, format_seconds

R = RetryAction.RETRY
F = RetryAction.FAIL
D = RetryAction.DEFAULT


def err(code: str, *, retry_after: float | None = None, units: UnitsReport | None = None) -> ComputeError:
    return ComputeError(
        code=ErrorCode(code), message=f"{code} happened", retry_after_seconds=retry_after, units=units
    )


def exc(code: str, **kw: Any) -> ComputeOperationError:
    return ComputeOperationError(err(code, **kw))


def exact(**kw: Any) -> ComputeRetryPolicy:
    """A policy without jitter, so delays are exact."""
    settings: dict[str, Any] = {"initial_delay": timedelta(seconds=10), "backoff": 2.0, "jitter": "none"}
    settings.update(kw)
    return ComputeRetryPolicy(**settings)


def task_context(retries: int) -> dict[str, Any]:
    """The part of Airflow's context the policy reads: the task, as the worker holds it."""
    return {"task": EmptyOperator(task_id="t", retries=retries)}


# -- which rule decides ----------------------------------------------------------------------------

DECISIONS = [
    # (id, policy rules, code, try_number, max_tries, action, reason contains)
    ("retriable default retries", {}, "PROVIDER_UNREACHABLE", 1, 4, R, "attempt 1 of 3, next in 10s"),
    ("non-retriable default aborts", {}, "QUOTA_EXCEEDED", 1, 4, F, "non_retriable errors abort by default"),
    ("manual default aborts", {}, "PERMISSION_DENIED", 1, 4, F, "requires_manual_intervention errors abort"),
    (
        "code rule beats classification rule",
        {"retriable": Abort(), "PROVIDER_THROTTLED": Retry(initial_delay=timedelta(seconds=30))},
        "PROVIDER_THROTTLED",
        1,
        4,
        R,
        "next in 30s; rule PROVIDER_THROTTLED",
    ),
    (
        "classification rule applies to other codes",
        {"retriable": Abort(reason="fail fast in staging"), "PROVIDER_THROTTLED": Retry()},
        "CONFLICT",
        1,
        4,
        F,
        "aborted: fail fast in staging; rule retriable",
    ),
    (
        "classification rule beats the defaults",
        {"non_retriable": Retry(max_attempts=4)},
        "QUOTA_EXCEEDED",
        2,
        4,
        R,
        "attempt 2 of 4, next in 20s; rule non_retriable",
    ),
    ("code Abort on a retriable code", {"CONFLICT": Abort()}, "CONFLICT", 1, 4, F, "aborted; rule CONFLICT"),
    (
        "Retry(max_attempts=2) retries the first failure",
        {"CONTAINER_FAILED": Retry(max_attempts=2)},
        "CONTAINER_FAILED",
        1,
        4,
        R,
        "CONTAINER_FAILED (non_retriable): attempt 1 of 2, next in 10s",
    ),
    (
        "Retry(max_attempts=2) fails the second failure",
        {"CONTAINER_FAILED": Retry(max_attempts=2)},
        "CONTAINER_FAILED",
        2,
        4,
        F,
        "attempt 2 of 2, no attempts left; rule CONTAINER_FAILED",
    ),
    ("policy attempts exhausted", {}, "PROVIDER_UNREACHABLE", 3, 4, F, "attempt 3 of 3, no attempts left"),
    (
        "the task's retries run out first",
        {},
        "PROVIDER_UNREACHABLE",
        2,
        1,
        F,
        "attempt 2 of 3, but the task's retries are used up",
    ),
    ("manual classification rule", {"requires_manual_intervention": Retry()}, "CLEANUP_FAILED", 1, 4, R, ""),
]


@pytest.mark.parametrize("case", DECISIONS, ids=[d[0] for d in DECISIONS])
def test_decisions(case: tuple[Any, ...]) -> None:
    _, rules, code, try_number, max_tries, action, reason = case
    decision = exact(rules=rules).evaluate(exc(code), try_number, max_tries, task_context(max_tries))
    assert decision.action is action
    assert reason in (decision.reason or "")
    assert decision.reason is not None
    assert decision.reason.startswith(code)
    assert (decision.retry_delay is not None) is (action is R)


def test_issue_example_reason_names_code_classification_attempt_and_delay() -> None:
    policy = ComputeRetryPolicy(
        max_attempts=5,
        initial_delay=timedelta(seconds=10),
        backoff=2.0,
        jitter="none",
        rules={"PROVIDER_THROTTLED": Retry(initial_delay=timedelta(seconds=20))},
    )
    decision = policy.evaluate(exc("PROVIDER_THROTTLED"), 2, 4, task_context(4))
    assert (
        decision.reason
        == "PROVIDER_THROTTLED (retriable): attempt 2 of 5, next in 40s; rule PROVIDER_THROTTLED"
    )
    assert decision.retry_delay == timedelta(seconds=40)


def test_a_code_rule_inherits_unset_fields_from_the_policy() -> None:
    policy = exact(max_attempts=6, max_delay=timedelta(seconds=50), rules={"CONFLICT": Retry(backoff=3.0)})
    delays = [policy.evaluate(exc("CONFLICT"), n, 10, task_context(10)).retry_delay for n in range(1, 6)]
    # initial 10s from the policy, backoff 3 from the rule, capped at the policy's 50s
    assert delays == [timedelta(seconds=s) for s in (10, 30, 50, 50, 50)]
    assert policy.evaluate(exc("CONFLICT"), 6, 10, task_context(10)).action is F


# -- delays ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [
        (1, None, 10),
        (2, None, 20),
        (4, None, 80),
        (6, None, 300),  # 320 capped at max_delay
        (60, None, 300),  # no overflow on absurd attempts
        (1, 45.0, 45),  # the provider asks for longer: honoured
        (3, 5.0, 40),  # the provider asks for less: the backoff stands
        (6, 900.0, 900),  # retry-after is honoured even past max_delay
    ],
)
def test_backoff_is_capped_then_yields_to_retry_after(
    attempt: int, retry_after: float | None, expected: int
) -> None:
    policy = exact(max_attempts=100, max_delay=timedelta(minutes=5))
    decision = policy.evaluate(
        exc("PROVIDER_THROTTLED", retry_after=retry_after), attempt, 100, task_context(100)
    )
    assert decision.action is R
    assert decision.retry_delay == timedelta(seconds=expected)


def test_a_partial_failure_waits_for_its_units_retry_after() -> None:
    units = UnitsReport(
        succeeded=[UnitReport(index=0)],
        failed=[UnitReport(index=1, error=err("PROVIDER_THROTTLED", retry_after=70))],
    )
    decision = exact().evaluate(exc("PARTIAL_FAILURE", units=units), 1, 4, task_context(4))
    assert decision.retry_delay == timedelta(seconds=70)


@pytest.mark.parametrize(
    ("jitter", "low", "high"), [("full", 0.0, 1.0), ("equal", 0.5, 1.0), ("none", 1.0, 1.0)]
)
def test_jitter_stays_in_its_bounds(jitter: str, low: float, high: float) -> None:
    backoff = Backoff(10, timedelta(seconds=10), 2.0, timedelta(minutes=10), jitter, 1.0)  # type: ignore[arg-type]
    rng = random.Random(20261126)
    for attempt in (1, 3, 5):
        nominal = 10 * 2 ** (attempt - 1)
        samples = [backoff_delay(backoff, attempt, None, rng).total_seconds() for _ in range(2000)]
        assert min(samples) >= low * nominal
        assert max(samples) <= high * nominal
        if jitter != "none":
            # spread over the whole interval, not stuck at one end
            assert min(samples) < (low + 0.05 * (high - low)) * nominal
            assert max(samples) > (high - 0.05 * (high - low)) * nominal


def test_full_jitter_through_the_policy_is_reproducible_with_a_seeded_rng() -> None:
    def delays(seed: int) -> list[timedelta | None]:
        policy = ComputeRetryPolicy(max_attempts=10, rng=random.Random(seed))
        return [policy.evaluate(exc("CONFLICT"), n, 10, task_context(10)).retry_delay for n in range(1, 9)]

    assert delays(7) == delays(7)
    assert delays(7) != delays(8)
    assert all(d is not None and timedelta(0) <= d <= timedelta(minutes=10) for d in delays(7))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (2.5, "2.5s"), (40.2, "40s"), (200, "3m20s"), (600, "10m"), (7300, "2h01m")],
)
def test_delays_read_short_in_reasons(seconds: float, text: str) -> None:
    assert format_seconds(timedelta(seconds=seconds)) == text


# -- attempts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("try_number", "max_tries", "retries", "attempt"),
    [
        (1, 4, 4, 1),
        (3, 4, 4, 3),
        (6, 9, 4, 1),  # cleared after 5 tries: max_tries = 5 + 4
        (8, 9, 4, 3),
        (2, 0, 4, 2),  # max_tries unknown (no server context): the try number
        (2, 4, None, 2),  # retries unknown
    ],
)
def test_attempts_count_from_the_latest_clear(
    try_number: int, max_tries: int, retries: int | None, attempt: int
) -> None:
    assert attempt_number(try_number, max_tries, retries) == attempt


def test_a_cleared_task_gets_its_attempts_again() -> None:
    policy = exact(max_attempts=3)
    # first run: tries 1-3, retries=2 so max_tries=2; the third try is the last attempt
    assert policy.evaluate(exc("CONFLICT"), 3, 2, task_context(2)).action is F
    # cleared: max_tries = 3 + 2 = 5; try 4 is attempt 1 again, with the first delay
    decision = policy.evaluate(exc("CONFLICT"), 4, 5, task_context(2))
    assert decision.action is R
    assert decision.retry_delay == timedelta(seconds=10)
    assert "attempt 1 of 3" in (decision.reason or "")


# -- partial failures ------------------------------------------------------------------------------


def partial() -> ComputeOperationError:
    units = UnitsReport(
        succeeded=[UnitReport(index=0, resource_id="r0")],
        failed=[
            UnitReport(index=3, error=err("PROVIDER_THROTTLED")),
            UnitReport(index=2, error=err("OUT_OF_MEMORY")),
            UnitReport(index=1, error=err("CONTAINER_FAILED")),
        ],
    )
    error = err("PARTIAL_FAILURE", units=units)
    assert error.classification is Classification.NON_RETRIABLE
    return ComputeOperationError(error)


PARTIAL_RULES = [
    ("own rule first", {"PARTIAL_FAILURE": Retry(max_attempts=4), "OUT_OF_MEMORY": Abort()}, R, "of 4"),
    (
        "then the most severe unit's code",
        {"OUT_OF_MEMORY": Retry(), "non_retriable": Abort()},
        R,
        "rule OUT_OF_MEMORY of failed unit 2",
    ),
    (
        "lowest unit index wins a tie",
        {"OUT_OF_MEMORY": Abort(), "CONTAINER_FAILED": Retry()},
        R,
        "rule CONTAINER_FAILED of failed unit 1",
    ),
    ("a less severe unit's rule is not used", {"PROVIDER_THROTTLED": Retry()}, F, "abort by default"),
    (
        "then the classification",
        {"PROVIDER_THROTTLED": Retry(), "non_retriable": Retry()},
        R,
        "rule non_retriable",
    ),
    ("then the defaults", {}, F, "non_retriable errors abort by default"),
]


@pytest.mark.parametrize(
    ("rules", "action", "reason"), [p[1:] for p in PARTIAL_RULES], ids=[p[0] for p in PARTIAL_RULES]
)
def test_partial_failure_rule_fallbacks(rules: dict[str, Any], action: RetryAction, reason: str) -> None:
    decision = exact(rules=rules).evaluate(partial(), 1, 4, task_context(4))
    assert decision.action is action
    assert reason in (decision.reason or "")
    assert (decision.reason or "").startswith("PARTIAL_FAILURE (non_retriable)")


# -- never raises ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raised", [ValueError("x"), KeyError("k"), RuntimeError("boom")])
def test_other_exceptions_get_airflows_default(raised: BaseException) -> None:
    decision = exact(rules={"retriable": Abort()}).evaluate(raised, 1, 4, task_context(4))
    assert decision.action is D
    assert decision.retry_delay is None


class _BrokenContext(dict[str, Any]):
    def get(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("context unavailable")


def test_a_failure_inside_the_policy_is_default_not_an_exception() -> None:
    decision = exact().evaluate(exc("CONFLICT"), 1, 4, _BrokenContext(ti="present"))
    assert decision == RetryDecision.default()


# -- validation ------------------------------------------------------------------------------------

INVALID = [
    ("unknown code", {"rules": {"QUOTA_EXCEDED": Abort()}}, "rules", "did you mean 'QUOTA_EXCEEDED'"),
    ("unknown classification", {"rules": {"transient": Retry()}}, "rules", "neither an error code nor"),
    (
        "negative initial delay",
        {"initial_delay": timedelta(seconds=-1)},
        "initial_delay",
        "greater than or equal",
    ),
    ("negative max delay", {"max_delay": -5}, "max_delay", "greater than or equal"),
    ("zero attempts", {"max_attempts": 0}, "max_attempts", "greater than or equal to 1"),
    ("shrinking backoff", {"backoff": 0.5}, "backoff", "greater than or equal to 1"),
    ("unknown jitter", {"jitter": "half"}, "jitter", "'full', 'equal' or 'none'"),
    ("shrinking timeout", {"timeout_factor": 0.9}, "timeout_factor", "greater than or equal to 1"),
    ("a rule that is no rule", {"rules": {"CONFLICT": "retry"}}, "rules.CONFLICT", "valid dictionary"),
    (
        "negative delay in a rule",
        {"rules": {"CONFLICT": {"action": "retry", "initial_delay": -3}}},
        "initial_delay",
        "must not be negative, got -3s",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "argument", "message"), [i[1:] for i in INVALID], ids=[i[0] for i in INVALID]
)
def test_bad_arguments_are_config_errors_naming_the_argument(
    kwargs: dict[str, Any], argument: str, message: str
) -> None:
    with pytest.raises(ComputeConfigError, match=message) as raised:
        ComputeRetryPolicy(**kwargs)
    assert raised.value.argument is not None
    assert raised.value.argument.endswith(argument)


@pytest.mark.parametrize(
    ("build", "argument"),
    [
        (lambda: Retry(initial_delay=timedelta(seconds=-1)), "Retry.initial_delay"),
        (lambda: Retry(max_attempts=0), "Retry.max_attempts"),
        (lambda: Retry(jitter="some"), "Retry.jitter"),
        (lambda: Retry(retries=3), "Retry.retries"),
        (lambda: Abort(reason=3), "Abort.reason"),
    ],
)
def test_bad_rules_fail_where_they_are_written(build: Any, argument: str) -> None:
    with pytest.raises(ComputeConfigError) as raised:
        build()
    assert raised.value.argument == argument


def test_rules_accept_enum_members_as_keys() -> None:
    policy = ComputeRetryPolicy(rules={ErrorCode.CONFLICT: Abort(), Classification.NON_RETRIABLE: Retry()})
    assert set(policy.rules) == {ErrorCode.CONFLICT, Classification.NON_RETRIABLE}


# -- what the operator asks ------------------------------------------------------------------------


def test_timeout_factor_follows_code_then_classification_then_policy() -> None:
    assert ComputeRetryPolicy(timeout_factor=1.5).timeout_factor_for(ErrorCode.OPERATION_TIMEOUT) == 1.5
    by_class = ComputeRetryPolicy(timeout_factor=1.5, rules={"retriable": Retry(timeout_factor=3.0)})
    assert by_class.timeout_factor_for("OPERATION_TIMEOUT") == 3.0
    by_code = ComputeRetryPolicy(
        rules={"retriable": Retry(timeout_factor=3.0), "OPERATION_TIMEOUT": Retry(timeout_factor=2.0)}
    )
    assert by_code.timeout_factor_for("OPERATION_TIMEOUT") == 2.0
    code_without_factor = ComputeRetryPolicy(
        timeout_factor=1.2, rules={"retriable": Retry(timeout_factor=3.0), "OPERATION_TIMEOUT": Retry()}
    )
    assert code_without_factor.timeout_factor_for("OPERATION_TIMEOUT") == 1.2


def test_required_retries_is_the_largest_max_attempts_less_one() -> None:
    assert ComputeRetryPolicy(max_attempts=5).required_retries() == 4
    policy = ComputeRetryPolicy(
        max_attempts=3, rules={"CONFLICT": Retry(max_attempts=7), "retriable": Abort()}
    )
    assert policy.required_retries() == 6


# -- serialization and composition -----------------------------------------------------------------


def issue_policy(**kw: Any) -> ComputeRetryPolicy:
    settings: dict[str, Any] = {
        "max_attempts": 5,
        "initial_delay": timedelta(seconds=10),
        "backoff": 2.0,
        "max_delay": timedelta(minutes=10),
        "jitter": "full",
        "rules": {
            "OPERATION_TIMEOUT": Retry(max_attempts=3, timeout_factor=2.0),
            "PROVIDER_THROTTLED": Retry(initial_delay=timedelta(seconds=30)),
            "CONTAINER_FAILED": Retry(max_attempts=2),
            "INVALID_CONFIGURATION": Abort(reason="fix the DAG"),
            "requires_manual_intervention": Abort(),
        },
    }
    return ComputeRetryPolicy(**{**settings, **kw})


def test_serialize_round_trips_through_json() -> None:
    policy = issue_policy()
    data = json.loads(json.dumps(policy.serialize()))
    again = ComputeRetryPolicy.deserialize(data)
    assert again == policy
    assert again.serialize() == policy.serialize()
    assert data["rules"]["PROVIDER_THROTTLED"] == {"action": "retry", "initial_delay": 30.0}
    for code, try_number in [
        ("PROVIDER_THROTTLED", 2),
        ("CONTAINER_FAILED", 2),
        ("INVALID_CONFIGURATION", 1),
    ]:
        ours = ComputeRetryPolicy.deserialize(data)
        ours._rng, policy._rng = random.Random(1), random.Random(1)
        assert ours.evaluate(exc(code), try_number, 4) == policy.evaluate(exc(code), try_number, 4)
    assert ComputeRetryPolicy.deserialize(data) != issue_policy(max_attempts=6)


def test_deserialize_refuses_an_unknown_version_and_bad_rules() -> None:
    data = issue_policy().serialize()
    with pytest.raises(ValueError, match="version"):
        ComputeRetryPolicy.deserialize({**data, "__version": 99})
    with pytest.raises(ComputeConfigError, match="did you mean"):
        ComputeRetryPolicy.deserialize({**data, "rules": {"OPERATION_TIMEOT": {"action": "abort"}}})


def test_composes_inside_a_chain_retry_policy() -> None:
    chain = ChainRetryPolicy(
        [
            issue_policy(rng=random.Random(3)),
            ExceptionRetryPolicy(
                rules=[RetryRule(exception=ValueError, action=RetryAction.FAIL, reason="bad input")]
            ),
        ]
    )
    # not a compute error: ours passes (DEFAULT), the next policy decides
    value_error = chain.evaluate(ValueError("x"), 1, 4, task_context(4))
    assert value_error.action is F
    assert value_error.reason is not None
    assert value_error.reason.startswith(
        "ExceptionRetryPolicy: bad input (after ComputeRetryPolicy: not a compute error"
    )
    # a compute error: ours decides
    throttled = chain.evaluate(exc("PROVIDER_THROTTLED"), 1, 4, task_context(4))
    assert throttled.action is R
    assert (throttled.reason or "").startswith(
        "ComputeRetryPolicy: PROVIDER_THROTTLED (retriable): attempt 1 of 5"
    )
    # neither decides: the chain defers to Airflow
    assert chain.evaluate(KeyError("k"), 1, 4, task_context(4)).action is D
    assert compute_policies_in(chain) == [chain.policies[0]]


# -- the operator's retries ------------------------------------------------------------------------


def ecs_task(task_id: str = "provision", **kw: Any) -> EcsComputeOperator:
    return EcsComputeOperator(
        task_id=task_id, tenant_id="acme", operation="provision", cluster="c", task_definition="td:1", **kw
    )


def test_retries_follow_the_policy_when_the_author_set_none() -> None:
    with DAG("policy_retries", schedule=None):
        task = ecs_task(retry_policy=issue_policy())
    assert task.retries == 4  # max(5, 3, 2) - 1


def test_retries_follow_a_policy_given_through_default_args() -> None:
    with DAG("policy_default_args", schedule=None, default_args={"retry_policy": issue_policy()}):
        task = ecs_task()
    assert task.retries == 4


def test_retries_follow_a_policy_inside_a_chain() -> None:
    chain = ChainRetryPolicy([ExceptionRetryPolicy(rules=[]), ComputeRetryPolicy(max_attempts=7)])
    assert ecs_task(retry_policy=chain).retries == 6


def test_without_a_policy_retries_are_airflows() -> None:
    assert ecs_task().retries == EmptyOperator(task_id="plain").retries


@pytest.mark.parametrize(
    "where",
    ["task", "task default_args", "dag default_args"],
)
def test_retries_the_author_set_are_kept_and_warned_about_when_too_few(where: str) -> None:
    dag_defaults = {"retries": 1} if where == "dag default_args" else {}
    task_kw: dict[str, Any] = {"retries": 1} if where == "task" else {}
    if where == "task default_args":
        task_kw["default_args"] = {"retries": 1}
    dag = DAG(f"policy_{where.replace(' ', '_')}", schedule=None, default_args=dag_defaults)
    with dag, pytest.warns(ComputeRetryPolicyWarning, match="retries=1 allows 2 tries") as caught:
        task = ecs_task(retry_policy=issue_policy(), **task_kw)
    assert task.retries == 1
    # the warning points at the DAG file's line (here, this test), where the import warning belongs
    assert caught[0].filename == __file__


def test_enough_retries_set_by_the_author_are_kept_silently() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ComputeRetryPolicyWarning)
        assert ecs_task(retries=9, retry_policy=issue_policy()).retries == 9


def test_before_airflow_3_3_the_operator_holds_the_policy_itself() -> None:
    policy = ComputeRetryPolicy(max_attempts=4)
    kwargs: dict[str, Any] = {"task_id": "t", "retry_policy": policy}
    taken = take_policy_arguments(kwargs, airflow_evaluates=False)
    assert "retry_policy" not in kwargs  # BaseOperator before 3.3 would refuse it
    task = EmptyOperator(**kwargs)
    assert apply_policy_arguments(task, taken) == 3
    assert task.retry_policy is policy
    assert task.retries == 3


# -- who fails the task: the policy, or the operator -----------------------------------------------


def legacy_context(try_number: int, max_tries: int, retries: int) -> dict[str, Any]:
    # Stand-in for the task instance of Airflow < 3.3, which cannot run here: the policy reads
    # try_number, max_tries and the task's retries from it.
    task = EmptyOperator(task_id="t", retries=retries)
    return {"ti": types.SimpleNamespace(try_number=try_number, max_tries=max_tries, task=task), "task": task}


ABORTS = [
    ("no policy, retriable", None, "CONFLICT", None, True, False),
    ("no policy, non-retriable", None, "QUOTA_EXCEEDED", None, True, True),
    ("no policy, manual", None, "PERMISSION_DENIED", None, True, True),
    ("3.3+: the policy decides, even an abort", issue_policy(), "INVALID_CONFIGURATION", None, True, False),
    ("3.3+: any policy decides", ExceptionRetryPolicy(rules=[]), "QUOTA_EXCEEDED", None, True, False),
    ("<3.3: Abort rule", issue_policy(), "INVALID_CONFIGURATION", (1, 4, 4), False, True),
    ("<3.3: retry rule", issue_policy(), "CONTAINER_FAILED", (1, 4, 4), False, False),
    ("<3.3: rule's attempts exhausted", issue_policy(), "CONTAINER_FAILED", (2, 4, 4), False, True),
    ("<3.3: default abort", issue_policy(), "QUOTA_EXCEEDED", (1, 4, 4), False, True),
    ("<3.3: cleared task starts over", issue_policy(), "CONTAINER_FAILED", (6, 9, 4), False, False),
    ("<3.3: no context, error's attempt", issue_policy(), "PROVIDER_THROTTLED", None, False, False),
]


@pytest.mark.parametrize(
    ("policy", "code", "tries", "airflow_evaluates", "aborts"),
    [a[1:] for a in ABORTS],
    ids=[a[0] for a in ABORTS],
)
def test_operator_aborts(
    policy: Any, code: str, tries: tuple[int, int, int] | None, airflow_evaluates: bool, aborts: bool
) -> None:
    context = legacy_context(*tries) if tries else None
    assert operator_aborts(err(code), policy, context, airflow_evaluates=airflow_evaluates) is aborts


def test_the_operator_raises_what_lets_the_policy_decide() -> None:
    quota = err("QUOTA_EXCEEDED")
    with_policy = ecs_task(retry_policy=issue_policy())
    raised = with_policy._exception_for(quota)
    assert type(raised) is ComputeOperationError  # not AirflowFailException: the policy decides
    assert isinstance(ecs_task()._exception_for(quota), ComputeTaskAborted)
    assert type(ecs_task()._exception_for(err("CONFLICT"))) is ComputeOperationError


def test_equal_policies_hash_alike() -> None:
    assert len({issue_policy(), ComputeRetryPolicy.deserialize(issue_policy().serialize())}) == 1
    assert len({issue_policy(), issue_policy(max_attempts=9)}) == 2
