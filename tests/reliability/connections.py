"""Airflow connections that reach a provider through a fault proxy of the test's own.

    proxied_kubeconfig(path, server, token)   write a kubeconfig whose cluster is ``server``
                                              (a fault proxy's plain-HTTP URL) and return its
                                              path; with ``kubernetes_connection_json`` it
                                              becomes a ``kubernetes`` connection

ECS needs no file: ``tests.harness.ecs.aws_connection_json(url)`` is the whole connection.
"""

from __future__ import annotations

import json
from pathlib import Path


def proxied_kubeconfig(path: Path, server: str, token: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "proxy", "cluster": {"server": server}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "admin"}}],
        "current-context": "proxy",
    }
    path.write_text(json.dumps(config))
    return path
