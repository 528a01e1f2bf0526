"""The gateway's Airflow 3 plugin: the Feeds page, mounted at /lidm and listed in the UI's navigation.

Wiring only: the page and everything it shows come from the SDK (`lidm.integrations.feeds_page`). The
API server reads the central database with the gateway's own settings (LIDM_CENTRAL_URL, …).

Airflow authenticates its own API with a router dependency that never reaches a mounted plugin app, so the
page checks the caller itself, with Airflow's auth manager: the same token (the UI's cookie or a Bearer
header) and the same permission as listing DAGs.
"""

from typing import Annotated, Any, ClassVar

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lidm.integrations.feeds_page import create_app

_bearer = HTTPBearer(auto_error=False)


async def dag_reader(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Let through a user Airflow's auth manager authenticates and allows to read DAGs: 401 otherwise, 403 if not
    allowed."""
    # imported per request: the scheduler and DAG processor load plugins too, and need none of the API server
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import get_user

    try:
        user = await get_user(request, _oauth_token=None, bearer_credentials=credentials)
    except HTTPException:  # no, expired or forged token (Airflow says 403 for a forged one): not logged in
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "not authenticated: log in to Airflow, or send an Airflow API token as a Bearer header",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    if not get_auth_manager().is_authorized_dag(method="GET", user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the Feeds page needs permission to read DAGs")


class LidmPlugin(AirflowPlugin):
    name = "lidm"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": create_app(dependencies=[Depends(dag_reader)]), "url_prefix": "/lidm", "name": "lidm feeds"}
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Feeds",
            "href": "/lidm/feeds",
            "destination": "nav",
            "url_route": "lidm-feeds",
        }
    ]
