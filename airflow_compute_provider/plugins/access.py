"""Who may use the Compute Health page, asked of Airflow's own auth manager.

    authenticated_user   a FastAPI dependency: the Airflow user of the request (the UI's
                         ``_token`` cookie or an ``Authorization: Bearer`` JWT), else 401
                         (403 for an invalid token), exactly as Airflow's own API decides
    visibility(user, dag_ids)
                         what the user may read: the DAGs among ``dag_ids`` (those the store
                         recorded) the auth manager lets them read (``is_authorized_dag`` GET,
                         with each DAG's team), and rows that recorded no DAG only for an
                         administrator
    is_admin(user)       the administrator's right: changing Airflow's configuration
                         (``is_authorized_configuration`` PUT)
    may_release(user, dag_id)
                         releasing a tenant needs edit (PUT) access to the task instances of
                         the DAG the store recorded for the try holding it: the right that lets
                         the same user clear that task to run it again. A hold that recorded no
                         DAG needs an administrator.
    hold_is_stale(ref)   whether the task instance the store recorded for a holding try has
                         finished in Airflow (its worker will never come back): only such a
                         hold may be forced by a non-administrator

Every Airflow import is lazy: the plugin module is loaded by every Airflow process, and only the
api-server serves these routes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from fastapi import Request

from airflow_compute_provider.plugins.queries import Visibility
from airflow_compute_provider.state.models import TaskInstanceRef


async def authenticated_user(request: Request) -> Any:
    """The request's Airflow user (raises 401 / 403 ``HTTPException`` when there is none)."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials

    bearer: HTTPAuthorizationCredentials | None = None
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        bearer = HTTPAuthorizationCredentials(scheme="Bearer", credentials=credentials)
    return await get_user(request, None, bearer)


def visibility(user: Any, dag_ids: Iterable[str]) -> Visibility:
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    wanted = sorted(set(dag_ids))
    by_team: dict[str | None, set[str]] = defaultdict(set)
    teams = _teams_of(wanted)
    for dag_id in wanted:
        by_team[teams.get(dag_id)].add(dag_id)
    readable: set[str] = set()
    for team, ids in by_team.items():
        readable |= manager.filter_authorized_dag_ids(dag_ids=ids, user=user, method="GET", team_name=team)
    return Visibility(frozenset(readable), unrecorded=is_admin(user))


def is_admin(user: Any) -> bool:
    from airflow.api_fastapi.app import get_auth_manager

    return bool(get_auth_manager().is_authorized_configuration(method="PUT", user=user))


def may_release(user: Any, dag_id: str | None) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    if dag_id is None:
        return is_admin(user)
    return bool(
        get_auth_manager().is_authorized_dag(
            method="PUT",
            access_entity=DagAccessEntity.TASK_INSTANCE,
            details=DagDetails(id=dag_id, team_name=_teams_of([dag_id]).get(dag_id)),
            user=user,
        )
    )


def hold_is_stale(ref: TaskInstanceRef | None) -> bool:
    """The recorded task instance finished (success, failed, skipped...): nothing will come back
    to end its hold. An unrecorded task instance, or one Airflow no longer knows, is not judged
    stale: only an administrator may force those."""
    if ref is None:
        return False
    import sqlalchemy as sa
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import State

    query = sa.select(TaskInstance.state).where(
        TaskInstance.dag_id == ref.dag_id,
        TaskInstance.run_id == ref.run_id,
        TaskInstance.task_id == ref.task_id,
        TaskInstance.map_index == ref.map_index,
    )
    with create_session() as session:
        found = session.execute(query).first()
    return found is not None and found[0] in State.finished


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


def _teams_of(dag_ids: list[str]) -> dict[str, str | None]:
    """Each DAG's team (absent: no team), as Airflow's own API routes look it up."""
    if not dag_ids:
        return {}
    from airflow.models.dag import DagModel

    try:
        mapping: dict[str, str | None] = DagModel.get_dag_id_to_team_name_mapping(dag_ids)
    except Exception:
        return {}  # an Airflow without teams; the auth manager decides on the DAG alone
    return mapping
