"""airflow-compute-provider: compute failures on AWS ECS and Kubernetes, as data workflows act on.

Layers, bottom up (each may import only those above it in this list):

    errors/          the contract: ErrorCode, Classification, ComputeError, exceptions, JSON Schema
    normalize/       pure translation of provider failures into ComputeError
    hooks/           all provider I/O, behind one backend interface
    triggers/        deferrable status polling
    policy.py        ComputeRetryPolicy
    state/           the tenant state store
    operators/       the operation lifecycle and the operators DAG authors use

Importing this package imports nothing heavy; DAG files pay only for what they use.
"""

__version__ = "0.1.0"
