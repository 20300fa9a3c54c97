"""The Compute Health page: an Airflow plugin for the operators of a multi-tenant platform.

    compute_health.py   ComputeHealthPlugin: the FastAPI app and the UI entry Airflow loads
    api.py              the app's routes (page, JSON summary, release action)
    access.py           who may read and who may release, asked of Airflow's auth manager
    summary.py          what the page shows, as JSON (no Airflow, no HTTP)
    queries.py          its reads: bounded, paginated, only rows of DAGs the user may read
    static/             the page: plain HTML, a script that draws it, a style sheet

Nothing here is imported by the operators; Airflow imports ``compute_health`` when it loads
plugins.
"""
