"""The Compute Health FastAPI app, mounted by Airflow's api-server at ``/compute-health``.

    GET  /                                the page (static HTML + JS; an anonymous visitor is
                                          sent to Airflow's login page)
    GET  /static/{file}                   its script and style sheet
    GET  /api/health?hours=24             summary.health_summary, plus ``can_release`` for
                                          each tenant the caller may release
    GET  /api/resources?resource_id=...   every ledger row of one resource (the pod link)
    POST /api/tenants/{tenant_id}/release {"note": "...", "expected_version": 7, "force": false}

Every route but the static files needs an authenticated Airflow user (``access.py``); the
release needs ``access.may_release`` as well and a JSON body (a cross-site form cannot send
one). The state store is the one the workers write: ``open_state_store()`` resolves it the same
way in this process.
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
from airflow_compute_provider.plugins import access
from airflow_compute_provider.plugins.summary import health_summary, resource_lookup, task_instance_ref
from airflow_compute_provider.state.status import IllegalTransitionError, TenantNotFoundError, TenantStatus
from airflow_compute_provider.state.store import TenantStateStore

log = logging.getLogger(__name__)

URL_PREFIX = "/compute-health"
STATIC = Path(__file__).parent / "static"
_STATIC_FILES = {"compute_health.js": "text/javascript", "compute_health.css": "text/css"}

User = Annotated[Any, Depends(access.authenticated_user)]


class ReleaseRequest(BaseModel):
    note: str = Field(min_length=1, max_length=2000)
    #: the tenant's version the caller saw; a tenant that moved on since is not released
    expected_version: int | None = None
    #: also free a tenant held by an execution that will never come back
    force: bool = False


def state_store() -> TenantStateStore:
    """The store, or 503 naming what is missing (no state store connection, say)."""
    try:
        return _open_store()
    except ComputeConfigError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None


@cache
def _open_store() -> TenantStateStore:
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
    def health(user: User, hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24.0) -> dict[str, Any]:
        summary = health_summary(state_store(), now=datetime.now(UTC), window=timedelta(hours=hours))
        for tenant in summary["tenants"]:
            tenant["can_release"] = tenant["status"] == TenantStatus.NEEDS_INVESTIGATION and (
                access.may_release(user, _dag_of(tenant["execution_id"]))
            )
        summary["user"] = access.user_name(user)
        return summary

    @app.get("/api/resources")
    def resources(user: User, resource_id: Annotated[str, Query(min_length=1)]) -> dict[str, Any]:
        return {"resource_id": resource_id, "entries": resource_lookup(state_store(), resource_id)}

    @app.post("/api/tenants/{tenant_id}/release")
    def release(tenant_id: str, body: ReleaseRequest, request: Request, user: User) -> dict[str, Any]:
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the release as JSON")
        store = state_store()
        tenant = store.get_tenant(tenant_id)
        if tenant is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tenant {tenant_id!r}")
        dag_id = _dag_of(tenant.execution_id)
        if not access.may_release(user, dag_id):
            needed = f"DAG {dag_id!r}" if dag_id else "every DAG"
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"releasing tenant {tenant_id!r} needs edit access to the task instances of {needed}",
            )
        who = access.user_name(user)
        try:
            released = store.release(
                tenant_id,
                f"{body.note} (released by {who} on the Compute Health page)",
                force=body.force,
                expected_version=body.expected_version,
            )
        except TenantNotFoundError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        except IllegalTransitionError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        log.info("tenant %s released by %s: %s", tenant_id, who, body.note)
        return {"tenant_id": released.tenant_id, "status": released.status.value, "note": released.note}

    return app


def _dag_of(execution_id: str | None) -> str | None:
    ref = task_instance_ref(execution_id)
    return str(ref["dag_id"]) if ref else None


__all__ = ["URL_PREFIX", "create_app"]
