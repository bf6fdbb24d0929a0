"""qbench's Slurm executor, through submitit (``qbench run --executor slurm``)."""
