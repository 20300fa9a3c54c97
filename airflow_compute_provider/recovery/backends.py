"""Backends rebuilt from ledger rows, and rows grouped so each group is one batched describe.

A ledger row names where its unit lives: ``provider``, ``conn_id`` and ``locator`` (ECS:
region and cluster; Kubernetes: namespace). Rows with the same three share a ``BackendKey``,
so a maintenance run builds one backend per key and describes all of its rows at once: the
hooks batch that as DescribeTasks calls of 100 tasks, or one pod list per namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_compute_provider import registry
from airflow_compute_provider.hooks.base import ComputeBackend, Unit
from airflow_compute_provider.state.models import LedgerEntry

T = TypeVar("T")


@dataclass(frozen=True)
class BackendKey:
    provider: str
    conn_id: str | None
    locator: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, entry: LedgerEntry) -> BackendKey:
        return cls(entry.provider, entry.conn_id, tuple(sorted(entry.locator.items())))

    def describe(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.locator)
        return f"{self.provider} ({where}; connection {self.conn_id or 'default'})"


#: builds the backend of a key; tests and other stores may pass their own
BackendFactory = Callable[[BackendKey], ComputeBackend]


def backend_config(key: BackendKey) -> dict[str, Any]:
    """The hook kwargs that reach the units of ``key`` (``registry.backend_from_config``'s input);
    the provider's registry entry says which connection argument and locator keys they are."""
    return registry.get(key.provider).recovery_config(key.conn_id, dict(key.locator))


def build_backend(key: BackendKey) -> ComputeBackend:
    return registry.backend_from_config(key.provider, backend_config(key))


def unit_of(entry: LedgerEntry) -> Unit:
    """The ledger row as the backend's ``Unit`` (it must have a resource id)."""
    if not entry.resource_id:
        raise ValueError(f"ledger row {entry.id} has no resource id")
    return Unit(entry.unit_index, entry.generation, entry.resource_id, dict(entry.locator))


def group_by_backend(entries: Iterable[T], entry_of: Callable[[T], LedgerEntry]) -> dict[BackendKey, list[T]]:
    """``entries`` by the backend that reaches them, in first-seen order."""
    groups: dict[BackendKey, list[T]] = {}
    for item in entries:
        groups.setdefault(BackendKey.of(entry_of(item)), []).append(item)
    return groups


class BackendCache:
    """One backend per key for the whole run (a hook caches its clients)."""

    def __init__(self, factory: BackendFactory) -> None:
        self._factory = factory
        self._built: dict[BackendKey, ComputeBackend] = {}

    def get(self, key: BackendKey) -> ComputeBackend:
        if key not in self._built:
            self._built[key] = self._factory(key)
        return self._built[key]
