"""The provider registry: the one place that names each compute provider.

A provider is declared once, as a ``ComputeProvider`` entry, and everything that must act on a
provider's name asks this module instead of branching on it:

    hook               the ``ComputeBackend`` class, by dotted path (imported when first used, so
                       this module imports no hook and no hook imports it: no cycle)
    backend_from_config(name, config)
                       what the triggerer does: rebuild a backend from its ``backend_config()``
    status_source      a factory of the shared poller's push source (the Kubernetes watch, the
                       ECS events queue); ``None``, or a factory answering ``None``: polling
    launch_only_config backend config keys that do not change how status is read, so two
                       operators differing only in them share a poller
    recovery_config(conn_id, locator)
                       the hook arguments that reach a ledger row's unit (``recovery/``): the
                       connection argument, and the locator keys that become hook arguments
    console_url        a function (resource id, locator) -> the unit's page in the provider's
                       console, for the Compute Health page; ``extra_links`` the operator links

``register`` adds a provider (a test's in-memory backend, a third provider); the built-in two,
ECS and Kubernetes, are declared at the bottom. Layers: this module sits above ``hooks/``
(which it imports lazily, by path) and below ``triggers/``, ``recovery/`` and ``operators/``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.hooks.base import ComputeBackend

if TYPE_CHECKING:  # the type only: triggers/ sits above this module
    from airflow_compute_provider.triggers.pollers import StatusSource

_PACKAGE = "airflow_compute_provider"

#: ``factory(backend, backend_config, *, poll_interval, watch)`` -> a push source, or ``None`` to poll
StatusSourceFactory = Callable[..., "StatusSource | None"]


@dataclass(frozen=True)
class ComputeProvider:
    """One compute provider, as the rest of the package needs to know it.

    :param name: what operators, ledger rows, errors and trigger events call it.
    :param hook: ``module.Class`` of its ``ComputeBackend``, built with ``backend_config()``'s kwargs.
    :param conn_argument: the hook argument naming its Airflow connection (``None``: it has none).
    :param default_conn_id: the connection a ledger row without one is reached through.
    :param locator_arguments: ledger locator key -> hook argument (a key the row lacks gives ``None``).
    :param required_locator: locator keys without which a ledger row's unit cannot be reached.
    :param launch_only_config: backend config keys that only matter for launching or stopping.
    :param status_source: ``module.function`` building the shared poller's push source.
    :param console_url: ``module.function`` (resource id, locator) -> a console URL, or ``None``.
    :param extra_links: ``module.Class`` of each operator extra link of its operator.
    """

    name: str
    hook: str
    conn_argument: str | None = None
    default_conn_id: str | None = None
    locator_arguments: Mapping[str, str] = field(default_factory=dict)
    required_locator: tuple[str, ...] = ()
    launch_only_config: frozenset[str] = frozenset()
    status_source: str | None = None
    console_url: str | None = None
    extra_links: tuple[str, ...] = ()

    def hook_class(self) -> type[ComputeBackend]:
        return cast("type[ComputeBackend]", _import(self.hook))

    def backend(self, config: Mapping[str, Any]) -> ComputeBackend:
        """The backend a ``backend_config()`` describes (inside the triggerer, the reconciler)."""
        return self.hook_class()(**config)

    def recovery_config(self, conn_id: str | None, locator: Mapping[str, str]) -> dict[str, Any]:
        """The hook arguments that reach a ledger row's unit, from its connection and locator."""
        for key in self.required_locator:
            if not locator.get(key):
                raise ComputeConfigError(f"ledger locator {dict(locator)} names no {key}", argument="locator")
        config: dict[str, Any] = {}
        if self.conn_argument is not None:
            config[self.conn_argument] = conn_id or self.default_conn_id
        for key, argument in self.locator_arguments.items():
            config[argument] = locator.get(key)
        return config

    def status_relevant(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` without the keys that do not change how status is read."""
        return {k: v for k, v in config.items() if k not in self.launch_only_config}

    def push_source(
        self, backend: ComputeBackend, config: Mapping[str, Any], *, poll_interval: float, watch: bool
    ) -> StatusSource | None:
        """The push source the shared poller reads through, or ``None`` to poll the backend."""
        if self.status_source is None:
            return None
        factory = cast("StatusSourceFactory", _import(self.status_source))
        return factory(backend, config, poll_interval=poll_interval, watch=watch)

    def console_link(self, resource_id: str | None, locator: Mapping[str, str]) -> str | None:
        if self.console_url is None or not resource_id:
            return None
        url = cast("Callable[[str, Mapping[str, str]], str | None]", _import(self.console_url))
        return url(resource_id, locator)


_PROVIDERS: dict[str, ComputeProvider] = {}


def register(provider: ComputeProvider) -> ComputeProvider:
    """Declare ``provider`` (replacing one of the same name); returns it."""
    _PROVIDERS[provider.name] = provider
    return provider


def unregister(name: str) -> None:
    """Forget a provider a test registered."""
    _PROVIDERS.pop(name, None)


def get(name: str) -> ComputeProvider:
    """The provider called ``name``; ``ComputeConfigError`` (argument ``provider``) when none is."""
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise ComputeConfigError(
            f"unknown compute provider {name!r} (known: {', '.join(names())})", argument="provider"
        ) from None


def names() -> tuple[str, ...]:
    """Every provider's name, in the order they were declared."""
    return tuple(_PROVIDERS)


def providers() -> tuple[ComputeProvider, ...]:
    return tuple(_PROVIDERS.values())


def backend_from_config(name: str, config: Mapping[str, Any]) -> ComputeBackend:
    """Rebuild a backend from its provider's name and its ``backend_config()`` (inside the triggerer)."""
    return get(name).backend(config)


def _import(path: str) -> Any:
    module, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


register(
    ComputeProvider(
        name="ecs",
        hook=f"{_PACKAGE}.hooks.ecs.EcsComputeHook",
        conn_argument="aws_conn_id",
        locator_arguments={"region": "region_name", "cluster": "cluster"},
        required_locator=("cluster",),
        launch_only_config=frozenset({"max_launch_concurrency"}),
        status_source=f"{_PACKAGE}.triggers.ecs_events.status_source",
        console_url=f"{_PACKAGE}.links.ecs_unit_console_url",
        extra_links=(f"{_PACKAGE}.links.EcsTaskConsoleLink",),
    )
)
register(
    ComputeProvider(
        name="kubernetes",
        hook=f"{_PACKAGE}.hooks.kubernetes.KubernetesComputeHook",
        conn_argument="kubernetes_conn_id",
        default_conn_id="kubernetes_default",
        locator_arguments={"namespace": "namespace"},
        required_locator=("namespace",),
        launch_only_config=frozenset({"delete_grace_period_seconds"}),
        status_source=f"{_PACKAGE}.triggers.kube_watch.status_source",
        extra_links=(f"{_PACKAGE}.links.KubernetesPodLink",),
    )
)

__all__ = [
    "ComputeProvider",
    "backend_from_config",
    "get",
    "names",
    "providers",
    "register",
    "unregister",
]
