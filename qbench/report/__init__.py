"""Reporting: the row schema, statistics over seeds, leaderboards, the CI gate and plots.

Layer 4 of 4 with :mod:`qbench.run`: it reads rows, it never trains.
"""
