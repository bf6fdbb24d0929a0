"""Reporting: the row schema, statistics over seeds, leaderboards, the CI gate and plots.

Above the training core and below the runner (layers: docs/architecture.md): it reads rows, it
never trains.
"""
