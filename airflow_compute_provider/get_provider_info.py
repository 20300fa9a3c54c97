"""Provider metadata that Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_compute_provider import __version__

_PACKAGE = "airflow_compute_provider"

#: The how-to guides (``docs/howto/``, built by ``make docs``), in reading order; the migration
#: guide first. ``tests/packaging/test_docs.py`` checks this list against the folder and the index.
HOW_TO_GUIDES = (
    "migrating",
    "ecs-operator",
    "kubernetes-operator",
    "retry-policy-and-branching",
    "timeouts-and-reattaching",
    "container-logs",
    "recovery",
    "compute-health",
    "deploying",
)


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-compute-provider",
        "name": "Compute (ECS and Kubernetes) failure handling",
        "description": (
            "Operators, hooks and triggers that normalize AWS ECS and Kubernetes failures into one "
            "ComputeError with a retry classification, and act on it in workflows."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Compute failure handling",
                "external-doc-url": "https://pypi.org/project/airflow-compute-provider/",
                "how-to-guide": [f"/docs/howto/{guide}.md" for guide in HOW_TO_GUIDES],
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Compute failure handling",
                # the registry's hook modules, written out: Airflow reads this module while its own
                # configuration loads, before the registry's imports can (tests/unit/test_registry.py)
                "python-modules": [f"{_PACKAGE}.hooks.ecs", f"{_PACKAGE}.hooks.kubernetes"],
            }
        ],
        "operators": [
            {
                "integration-name": "Compute failure handling",
                "python-modules": [
                    f"{_PACKAGE}.operators.ecs",
                    f"{_PACKAGE}.operators.kubernetes",
                    f"{_PACKAGE}.operators.branch",
                    f"{_PACKAGE}.operators.cleanup",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "Compute failure handling",
                "python-modules": [f"{_PACKAGE}.triggers.status"],
            }
        ],
        "plugins": [
            {
                "name": "compute_health",
                "plugin-class": f"{_PACKAGE}.plugins.compute_health.ComputeHealthPlugin",
            }
        ],
        "extra-links": [f"{_PACKAGE}.links.EcsTaskConsoleLink", f"{_PACKAGE}.links.KubernetesPodLink"],
        "config": {
            "compute_provider": {
                "description": "The compute provider's operator links.",
                "options": {
                    "kubernetes_pod_url_template": {
                        "description": (
                            "The URL of a pod's page in the platform's Kubernetes console, with "
                            "{namespace} and {name} placeholders; the Kubernetes pod link of "
                            "KubernetesComputeOperator uses it. Unset: the Compute Health page."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "https://headlamp.example.com/c/main/pods/{namespace}/{name}",
                        "default": None,
                    }
                },
            }
        },
    }
