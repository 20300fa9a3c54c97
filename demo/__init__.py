"""``make demo``: the example DAGs of ``dags/`` run for real against local stand-ins of the clouds.

    python -m demo [--kube | --no-kube] [--ui] [--only KEY ...] [--list]

The pieces, in the order ``__main__`` uses them:

    home.py       an isolated AIRFLOW_HOME (SQLite metadata DB, migrated once and cached), set in
                  the environment before anything imports Airflow; DAGs come from ``dags/``
    backends.py   the moto server as the ECS endpoint (with the test harness's ECS scripting and
                  fault proxy), and the local Kubernetes API server with its node simulator when
                  its binaries are built (or ``--kube`` builds them)
    scenarios.py  what each scenario arranges (a throttled RunTask, a refused unit...), which
                  example DAG it runs with which params, and the outcome it expects
    runner.py     one scenario through ``dag.test()``, and what it observed: the DAG run's and
                  the compute task's state, tries, the ComputeError, the tenant's state
    report.py     the progress display while scenarios run, and the table at the end
    ui.py         ``--ui``: ``airflow standalone`` on the same home, with the demo's runs in it

The demo reuses the test harness (``tests/harness``), so it runs from the repository root. It
exits non-zero when any scenario's outcome differs from the one it expects.
"""
