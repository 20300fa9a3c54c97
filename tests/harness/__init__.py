"""Real servers for the tests: each module starts one kind and exposes pytest fixtures.

    kube.py        etcd + kube-apiserver + controller manager + scheduler, and the node simulator
    ecs.py         a moto server as the ECS endpoint, and helpers that script task outcomes
    proxy.py       a fault-injecting HTTP proxy in front of either, counting requests by operation
    postgres.py    a throwaway PostgreSQL server on a loopback port
    airflow_env.py an isolated AIRFLOW_HOME, dag.test() helpers, and the shared standalone stack

``tests/conftest.py`` loads them all as pytest plugins.
"""
