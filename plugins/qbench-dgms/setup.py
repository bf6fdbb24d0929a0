"""Builds the DGMS C kernel (``qbench_dgms/_kernel.c``, loaded with ctypes; see kernel.py).

Everything else is in pyproject.toml. The kernel is AVX2 + FMA code, so it is built on x86-64
only, and a failed build does not fail the install: ``dgms-w`` then says how to fix it (a C
compiler, or the weight param ``kernel='torch'``) when the kernel is first needed. -fopenmp: the
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
