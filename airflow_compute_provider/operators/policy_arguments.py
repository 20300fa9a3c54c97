"""The retry policy wired into ``BaseOperator``: the two calls ``BaseComputeOperator.__init__``
makes around ``BaseOperator.__init__``.

    take_policy_arguments   before: whether the author set ``retries`` (on the task or through
                            ``default_args``); before Airflow 3.3, the ``retry_policy`` that
                            ``BaseOperator`` cannot take, held back
    apply_policy_arguments  after: ``retries`` from the policy unless the author set it, a
                            parse-time ``ComputeRetryPolicyWarning`` when theirs is too small

The policy itself (``policy/``) knows nothing of operators; this module is where the two meet.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_compute_provider.policy import (
    AIRFLOW_EVALUATES_POLICIES,
    ComputeRetryPolicyWarning,
    compute_policies_in,
)


@dataclass(frozen=True)
class PolicyArguments:
    """What the operator's keyword arguments said before BaseOperator.__init__ consumed them."""

    #: the author set ``retries``, on the task or through ``default_args``
    retries_given: bool
    #: before Airflow 3.3, the ``retry_policy`` that BaseOperator cannot take
    held_policy: Any = None


def take_policy_arguments(
    kwargs: dict[str, Any], *, airflow_evaluates: bool = AIRFLOW_EVALUATES_POLICIES
) -> PolicyArguments:
    """Call before ``BaseOperator.__init__(**kwargs)``.

    Airflow's ``apply_defaults`` hands every operator ``__init__`` the merged ``default_args``
    (DAG, task group and task) and fills only the parameters a signature names, so a compute
    operator (``**kwargs``) still sees ``retries`` as its author wrote it. Before 3.3,
    ``retry_policy`` is taken out of ``kwargs`` here, since BaseOperator would refuse it.
    """
    default_args = kwargs.get("default_args") or {}
    retries = kwargs["retries"] if "retries" in kwargs else default_args.get("retries")
    held = None
    if not airflow_evaluates:
        held = kwargs.pop("retry_policy", None) or default_args.get("retry_policy")
    return PolicyArguments(retries_given=retries is not None, held_policy=held)


def apply_policy_arguments(operator: Any, taken: PolicyArguments) -> int | None:
    """Call after ``BaseOperator.__init__``: the retries the policy needs.

    Unless the author set ``retries``, it becomes ``max(every max_attempts) - 1``, and that is
    returned. A smaller value the author set is kept, with a ComputeRetryPolicyWarning.
    """
    if taken.held_policy is not None:
        operator.retry_policy = taken.held_policy
    policies = compute_policies_in(getattr(operator, "retry_policy", None))
    if not policies:
        return None
    needed = max(p.required_retries() for p in policies)
    if not taken.retries_given:
        operator.retries = needed
        return needed
    given = int(operator.retries or 0)
    if given < needed:
        warnings.warn(
            ComputeRetryPolicyWarning(
                f"task {operator.task_id!r}: retries={given} allows {given + 1} tries, but its "
                f"ComputeRetryPolicy allows up to {needed + 1}; Airflow stops after {given + 1}. "
                f"Leave retries unset (it follows the policy) or set it to {needed}."
            ),
            stacklevel=_outside_frames(),
        )
    return None


def _outside_frames() -> int:
    """The ``stacklevel`` of the first caller outside this package and Airflow: the DAG file."""
    import airflow

    inside = (str(Path(__file__).resolve().parents[1]), *(str(Path(p).resolve()) for p in airflow.__path__))
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(inside):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level


__all__ = ["PolicyArguments", "apply_policy_arguments", "take_policy_arguments"]
