"""``MemoryComputeOperator``: ``BaseComputeOperator`` on the in-memory provider.

A provider operator only says what to launch (``operators/base.py``); this one launches on a
``MemoryCloud`` named by ``cloud``, so the whole lifecycle (validate, begin, reconcile, launch,
wait, settle, Airflow's decision) runs without any provider endpoint.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow_compute_provider.hooks.base import ComputeBackend
from airflow_compute_provider.lifecycle.arguments import ComputeArguments
from airflow_compute_provider.operators.base import BaseComputeOperator
from airflow_compute_provider.testing.memory import PROVIDER, MemoryComputeBackend


class MemoryComputeOperator(BaseComputeOperator):
    """:param cloud: the name of the ``MemoryCloud`` to launch on."""

    provider: ClassVar[str] = PROVIDER

    def __init__(self, *, cloud: str = "default", **kwargs: Any) -> None:
        self.cloud = cloud
        super().__init__(**kwargs)

    def make_backend(self) -> ComputeBackend:
        return MemoryComputeBackend(self.cloud)

    def launch_request(self, args: ComputeArguments) -> dict[str, Any]:
        return {"image": "busybox"}


__all__ = ["MemoryComputeOperator"]
