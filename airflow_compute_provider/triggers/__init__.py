"""Deferrable waiting for compute operations.

progress.py  when a set of unit statuses is settled (pure; shared with the blocking wait)
status.py    ComputeStatusTrigger, which the real triggerer imports by class path
"""
