"""Can this CPU run code built for an x86-64 level? Asked before a plugin's C kernel is opened.

A kernel built with ``-march=x86-64-v3`` may contain any instruction of that level, and gcc uses
more of them than the vector units: BMI1/BMI2 for shifts and masks, LZCNT, MOVBE, F16C. Run on a
CPU without one of them, the library loads and the first call dies of SIGILL, taking the worker
(or, with ``--workers 1``, the whole run) down. So a kernel declares the level its build assumed
(``load_kernel(..., isa="x86-64-v3")``) and this module says which features of that level, if
any, the CPU lacks.

Why not ``torch.backends.cpu.get_cpu_capability()``: it names the kernels torch dispatches to,
not a level. Its "AVX2" asks for AVX2 and FMA only (none of BMI2, MOVBE, LZCNT, F16C), and
``ATEN_CPU_CAPABILITY`` changes its answer at will.

Why the flags Linux lists in /proc/cpuinfo, rather than a ``__builtin_cpu_supports`` check
compiled into each kernel: the check stays in one place, declared by name, and runs before the
library is opened, so no plugin has to make sure its own check cannot execute a v3 instruction.
Linux lists a feature only when the CPU reports it and the kernel enabled it (AVX only with the
YMM state saved), and on a machine with mixed cores the flags every core has are used. Where the
flags cannot be read (another OS), the answer is "unknown" and the kernel is not risked.
"""
from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

#: Each x86-64 level (the x86-64 psABI's micro-architecture levels) as the /proc/cpuinfo flags it
#: adds to the one below. The baseline (x86-64: SSE2, CMOV, ...) holds on every x86-64 CPU. Flag
#: names are Linux's: "pni" is SSE3, "abm" is LZCNT, "xsave" stands for OSXSAVE (Linux lists
#: AVX only when the OS saves the AVX state).
_ADDS: dict[str, tuple[str, ...]] = {
    "x86-64": (),
    "x86-64-v2": ("cx16", "lahf_lm", "popcnt", "pni", "ssse3", "sse4_1", "sse4_2"),
    "x86-64-v3": ("avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"),
    "x86-64-v4": ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"),
}

#: How a flag is named in messages, where Linux's name is not the one people know.
_SHOWN = {"pni": "SSE3", "abm": "LZCNT", "lahf_lm": "LAHF-SAHF", "sse4_1": "SSE4.1", "sse4_2": "SSE4.2",
          "xsave": "OSXSAVE"}


def level_flags(isa: str) -> frozenset[str]:
    """Every /proc/cpuinfo flag code built for ``isa`` may need (the levels below included)."""
    if isa not in _ADDS:
        raise ValueError(f"unknown instruction set {isa!r}; known: {', '.join(_ADDS)}")
    names = list(_ADDS)
    return frozenset(f for level in names[:names.index(isa) + 1] for f in _ADDS[level])


def flags_from_cpuinfo(text: str) -> frozenset[str] | None:
    """The flags every processor in a /proc/cpuinfo text lists (None: the text lists none)."""
    common: frozenset[str] | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            flags = frozenset(value.split())
            common = flags if common is None else common & flags
    return common


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str] | None:
    """This CPU's flags as Linux names them, or None where they cannot be read.

    Read once per process. Tests fake another CPU with ``qbench.testing.fake_cpu``.
    """
    try:
        return flags_from_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        return None


def is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def shown(flag: str) -> str:
    return _SHOWN.get(flag, flag.upper())


def lacks(isa: str) -> str | None:
    """Why this CPU cannot run code built for ``isa``, in a few words; None when it can."""
    need = level_flags(isa)
    if not is_x86_64():
        machine = platform.machine() or "an unknown machine"
        return f"this is not an x86-64 CPU ({machine}), and the kernel is built for {isa}"
    have = cpu_flags()
    if have is None:
        return (f"this CPU's features cannot be read here (no /proc/cpuinfo), and the kernel is built for "
                f"{isa}, so it is not risked")
    missing = sorted(map(shown, need - have))
    if missing:
        return f"this CPU lacks {', '.join(missing)}, which the kernel's build ({isa}) assumes"
    return None
