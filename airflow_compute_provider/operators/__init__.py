"""The operators DAG authors use, and the lifecycle they share.

arguments.py   validation of every argument before any provider call
tries.py       Try: one try of one execution, as every lifecycle step receives it
reconcile.py   adopt what an execution already launched; relaunch only what failed
launch.py      reconcile, then launch: intents, the launch request, lost answers claimed
ledger.py      a try's rows in the resource ledger, and the launch-to-running timer
wait.py        waiting for the units: the trigger to defer to, or polling here
rollback.py    partial failures: stop what started, or leave it for ``retry_failed``
outcome.py     unit statuses -> the XCom result, or the operation's ComputeError
failure.py     a failed try recorded (XCom, metrics, state store) and raised
decisions.py   after Airflow decided on a retry: the tenant's state and the log level
xcom.py        get_compute_error: a failed task's ComputeError, read back downstream
base.py        BaseComputeOperator: the operation lifecycle, once for every provider
ecs.py         EcsComputeOperator
kubernetes.py  KubernetesComputeOperator
branch.py      ComputeErrorBranchOperator: route on an upstream task's ComputeError
cleanup.py     ComputeReconcileOperator: follow timed-out work, clean up what is marked
"""
