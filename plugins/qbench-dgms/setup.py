"""Builds the DGMS C kernel (``qbench_dgms/_kernel.c``, loaded with ctypes; see kernel.py).

Everything else is in pyproject.toml. The kernel is x86-64-v3 code (AVX2 + FMA, and gcc may use
BMI2, LZCNT, MOVBE, F16C), so it is built on x86-64 only; ``qbench_dgms.kernel.ISA`` names the
same level to the host, which opens the library only on a CPU with all of it. A failed build does
not fail the install: method ``dgms`` then runs its torch graph under ``kernel='torch'`` (a job
key of its own) and one warning says so. -fopenmp: the
kernel splits its blocks over torch's OpenMP threads; the library links libgomp.so.1, which
resolves to the copy torch has already loaded, so both share one thread pool.
"""
import platform

from setuptools import Extension, setup

X86 = platform.machine().lower() in ("x86_64", "amd64")
KERNEL = Extension("qbench_dgms._kernel", sources=["qbench_dgms/_kernel.c"],
                   extra_compile_args=["-O3", "-march=x86-64-v3", "-funroll-loops", "-fopenmp"],
                   extra_link_args=["-fopenmp"], optional=True)

setup(ext_modules=[KERNEL] if X86 else [])
