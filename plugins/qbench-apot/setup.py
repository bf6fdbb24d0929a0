"""Builds the APoT C kernel (``qbench_apot/_kernel.c``, loaded with ctypes; see kernel.py).

Everything else is in pyproject.toml. -ffp-contract=off keeps every multiply and add separate, as
torch computes them: the kernel must give the torch code's numbers bit for bit (-fno-trapping-math
only lets loops with a select vectorise; no value changes). -fopenmp: the kernel splits its loop
over torch's OpenMP threads; the library links libgomp.so.1, which resolves to the copy torch has
already loaded, so both share one thread pool. ``qbench_apot.kernel.ISA`` names the -march level
to the host, which opens the library only on a CPU with every feature of it. A failed build does
not fail the install: the torch code then runs, with the same numbers, only slower.
"""
import platform

from setuptools import Extension, setup

X86 = platform.machine().lower() in ("x86_64", "amd64")
KERNEL = Extension("qbench_apot._kernel", sources=["qbench_apot/_kernel.c"],
                   extra_compile_args=["-O3", "-march=x86-64-v3", "-ffp-contract=off", "-fno-trapping-math",
                                       "-fopenmp"],
                   extra_link_args=["-fopenmp"],
                   optional=True)

setup(ext_modules=[KERNEL] if X86 else [])
