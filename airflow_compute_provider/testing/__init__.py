"""Test doubles of the compute providers, for the lifecycle's own tests and DAG authors' ones.

    memory.py     ``MemoryCloud`` and ``MemoryComputeBackend``: an in-memory provider honouring
                  the whole ``ComputeBackend`` contract (tokens, find, refusals, lost answers)
    operator.py   ``MemoryComputeOperator``: the compute operator on that backend

Nothing in the product imports this package.
"""
