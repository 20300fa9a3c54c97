"""Every fixture module of the harness, loaded once for the whole suite."""

pytest_plugins = [
    "tests.harness.kube",
    "tests.harness.ecs",
    "tests.harness.proxy",
    "tests.harness.postgres",
    "tests.harness.airflow_env",
]
