"""A worker process ends when the process that started it is gone, however that one ended.

Pool workers are not daemonic processes: a daemonic process may not start children, and a file
dataset's DataLoader starts worker processes of its own. What ``daemon=True`` gave (the worker
ends with the run) is kept here instead, and more: multiprocessing only terminated daemonic
children when the parent exited normally, never when it was killed (``kill -9``, the OOM killer),
when an orphan would go on training for nobody and hold its job's lock.

Two mechanisms, because neither covers every case alone:

* Linux's ``PR_SET_PDEATHSIG``: the kernel sends the worker SIGKILL the moment its parent dies,
  even while the worker is stuck in native code holding the GIL. The kernel ties it to the
  *thread* that started the worker, so it is only used when that thread is the main thread
  (whose end is the process's end).
* A watchdog thread that compares ``os.getppid()`` with the parent's pid twice a second and
  exits when they differ (the orphan was re-parented): portable, and it covers a worker started
  from another thread.

An idle worker also sees its pipe reach EOF when the parent goes, and returns.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
POLL_S = 0.5


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent (thread) dies. Linux only;
    returns whether it was set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(70)  # no cleanup to run: the parent that would read this worker's results is gone
        time.sleep(POLL_S)


def die_with_parent(parent_pid: int, pdeathsig: bool = True) -> None:
    """Make this process end as soon as ``parent_pid`` is no longer its parent.

    :param pdeathsig: also use ``PR_SET_PDEATHSIG`` (pass False when the parent started this
        process from a thread other than its main thread: the signal would come when that thread
        ends, with the parent alive).
    """
    if pdeathsig:
        set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(70)
    threading.Thread(target=_watch, args=(parent_pid,), name="qbench-lifeline", daemon=True).start()
