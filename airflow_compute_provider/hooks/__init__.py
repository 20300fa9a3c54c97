"""All provider I/O lives here, behind the ``ComputeBackend`` interface of ``base.py``.

base.py        the interface and its types (units, launch plans, statuses, exec keys)
ecs.py         EcsComputeHook, on the Amazon provider's EcsHook
kubernetes.py  KubernetesComputeHook, on the Kubernetes provider's hooks
"""
