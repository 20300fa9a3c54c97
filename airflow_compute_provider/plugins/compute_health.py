"""``ComputeHealthPlugin``: the Airflow plugin that adds the Compute Health page.

Airflow finds it through the ``airflow.plugins`` entry point of this package (and lists it
among the provider's plugins). It brings two things:

    fastapi_apps     the app of ``api.py``, which the api-server mounts at ``/compute-health``
    external_views   a "Compute Health" entry in the UI's Browse menu that shows that app's page
                     inside the Airflow UI, at ``/plugin/compute-health``
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_compute_provider.plugins.api import URL_PREFIX, create_app

PLUGIN_NAME = "compute_health"
UI_ROUTE = "compute-health"


class ComputeHealthPlugin(AirflowPlugin):
    name = PLUGIN_NAME
    fastapi_apps: list[Any] = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Compute Health"}]
    external_views: list[Any] = [
        {
            "name": "Compute Health",
            "href": f"{URL_PREFIX}/",
            "url_route": UI_ROUTE,
            "destination": "nav",
            "category": "browse",
        }
    ]
