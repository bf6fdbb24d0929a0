"""``python -m qbench.cli``."""
from qbench.cli import main

main()
