"""Deferrable waiting for compute operations.

progress.py    when a set of unit statuses is settled (pure; shared with the blocking wait)
status.py      ComputeStatusTrigger, which the real triggerer imports by class path
pollers.py     the shared pollers every ComputeStatusTrigger of a triggerer subscribes to
kube_watch.py  the Kubernetes status source of a shared poller: one list + watch per namespace
"""
