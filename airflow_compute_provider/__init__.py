"""airflow-compute-provider: compute failures on AWS ECS and Kubernetes, as data workflows act on.

Layers, bottom up (each may import only those above it in this list):

    errors/          the contract: ErrorCode, Classification, ComputeError, exceptions, JSON Schema
    normalize/       pure translation of provider failures into ComputeError
    hooks/           all provider I/O, behind one backend interface; error_context.py stamps
                     context onto every error leaving a hook
    registry.py      the one place that names each provider: hook, status source, ledger
                     locator, links
    triggers/        deferrable status polling (shared pollers)
    policy/          ComputeRetryPolicy, its rules, the shim for Airflow before 3.3
    state/           the tenant state store
    lifecycle/       the steps of one try, provider-agnostic: reconcile, launch, wait, settle,
                     roll back, decide after Airflow
    recovery/        the reconciler and cleanup that follow work past its try
    operators/       the operators DAG authors use, and the policy's BaseOperator wiring
    plugins/         the Compute Health page and its API

``tests/unit/test_layers.py`` fails on an import pointing up this list, or on a cycle.

Importing this package imports nothing heavy; DAG files pay only for what they use.
"""

__version__ = "0.1.0"
