"""qbench-ray: run a suite's jobs as Ray tasks (``qbench run --executor ray``)."""
