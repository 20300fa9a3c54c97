"""The operators DAG authors use; the lifecycle they share is ``lifecycle/``.

base.py              BaseComputeOperator: drives the lifecycle of one operation, for every provider
ecs.py               EcsComputeOperator
kubernetes.py        KubernetesComputeOperator
branch.py            ComputeErrorBranchOperator: route on an upstream task's ComputeError
cleanup.py           ComputeReconcileOperator: follow timed-out work, clean up what is marked
policy_arguments.py  the retry policy wired into BaseOperator: ``retries`` from the policy
"""
