"""The operators DAG authors use, and the lifecycle they share.

arguments.py   validation of every argument before any provider call
reconcile.py   adopt what an execution already launched; relaunch only what failed
outcome.py     unit statuses -> the XCom result, or the operation's ComputeError
base.py        BaseComputeOperator: the operation lifecycle, once for every provider
ecs.py         EcsComputeOperator
kubernetes.py  KubernetesComputeOperator
"""
