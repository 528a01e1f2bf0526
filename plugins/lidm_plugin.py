"""The gateway's Airflow 3 plugin: the Feeds page, mounted at /lidm and listed in the UI's navigation.

Wiring only: the page and everything it shows come from the SDK (`lidm.integrations.feeds_page`). The
API server reads the central database with the gateway's own settings (LIDM_CENTRAL_URL, …).
"""

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from lidm.integrations.feeds_page import create_app


class LidmPlugin(AirflowPlugin):
    name = "lidm"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [{"app": create_app(), "url_prefix": "/lidm", "name": "lidm feeds"}]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Feeds",
            "href": "/lidm/feeds",
            "destination": "nav",
            "url_route": "lidm-feeds",
        }
    ]
