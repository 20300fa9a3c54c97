"""One way to stamp context onto an error leaving a hook, in the style of httpx's ``request_context``.

A call's context (the provider, the execution it works for, the workflow's operation, the
resource it is about) is named once, around the call, and every exception that leaves the block
leaves as a ``ComputeOperationError`` whose ``ComputeError`` carries that context::

    with error_context(ErrorContext(PROVIDER, resource_id=f"namespace/{ns}"), normalize):
        pods = core.list_namespaced_pod(ns, ...)

    ErrorContext          the context: provider, execution (tenant and execution id), operation,
                          resource id; ``for_execution`` builds it from a ``LaunchPlan``'s parts
      .stamp(error)       the error with the context filled in: provider, tenant and execution
                          ids where unset; the workflow's operation ("provision") replaces the
                          API call a normalizer named ("RunTask"); the resource id where unset,
                          or in every case with ``replace_resource`` (one call's failure reported
                          for the unit it was about, whatever object the server's Status named)
      .error(exc, normalize)
                          the exception normalized (``normalize``: the hook's own, which logs the
                          raw response at debug level) and stamped
    error_context(ctx, normalize)
                          the context manager: a ``ComputeOperationError`` passes unchanged (it
                          was stamped where it was raised); any other exception is raised as
                          ``ComputeOperationError(ctx.error(exc, normalize))`` from it

Where a failure is data rather than an exception (a refused unit, a stop that failed), a hook
calls ``stamp`` or ``error`` itself. Both hooks (``ecs.py``, ``kubernetes.py``) and the
Kubernetes watch (``triggers/kube_watch.py``) use this module and nothing else for context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from airflow_compute_provider.errors import ComputeError, ComputeOperationError
from airflow_compute_provider.hooks.base import ExecutionRef

#: a hook's translation of a provider exception (it never raises)
Normalize = Callable[[BaseException], ComputeError]


@dataclass(frozen=True)
class ErrorContext:
    provider: str
    execution: ExecutionRef | None = None
    #: the workflow's operation ("provision"), not the API call
    operation: str | None = None
    resource_id: str | None = None
    replace_resource: bool = False

    def about(self, resource_id: str | None, *, replace_resource: bool | None = None) -> ErrorContext:
        """The same context for one resource."""
        return replace(
            self,
            resource_id=resource_id,
            replace_resource=self.replace_resource if replace_resource is None else replace_resource,
        )

    def stamp(self, error: ComputeError) -> ComputeError:
        stamped = error.with_context(
            provider=self.provider,
            execution_id=self.execution.execution_id if self.execution else None,
            tenant_id=self.execution.tenant_id if self.execution else None,
        )
        if self.operation:
            stamped = stamped.model_copy(update={"operation": self.operation})
        if self.resource_id and (self.replace_resource or not stamped.root_cause.resource_id):
            root_cause = stamped.root_cause.model_copy(update={"resource_id": self.resource_id})
            stamped = stamped.model_copy(update={"root_cause": root_cause})
        return stamped

    def error(self, exc: BaseException, normalize: Normalize) -> ComputeError:
        return self.stamp(normalize(exc))


@contextmanager
def error_context(context: ErrorContext, normalize: Normalize) -> Iterator[ErrorContext]:
    """Every exception leaving the block leaves as a ``ComputeOperationError`` with ``context``."""
    try:
        yield context
    except ComputeOperationError:
        raise
    except Exception as exc:
        raise ComputeOperationError(context.error(exc, normalize)) from exc


__all__ = ["ErrorContext", "Normalize", "error_context"]
