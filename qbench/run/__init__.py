"""The runner: suite -> jobs -> harness (FP checkpoint, QAT, audit) -> workspace rows.

Above the reports, beside :mod:`qbench.deploy` (layers: docs/architecture.md): it plans and
executes; executors decide where jobs run.
"""
