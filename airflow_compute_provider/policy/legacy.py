"""Stand-ins for Airflow's retry-policy types on Airflow before 3.3, which has none.

``policy/__init__.py`` imports ``RetryPolicy``, ``RetryDecision`` and ``RetryAction`` from the Task SDK
when it has them (3.3+) and from here otherwise, so a ``ComputeRetryPolicy`` can be built in a
DAG file on every supported Airflow. Before 3.3 nothing in Airflow calls ``evaluate``: the
compute operator does (``policy.operator_aborts``). The shapes follow the SDK's.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


class RetryAction(enum.Enum):
    RETRY = "retry"
    FAIL = "fail"
    DEFAULT = "default"


@dataclass(frozen=True)
class RetryDecision:
    action: RetryAction = RetryAction.DEFAULT
    retry_delay: timedelta | None = None
    reason: str | None = None

    @classmethod
    def fail(cls, reason: str | None = None) -> RetryDecision:
        return cls(action=RetryAction.FAIL, reason=reason)

    @classmethod
    def retry(cls, delay: timedelta | None = None, reason: str | None = None) -> RetryDecision:
        return cls(action=RetryAction.RETRY, retry_delay=delay, reason=reason)

    @classmethod
    def default(cls) -> RetryDecision:
        return cls(action=RetryAction.DEFAULT)


class RetryPolicy(abc.ABC):
    @abc.abstractmethod
    def evaluate(
        self, exception: BaseException, try_number: int, max_tries: int, context: Any = None
    ) -> RetryDecision: ...

    def serialize(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> RetryPolicy:
        raise NotImplementedError
