"""The Compute Health FastAPI app, mounted by Airflow's api-server at ``/compute-health``.

    GET  /                                the page (static HTML + JS; an anonymous visitor is
                                          sent to Airflow's login page)
    GET  /static/{file}                   its script and style sheet
    GET  /api/health?hours=24&tenants_offset=0&cleanup_offset=0&limit=100
                                          summary.health_summary of the DAGs the caller may
                                          read, plus ``can_release`` for each tenant they may
                                          release; tenants and pending cleanup come a page at a
                                          time (``tenants_page``, ``pending_cleanup_page``)
    GET  /api/resources?resource_id=...&offset=0
                                          the ledger rows of one resource (the pod link),
                                          100 at a time, oldest first
    POST /api/tenants/{tenant_id}/release {"note": "...", "expected_version": 7, "force": false}

Every route but the static files needs an authenticated Airflow user, and every row returned
belongs to a DAG that user may read (``access.visibility``), by the DAG id the store recorded
when the try began. The release needs ``access.may_release`` on the DAG of the try holding the
tenant; forcing a live hold needs ``access.is_admin``. A release sent with the session cookie
alone must carry the ``X-Compute-Health-Request`` header, which a cross-site form cannot set
(and a cross-site script cannot without a CORS preflight this app never answers). The state
store is the one the workers write: ``open_state_store()`` resolves it the same way here.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.plugins import access, queries
from airflow_compute_provider.plugins.queries import Visibility
from airflow_compute_provider.plugins.summary import (
    DEFAULT_PAGE,
    LOOKUP_LIMIT,
    health_summary,
    resource_lookup,
)
from airflow_compute_provider.state.models import Operation
from airflow_compute_provider.state.sql import SqlTenantStateStore
from airflow_compute_provider.state.status import IllegalTransitionError, TenantNotFoundError, TenantStatus

log = logging.getLogger(__name__)

URL_PREFIX = "/compute-health"
STATIC = Path(__file__).parent / "static"
_STATIC_FILES = {"compute_health.js": "text/javascript", "compute_health.css": "text/css"}

User = Annotated[Any, Depends(access.authenticated_user)]
#: the header the page's script sends with every change; a cross-site form cannot set it
CSRF_HEADER = "X-Compute-Health-Request"
_HELD = (TenantStatus.OPERATION_IN_PROGRESS, TenantStatus.RETRY_PENDING)


class ReleaseRequest(BaseModel):
    note: str = Field(min_length=1, max_length=2000)
    #: the tenant's version the caller saw; a tenant that moved on since is not released
    expected_version: int | None = None
    #: also free a tenant held by an execution that will never come back
    force: bool = False


def state_store() -> SqlTenantStateStore:
    """The store, or 503 naming what is missing (no state store connection, say)."""
    try:
        return _open_store()
    except ComputeConfigError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None


@cache
def _open_store() -> SqlTenantStateStore:
    """One store (one connection pool) per api-server process."""
    from airflow_compute_provider.state.config import open_state_store

    return open_state_store()


def create_app() -> FastAPI:
    app = FastAPI(title="Compute Health", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", include_in_schema=False)
    async def page(request: Request) -> Response:
        try:
            await access.authenticated_user(request)
        except HTTPException:
            login = access.login_url(str(request.url))
            if login is None:
                raise
            return RedirectResponse(login, status_code=status.HTTP_303_SEE_OTHER)
        return FileResponse(STATIC / "compute_health.html", media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in _STATIC_FILES:
            raise HTTPException(status.HTTP_404_NOT_FOUND)
        return FileResponse(STATIC / name, media_type=_STATIC_FILES[name])

    @app.get("/api/health")
    def health(
        user: User,
        hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24.0,
        tenants_offset: Annotated[int, Query(ge=0)] = 0,
        cleanup_offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = DEFAULT_PAGE,
    ) -> dict[str, Any]:
        store = state_store()
        vis = _visibility(store, user)
        summary = health_summary(
            store,
            now=datetime.now(UTC),
            window=timedelta(hours=hours),
            visibility=vis,
            tenants_offset=tenants_offset,
            cleanup_offset=cleanup_offset,
            limit=limit,
        )
        held_by = queries.holders(store, [t["tenant_id"] for t in summary["tenants"]])
        decided: dict[str | None, bool] = {}
        for tenant in summary["tenants"]:
            dag_id = _dag_of(held_by.get(tenant["tenant_id"]))
            tenant["dag_id"] = dag_id
            if dag_id not in decided:
                decided[dag_id] = access.may_release(user, dag_id)
            tenant["can_release"] = tenant["status"] == TenantStatus.NEEDS_INVESTIGATION and decided[dag_id]
        summary["user"] = access.user_name(user)
        return summary

    @app.get("/api/resources")
    def resources(
        user: User,
        resource_id: Annotated[str, Query(min_length=1, max_length=2048)],
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        store = state_store()
        return {
            "resource_id": resource_id,
            "offset": offset,
            "limit": LOOKUP_LIMIT,
            "entries": resource_lookup(store, resource_id, _visibility(store, user), offset=offset),
        }

    @app.post("/api/tenants/{tenant_id}/release")
    def release(tenant_id: str, body: ReleaseRequest, request: Request, user: User) -> dict[str, Any]:
        _refuse_cross_site(request)
        store = state_store()
        how, version = _authorize_release(store, user, tenant_id, force=body.force)
        who = access.user_name(user)
        try:
            released = store.release(
                tenant_id,
                f"{body.note} ({how} by {who} on the Compute Health page)",
                force=body.force,
                # never past the version the decision was made on: a new holder is a new question
                expected_version=version if body.expected_version is None else body.expected_version,
            )
        except TenantNotFoundError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        except IllegalTransitionError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        log.info("tenant %s %s by %s: %s", tenant_id, how, who, body.note)
        return {"tenant_id": released.tenant_id, "status": released.status.value, "note": released.note}

    return app


def _authorize_release(
    store: SqlTenantStateStore, user: Any, tenant_id: str, *, force: bool
) -> tuple[str, int]:
    """How the release is written in the tenant's history, and the tenant version the decision
    was made on; ``HTTPException`` when refused."""
    try:
        tenant = store.get_tenant(tenant_id)
    except ComputeConfigError:
        tenant = None  # not a tenant id at all
    holding = queries.holders(store, [tenant_id]).get(tenant_id) if tenant is not None else None
    dag_id = _dag_of(holding)
    if tenant is None or not _visibility(store, user, [dag_id] if dag_id else []).shows(dag_id):
        # a tenant of a DAG the caller may not read is as absent as one that never was
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such tenant")
    if not access.may_release(user, dag_id):
        needed = f"edit access to the task instances of DAG {dag_id!r}" if dag_id else "an administrator"
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"releasing tenant {tenant_id!r} needs {needed}")
    if not (force and tenant.status in _HELD):
        return "released", tenant.version
    if access.hold_is_stale(holding.task_instance if holding else None):
        return "force-released (its task instance had finished)", tenant.version
    if access.is_admin(user):
        return "force-released while its task instance may still run", tenant.version
    raise HTTPException(
        status.HTTP_403_FORBIDDEN,
        f"tenant {tenant_id!r} is held by a task instance that has not finished; "
        "forcing its release needs an administrator",
    )


def _visibility(store: SqlTenantStateStore, user: Any, dag_ids: list[str] | None = None) -> Visibility:
    """What ``user`` may read, among ``dag_ids`` (default: every DAG the store recorded)."""
    return access.visibility(user, queries.recorded_dag_ids(store) if dag_ids is None else dag_ids)


def _dag_of(op: Operation | None) -> str | None:
    """The DAG the store recorded for a try; never one parsed out of its execution id."""
    return op.task_instance.dag_id if op is not None and op.task_instance is not None else None


def _own_origins(request: Request) -> set[str]:
    """This server's origin as the request reached it, and as ``[api] base_url`` names it (the
    browser's, behind a proxy)."""
    from urllib.parse import urlsplit

    origins = {f"{request.url.scheme}://{request.url.netloc}"}
    try:
        from airflow.configuration import conf

        base = urlsplit(conf.get("api", "base_url", fallback="") or "")
        if base.scheme and base.netloc:
            origins.add(f"{base.scheme}://{base.netloc}")
    except Exception:
        pass  # no Airflow configuration: the request's own origin only
    return origins


def _refuse_cross_site(request: Request) -> None:
    """A change authenticated by the session cookie alone must come from the page's script.

    A bearer token is never sent by a browser on its own, so such a request is no cross-site
    one. Otherwise the request must carry ``CSRF_HEADER`` (a form cannot set headers; a script
    of another origin cannot without a preflight this app never allows), and an ``Origin``,
    when the browser sends one, must be this server's.
    """
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    origin = request.headers.get("origin")
    foreign = origin is not None and origin not in _own_origins(request)
    if not request.headers.get(CSRF_HEADER) or foreign:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"changes need the {CSRF_HEADER} header the Compute Health page sends "
            "(a cross-site request is refused)",
        )


__all__ = ["URL_PREFIX", "create_app"]
