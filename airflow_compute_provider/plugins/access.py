"""Who may use the Compute Health page, asked of Airflow's own auth manager.

    authenticated_user   a FastAPI dependency: the Airflow user of the request (the UI's
                         ``_token`` cookie or an ``Authorization: Bearer`` JWT), else 401
                         (403 for an invalid token), exactly as Airflow's own API decides
    may_release(user, dag_id)
                         releasing a tenant needs edit (PUT) access to the task instances of
                         the DAG whose task failed on it: the right that lets the same user
                         clear that task to run it again. A tenant whose execution id does not
                         name a task instance (a custom id) needs it on every DAG.

Reading needs nothing more than being an authenticated user. Every Airflow import is lazy: the
plugin module is loaded by every Airflow process, and only the api-server serves these routes.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request


async def authenticated_user(request: Request) -> Any:
    """The request's Airflow user (raises 401 / 403 ``HTTPException`` when there is none)."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials

    bearer: HTTPAuthorizationCredentials | None = None
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        bearer = HTTPAuthorizationCredentials(scheme="Bearer", credentials=credentials)
    return await get_user(request, None, bearer)


def may_release(user: Any, dag_id: str | None) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return bool(
        get_auth_manager().is_authorized_dag(
            method="PUT",
            access_entity=DagAccessEntity.TASK_INSTANCE,
            details=DagDetails(id=dag_id, team_name=_team_of(dag_id)),
            user=user,
        )
    )


def user_name(user: Any) -> str:
    try:
        return str(user.get_name())
    except Exception:
        return "unknown user"


def login_url(next_url: str) -> str | None:
    from airflow.api_fastapi.app import get_auth_manager

    try:
        return str(get_auth_manager().get_url_login(next_url=next_url))
    except Exception:
        return None


def _team_of(dag_id: str | None) -> str | None:
    if not dag_id:
        return None
    from airflow.models.dag import DagModel

    try:
        team: str | None = DagModel.get_team_name(dag_id)
    except Exception:
        return None  # an Airflow without teams; the auth manager decides on the DAG alone
    return team
