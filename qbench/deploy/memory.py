"""The resident memory a piece of work adds to this process at its peak (Linux), measured without
losing the process's own peak.

Why this measure: what a deployed model costs a machine is the RAM it must have free to load the
model and run it, i.e. the peak resident set while the session is created (the model parsed,
its initializers optimised and placed) and runs a batch (onnxruntime's arena sized for that
batch's activations). onnxruntime's pip builds carry no memory profiler, and the process's
lifetime peak (``ru_maxrss``) after a training job is training's peak, which a small session never
moves. So :func:`peak_window` resets the kernel's high-water mark (``/proc/self/clear_refs``,
"5"), reads the resident set as the baseline, and after the work reads the new high-water mark:
the difference is the work's peak addition. Before the reset glibc returns its free heap pages
(``malloc_trim``), so pages a finished training step left resident and the session reuses count
as the session's, as they would in a fresh process.

The reset also lowers ``ru_maxrss``, which the harness records as the job's ``peak_rss_mb``: the
peak before each reset is kept here, and :func:`process_peak_kb` is the process's peak as if no
window had reset it. Where the kernel offers neither file (not Linux, a sandbox), a window
measures nothing (``mb`` stays None).
"""
from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_RESET_HWM = "5"  # clear_refs: reset the peak resident set size to the current one (Linux >= 4.0)

#: the process's peak (KiB) before the last reset of the high-water mark
_peak_before_reset_kb = 0


def _status_kb() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in KiB."""
    out = {}
    for line in _STATUS.read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def _maxrss_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def process_peak_kb() -> int:
    """This process's peak resident set (KiB) over its lifetime, windows' resets undone."""
    return max(_peak_before_reset_kb, _maxrss_kb())


def _trim() -> None:
    """Return glibc's free heap pages to the kernel (no-op elsewhere)."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass
class Window:
    #: the peak resident memory the work added (MiB), None when it could not be measured
    mb: float | None = None


@contextlib.contextmanager
def peak_window() -> Iterator[Window]:
    """``with peak_window() as w: work()``; then ``w.mb``: the work's peak resident addition (MiB)."""
    global _peak_before_reset_kb
    w = Window()
    base: int | None = None
    try:
        _trim()
        _peak_before_reset_kb = max(_peak_before_reset_kb, _maxrss_kb(), _status_kb()["VmHWM"])
        _CLEAR_REFS.write_text(_RESET_HWM)
        base = _status_kb()["VmRSS"]
    except (OSError, KeyError, ValueError, IndexError):
        base = None
    yield w
    if base is not None:
        try:
            w.mb = max(0, _status_kb()["VmHWM"] - base) / 1024
        except (OSError, KeyError, ValueError, IndexError):
            w.mb = None
