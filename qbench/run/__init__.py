"""The runner: suite -> jobs -> harness (FP checkpoint, QAT, audit) -> workspace rows.

Layer 4 of 4 with :mod:`qbench.report`: it plans and executes; executors decide where jobs run.
"""
